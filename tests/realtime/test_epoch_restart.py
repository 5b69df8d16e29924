"""The subscribe answer names the epoch its `seq` counts in: a restarted server is another
epoch, so a client resuming with `since` and its old epoch is answered `gap` with everything
buffered, even when the new server's sequence has already grown past its numbers."""

from __future__ import annotations

import socketio

from tests.conftest import free_port, make_settings, running_server

FAST = {"updates": {"intervals": {"system_metrics": 200}, "batch_updates": False}}


async def subscribe(url: str, **payload) -> dict:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, socketio_path="/ws", namespaces=["/omni_monitor"], transports=["websocket"])
    try:
        return await client.call("subscribe", {"streams": ["system"], **payload}, namespace="/omni_monitor", timeout=10)
    finally:
        await client.disconnect()


async def test_epoch_is_the_same_for_one_server_and_a_restart_answers_gap():
    port = free_port()
    settings = make_settings(extra=FAST)
    async with running_server(settings, port) as first:
        one = await subscribe(first.url)
        again = await subscribe(first.url, since={"system": 0})
        assert one["ok"] and isinstance(one["epoch"], str) and one["epoch"] == again["epoch"]
    async with running_server(settings, port) as second:
        other = await subscribe(second.url, since={"system": 0}, epoch=one["epoch"])
        assert other["ok"] and other["epoch"] != one["epoch"]
        assert other["gap"]["system"] is True, "numbers of another epoch: told, not compared"
