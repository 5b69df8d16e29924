"""Emitters: publish each sample, skip failing and slow ones, stop on cancel, follow flags."""

import asyncio

import socketio

from aura_dashboard.contract import StreamContract
from aura_dashboard.realtime.broadcast import StockBroadcaster
from aura_dashboard.realtime.emitters import Emitter, EmitterSet
from aura_dashboard.realtime.hub import StreamHub
from aura_dashboard.realtime.replay import LocalReplay
from aura_dashboard.tasks import TaskSet


def make_hub(switch):
    return StreamHub([StreamContract("s", "/omni_monitor")], store=LocalReplay(50),
                     broadcaster=StockBroadcaster(socketio.AsyncServer(async_mode="aiohttp")),
                     source="t", is_on=lambda contract: switch["on"])


async def test_failing_and_slow_samples_are_skipped_not_fatal():
    hub = make_hub({"on": True})
    outcomes = iter(["ok", "boom", "slow", "ok"])

    async def sample():
        outcome = next(outcomes)
        if outcome == "boom":
            raise RuntimeError("sensor fell off")
        if outcome == "slow":
            await asyncio.sleep(10)
        return {"v": outcome}

    emitter = Emitter("s", sample, interval_s=0.01, hub=hub, timeout_s=0.05)
    results = [await emitter.tick() for _ in range(4)]
    assert results == [True, False, False, True]
    assert (emitter.stats.samples, emitter.stats.failures, emitter.stats.timeouts) == (2, 1, 1)
    assert [e["seq"] for e in await hub.history("s")] == [1, 2]


async def test_run_loop_is_cancellable_and_keeps_going_after_errors():
    hub = make_hub({"on": True})
    calls = 0

    async def sample():
        nonlocal calls
        calls += 1
        if calls % 2:
            raise ValueError("odd")
        return calls

    task = asyncio.create_task(Emitter("s", sample, 0.01, hub).run())
    while await hub.last_seq("s") < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_emitter_set_follows_the_stream_switch():
    switch = {"on": False}
    hub = make_hub(switch)
    tasks = TaskSet()

    async def sample():
        return 1

    emitters = EmitterSet(hub, tasks)
    emitters.add(Emitter("s", sample, 0.01, hub))
    await emitters.start()
    assert emitters.running() == []
    switch["on"] = True
    await emitters.reconcile()
    assert emitters.running() == ["s"]
    while await hub.last_seq("s") < 2:
        await asyncio.sleep(0.01)
    switch["on"] = False
    await emitters.reconcile()
    assert emitters.running() == []
    stopped_at = await hub.last_seq("s")
    await asyncio.sleep(0.05)
    assert await hub.last_seq("s") == stopped_at
    await emitters.stop()
    await tasks.close()


async def test_reconcile_run_concurrently_is_serialised():
    """A feature PATCH, a flag sync and a lease change may reconcile at once: no KeyError, and
    the emitter ends up as the switch says."""
    switch = {"on": True}
    hub = make_hub(switch)
    tasks = TaskSet()

    async def sample():
        return 1

    emitters = EmitterSet(hub, tasks)
    emitters.add(Emitter("s", sample, 0.01, hub))
    await emitters.start()
    for _ in range(20):
        switch["on"] = not switch["on"]
        results = await asyncio.gather(*(emitters.reconcile() for _ in range(4)), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert emitters.running() == (["s"] if switch["on"] else [])
    await emitters.stop()
    await tasks.close()
