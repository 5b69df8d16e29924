"""The one listener primitive: Signal (in order, failures contained) and Mailbox (bounded,
on its own task, never holding the sender up)."""

from __future__ import annotations

import asyncio
import logging

import socketio

from aura_dashboard.contract import StreamContract
from aura_dashboard.realtime.broadcast import StockBroadcaster
from aura_dashboard.realtime.hub import StreamHub
from aura_dashboard.realtime.replay import LocalReplay
from aura_dashboard.signals import Mailbox, Signal


async def test_signal_calls_plain_and_async_listeners_in_order_and_contains_failures(caplog):
    signal: Signal[int] = Signal("numbers")
    heard = []

    async def later(value):
        await asyncio.sleep(0)
        heard.append(("async", value))

    signal.connect(lambda value: 1 / 0)
    signal.connect(lambda value: heard.append(("plain", value)))
    signal.connect(later)
    with caplog.at_level(logging.ERROR):
        await signal.send(7)
    assert heard == [("plain", 7), ("async", 7)]
    assert "listener of numbers failed" in caplog.text


async def test_mailbox_delivers_in_order_on_its_own_task_and_survives_a_failing_value():
    heard = []

    async def listener(value):
        if value == 2:
            raise RuntimeError("bad value")
        heard.append(value)

    box = Mailbox("test", listener)
    task = asyncio.create_task(box.run())
    try:
        for value in range(5):
            box(value)
        assert heard == []  # putting never runs the listener
        assert await box.drain()
        assert heard == [0, 1, 3, 4] and box.handled == 5 and box.pending() == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_a_full_mailbox_drops_and_counts_and_warns_once_per_period(caplog):
    clock = [0.0]
    box = Mailbox("slow thing", lambda value: None, maxsize=2, warn_every_s=10, clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING):
        for value in range(5):
            box(value)
        clock[0] = 11.0
        box(5)
    assert box.pending() == 2 and box.dropped == 4
    assert sum("slow thing cannot keep up" in r.getMessage() for r in caplog.records) == 2


async def test_a_slow_listener_behind_a_mailbox_does_not_hold_publish_up():
    hub = StreamHub([StreamContract("s", "/omni_monitor")], store=LocalReplay(10),
                    broadcaster=StockBroadcaster(socketio.AsyncServer(async_mode="aiohttp")), source="t")
    release = asyncio.Event()
    heard = []

    async def slow(envelope):
        await release.wait()
        heard.append(envelope["seq"])

    box = Mailbox("slow", slow)
    hub.published_signal("s").connect(box)
    task = asyncio.create_task(box.run())
    try:
        for value in range(3):
            await hub.publish("s", value)  # returns although the listener is stuck
        assert heard == [] and len(hub.publish_durations) == 3 and hub.publish_p99_s() is not None
        release.set()
        assert await box.drain()
        assert heard == [1, 2, 3]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
