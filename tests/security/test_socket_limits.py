"""Socket.IO limits against a real server: event rate, slow consumers, oversized packets."""

from __future__ import annotations

import asyncio
import base64
from contextlib import asynccontextmanager
import os
import socket
import struct

from aura_dashboard.web.keys import BACKLOG_WATCH, HUB, SIO
from aura_dashboard.realtime.hub import room_of
from tests.conftest import alert_payload, make_settings, running_server
from tests.realtime.test_streams_live import Client

QUIET = {"updates": {"intervals": {"system_metrics": 60_000}, "batch_updates": False},
         "panels": {"omni_monitor": {"graph_history_points": 1}}}


def ws_frame(text: str) -> bytes:
    """One masked WebSocket text frame, as a client must send it."""
    data = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    n = len(data)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def raw_websocket(srv) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw Engine.IO WebSocket whose receive buffer is tiny, past the 101 and open packet."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((srv.host, srv.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock, limit=2 ** 16)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET {srv.ws_path}/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {srv.host}\r\n"
                  f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert b" 101 " in head.split(b"\r\n")[0], head
    return reader, writer


async def test_event_rate_limited_per_connection(start_server):
    extra = {**QUIET, "security": {"rate_limiting": {"socket_events_per_minute": 6, "socket_burst_size": 5}}}
    async with start_server(extra=extra) as srv:
        first, second = await Client().connect(srv.url), await Client().connect(srv.url)
        try:
            acks = [await first.call("unsubscribe", {"streams": ["system"]}) for _ in range(8)]
            assert all(a["ok"] for a in acks[:5])
            assert [a["error"]["code"] for a in acks[5:]] == ["rate_limited"] * 3
            assert first.sio.connected  # refused, never dropped
            assert (await second.call("unsubscribe", {"streams": ["system"]}))["ok"]
        finally:
            await first.sio.disconnect()
            await second.sio.disconnect()


@asynccontextmanager
async def fast_and_slow_on_alerts(srv):
    """A reading client and a raw WebSocket that never reads, both subscribed to `alerts`;
    yields (the fast client, the slow one's Engine.IO sids)."""
    sio = srv.app[SIO]
    fast = await Client().connect(srv.url)
    reader, writer = await raw_websocket(srv)
    try:
        assert (await fast.call("subscribe", {"streams": ["alerts"]}))["ok"]
        writer.write(ws_frame("40/omni_monitor,"))
        writer.write(ws_frame('42/omni_monitor,1["subscribe",{"streams":["alerts"]}]'))
        await writer.drain()

        async def both_subscribed():
            while len(list(sio.manager.get_participants("/omni_monitor", room_of("alerts")))) < 2:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(both_subscribed(), 20)
        yield fast, {sid for sid in sio.eio.sockets} - {fast.sio.eio.sid}
    finally:
        writer.close()
        await fast.sio.disconnect()


async def test_slow_consumer_cut_off_while_fast_client_keeps_its_stream():
    settings = make_settings({}, {**QUIET, "websocket": {"max_client_backlog": 50}})
    async with running_server(settings) as srv, fast_and_slow_on_alerts(srv) as (fast, slow_sids):
        hub, sio = srv.app[HUB], srv.app[SIO]
        assert len(slow_sids) == 1
        blob = "x" * 32_768
        start = len(fast.envelopes("alerts"))
        for i in range(400):  # about 13 MB: far more than the slow client's buffers hold
            await hub.publish("alerts", alert_payload(i, message=blob))
            await asyncio.sleep(0)
        await fast.wait_for(lambda: sum(e["data"]["id"].startswith("test:") for e in fast.envelopes("alerts")[start:]) >= 400,
                            timeout=60)

        async def gone():
            while slow_sids & set(sio.eio.sockets):
                await asyncio.sleep(0.05)
        await asyncio.wait_for(gone(), 20)
        assert srv.app[BACKLOG_WATCH].cut_off == 1
        got = [e["data"]["value"] for e in fast.envelopes("alerts")[start:] if e["data"]["id"].startswith("test:")]
        assert got == list(range(400))  # the fast client missed nothing, in order
        assert fast.sio.connected


async def test_oversized_packet_closes_only_that_client():
    settings = make_settings({}, {**QUIET, "updates": {"intervals": {"system_metrics": 200}, "batch_updates": False},
                                  "websocket": {"max_message_size_bytes": 10_000}})
    async with running_server(settings) as srv:
        good = await Client().connect(srv.url)
        big = await Client().connect(srv.url)
        try:
            assert (await good.call("subscribe", {"streams": ["system"]}))["ok"]
            try:
                await big.sio.emit("subscribe", {"streams": ["x" * 50_000]}, namespace="/omni_monitor")
            except Exception:
                pass

            async def big_gone():
                while big.sio.connected:
                    await asyncio.sleep(0.05)
            await asyncio.wait_for(big_gone(), 20)
            before = len(good.envelopes())
            await good.wait_for(lambda: len(good.envelopes()) >= before + 2, timeout=20)
            assert good.sio.connected
        finally:
            await good.sio.disconnect()
            await big.sio.disconnect()
