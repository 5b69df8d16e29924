"""The composition root's lifecycles (app.py): what shutdown does with its background loops."""

from __future__ import annotations

import asyncio
import logging

import pytest

from aura_dashboard import app as app_module
from aura_dashboard.app import lifecycle
from aura_dashboard.tasks import TaskSet


async def test_a_loop_that_misses_its_cancellation_does_not_hold_shutdown(monkeypatch, caplog):
    """A loop whose cancellation is swallowed below it (seen inside redis-py's pubsub after a
    Redis restart) is waited for a bounded time, named in a warning, and the rest of the
    shutdown (its `stop`) goes on. Before: an unbounded gather, shutdown hung."""
    monkeypatch.setattr(app_module, "LOOP_STOP_TIMEOUT_S", 0.3, raising=False)
    missed = asyncio.Event()

    async def stubborn():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            missed.set()  # swallowed, as a library that retries would
        await asyncio.sleep(3600)

    async def quick():
        await asyncio.sleep(3600)

    stopped = []

    async def stop():
        stopped.append(True)

    tasks = TaskSet()
    context = lifecycle(tasks, "test", loops=[("test:stubborn", stubborn), ("test:quick", quick)], stop=stop)({})
    await context.__anext__()
    await asyncio.sleep(0)
    caplog.set_level(logging.WARNING, logger="aura_dashboard.app")
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(context.__anext__(), 10)
    assert missed.is_set() and stopped == [True]
    assert "test:stubborn did not end within" in caplog.text
    assert "test:quick" not in caplog.text
    await tasks.close(timeout=1)  # the second cancellation ends it
    assert len(tasks) == 0
