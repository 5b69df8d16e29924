"""The private internals the broadcast fast path uses: all present (an upgrade that breaks one is a
deliberate act), and when one is not, the stock path with one WARNING, still delivering."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest
import socketio

from aura_dashboard.realtime import internals
from aura_dashboard.realtime.broadcast import (FastBroadcaster, QueueFastBroadcaster, StockBroadcaster,
                                               broadcaster_for)
from aura_dashboard.web.keys import HUB
from tests.conftest import make_settings, running_server
from tests.realtime.test_broadcast import QUIET, RawClient, payload, wait_members


def test_every_internal_the_fast_path_uses_is_present_with_the_expected_shape():
    missing = internals.missing_internals(socketio.AsyncServer(async_mode="aiohttp"))
    assert missing == [], (
        "the broadcast fast path would be OFF: these private internals are missing or changed shape "
        f"(a python-engineio/python-socketio/aiohttp/bidict upgrade?): {missing}. Adapt "
        "aura_dashboard/realtime/broadcast.py and internals.py, then move the pins in setup.cfg.")
    assert isinstance(broadcaster_for(socketio.AsyncServer(async_mode="aiohttp"), None), FastBroadcaster)


@pytest.mark.parametrize("manager", [
    lambda: socketio.AsyncRedisManager("redis://127.0.0.1:1/0"),
    lambda: socketio.AsyncAioPikaManager("amqp://guest:guest@127.0.0.1:1/"),
], ids=["redis", "amqp"])
def test_every_internal_the_fast_path_behind_a_message_queue_uses_is_present(manager):
    manager = manager()  # nothing connects before the server's first client
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
    missing = internals.missing_internals(sio, manager)
    assert missing == [], (
        "the broadcast fast path behind a message queue would be OFF: these python-socketio pub/sub "
        f"manager internals are missing or changed shape: {missing}. Adapt QueueFastBroadcaster "
        "(aura_dashboard/realtime/broadcast.py) and internals.py, then move the pin in setup.cfg.")
    assert isinstance(broadcaster_for(sio, manager), QueueFastBroadcaster)


def test_a_missing_queue_internal_falls_back_to_the_stock_path_with_one_warning(caplog):
    manager = socketio.AsyncRedisManager("redis://127.0.0.1:1/0")
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
    stock_handle_emit = manager._handle_emit
    manager.host_id = None  # as a release dropping it would
    caplog.set_level(logging.WARNING, logger="aura_dashboard.realtime.broadcast")
    broadcaster = broadcaster_for(sio, manager)
    assert type(broadcaster) is StockBroadcaster
    assert manager._handle_emit == stock_handle_emit  # the manager left as it was
    warnings = [r for r in caplog.records if r.name == "aura_dashboard.realtime.broadcast"]
    assert len(warnings) == 1 and "host_id" in warnings[0].getMessage()


def test_a_probe_that_fails_is_reported_by_name(monkeypatch):
    sio = socketio.AsyncServer(async_mode="aiohttp")
    monkeypatch.delattr(socketio.AsyncServer, "_send_eio_packet")  # as a release renaming it would
    assert internals.missing_internals(sio) == ["socketio AsyncServer._send_eio_packet(eio_sid, eio_pkt) coroutine"]


async def test_a_missing_internal_falls_back_to_the_stock_path_with_one_warning(monkeypatch, caplog):
    real = internals._probes
    monkeypatch.setattr(internals, "_probes",
                        lambda sio: real(sio) + [("engineio Socket.some_renamed_internal", lambda: False)])
    caplog.set_level(logging.WARNING, logger="aura_dashboard.realtime.broadcast")
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        warnings = [r for r in caplog.records if r.name == "aura_dashboard.realtime.broadcast"]
        assert len(warnings) == 1 and "some_renamed_internal" in warnings[0].getMessage()
        hub = srv.app[HUB]
        assert type(hub.broadcaster) is StockBroadcaster
        clients = [await RawClient.connect(http, srv) for _ in range(3)]
        await wait_members(srv, 3)
        sent = [await hub.publish("alerts", payload(i)) for i in range(5)]
        for client in clients:
            got = [json.loads((await client.text()).split(",", 1)[1]) for _ in sent]
            assert got == [["alerts", envelope] for envelope in sent]


def test_every_part_of_engineios_ping_the_shared_scheduler_replaces_is_as_expected():
    missing = internals.ping_internals_missing()
    assert missing == [], (
        "the shared ping scheduler would be OFF (a task per socket and ping instead): python-engineio's "
        f"ping changed: {missing}. Adapt aura_dashboard/realtime/pings.py and internals.py, then move the "
        "pin in setup.cfg.")


def test_the_engineio_websocket_handler_socket_loops_repeats_is_the_one_it_copied():
    missing = internals.socket_loop_internals_missing()
    assert missing == [], (
        "python-engineio's own WebSocket handler would be used (a Task and wait_for per read): "
        f"{missing}. Compare its new source with aura_dashboard/realtime/socket_loops.py, carry the "
        "changes over, update COPIED_FROM, then move the pin in setup.cfg.")


def test_the_aiohttp_protocol_trim_upgraded_protocol_was_written_against_is_unchanged():
    missing = internals.upgraded_protocol_internals_missing()
    assert missing == [], (
        "aiohttp's protocol would keep its HTTP parser and request queue for every open WebSocket: "
        f"{missing}. Read every use of `_parser` and `_messages` in the new aiohttp's RequestHandler and "
        "BaseProtocol against broadcast.trim_upgraded_protocol, update UPGRADED_PROTOCOL_READ_FROM, then "
        "move the pin in setup.cfg.")
