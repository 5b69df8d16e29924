"""The hub's own rules: envelopes, sequence numbers, the ring buffer, replay and gaps."""

import asyncio

import pytest
import socketio

from aura_dashboard.contract import StreamContract
from aura_dashboard.realtime.broadcast import StockBroadcaster
from aura_dashboard.realtime.hub import StreamHub, UnknownStream
from aura_dashboard.realtime.replay import LocalReplay


def make_hub(buffer_size=5, batch=None):
    return StreamHub([StreamContract("system", "/omni_monitor")], store=LocalReplay(buffer_size),
                     broadcaster=StockBroadcaster(socketio.AsyncServer(async_mode="aiohttp")),
                     source="host-a", batch_interval_s=batch, clock=lambda: 100.0)


async def test_envelope_shape_and_contiguous_seq():
    hub = make_hub()
    first = await hub.publish("system", {"a": 1})
    second = await hub.publish("system", {"a": 2}, ts=42.5)
    assert first == {"stream": "system", "seq": 1, "ts": 100.0, "source": "host-a", "data": {"a": 1}}
    assert (second["seq"], second["ts"]) == (2, 42.5)
    assert await hub.latest("system") is second and hub.published() == {"system": 2}


async def test_buffer_keeps_the_last_n_and_history_limits_points():
    hub = make_hub(buffer_size=5)
    for i in range(8):
        await hub.publish("system", i)
    assert [e["seq"] for e in await hub.history("system")] == [4, 5, 6, 7, 8]
    assert [e["seq"] for e in await hub.history("system", 2)] == [7, 8]


@pytest.mark.parametrize("since,expected,gap", [
    (8, [], False),            # up to date
    (6, [7, 8], False),        # missed two, both buffered
    (3, [4, 5, 6, 7, 8], False),  # exactly at the buffer's edge
    (2, [4, 5, 6, 7, 8], True),   # seq 3 is gone: gap
    (0, [4, 5, 6, 7, 8], True),
    (99, [4, 5, 6, 7, 8], True),  # ahead of this server (it restarted): gap, full buffer
])
async def test_replay_and_gap(since, expected, gap):
    hub = make_hub(buffer_size=5)
    for i in range(8):
        await hub.publish("system", i)
    envelopes, was_gap = await hub.replay("system", since)
    assert [e["seq"] for e in envelopes] == expected and was_gap is gap


async def test_batched_envelopes_wait_and_are_not_history_until_sent():
    hub = make_hub(batch=0.5)
    await hub.publish("system", 1)
    await hub.publish("system", 2)
    assert await hub.history("system", delivered_only=True) == []
    assert [e["seq"] for e in await hub.history("system")] == [1, 2]
    assert await hub.flush() == 2
    assert [e["seq"] for e in await hub.history("system", delivered_only=True)] == [1, 2]
    assert await hub.flush() == 0


async def test_watchers_see_each_envelope_and_a_broken_one_is_contained():
    hub = make_hub()
    seen = []
    hub.published_signal("system").connect(lambda e: 1 / 0)
    hub.published_signal("system").connect(lambda e: seen.append(e["seq"]))
    await hub.publish("system", 1)
    assert seen == [1]


async def test_unknown_stream_and_duplicate_registration():
    hub = make_hub()
    with pytest.raises(UnknownStream):
        await hub.publish("nope", 1)
    with pytest.raises(ValueError):
        hub.add_stream(StreamContract("system", "/omni_monitor"))


async def test_replay_while_everything_waits_for_the_batch_is_not_a_gap():
    hub = make_hub(batch=0.5)
    await hub.publish("system", 1)
    await hub.publish("system", 2)
    assert await hub.replay("system", 0, delivered_only=True) == ([], False)


async def test_batcher_loop_stops_on_cancel():
    hub = make_hub(batch=0.01)
    task = asyncio.create_task(hub.run_batcher())
    await hub.publish("system", 1)
    while await hub.history("system", delivered_only=True) == []:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_a_mended_link_to_the_message_queue_gives_clients_a_new_epoch():
    """`resync` (the Redis listener subscribed again): the epoch clients are answered in is a
    new one, announced here only, so a client resubscribing with the old one gets `gap`."""
    hub = make_hub()
    announced = []

    async def emit_here(event, data, *, room, namespace):
        announced.append((event, data, room))
    hub.broadcaster.emit_here = emit_here
    before = await hub.epoch()
    await hub.resync()
    after = await hub.epoch()
    assert after != before and after.startswith(before)
    assert announced == [("epoch", {"stream": "system", "epoch": after}, "stream:system")]
    await hub.resync()
    assert await hub.epoch() not in (before, after)
