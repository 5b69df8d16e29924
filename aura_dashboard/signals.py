"""Something happened, and whoever cares is told: one primitive for every listener list.

`Signal.send(value)` calls each connected listener in turn, awaiting those that return an
awaitable; one that fails is logged and the others still run. A listener that does I/O (the
audit store's SQLite write, a Redis call) is connected through a `Mailbox`: `send` then only
puts the value on the mailbox's bounded queue and returns, and the mailbox's own task calls the
listener. So the sender (`StreamHub.publish`, a feature flip) never waits on a slow consumer,
and a consumer that cannot keep up loses the newest values (counted and logged) instead of
growing memory or stalling the sender.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from .tasks import stop_if_cancelled

log = logging.getLogger(__name__)

T = TypeVar("T")
Listener = Callable[[T], Awaitable[Any] | Any]


async def call_listener(listener: Listener, value: Any, *, what: str, logger: logging.Logger = log) -> None:
    """Call one listener, awaiting it when it is async; log (never raise) its failure."""
    try:
        result = listener(value)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("%s failed", what)


class Signal(Generic[T]):
    """A named list of listeners, told in the order they were connected."""

    def __init__(self, name: str):
        self.name = name
        self._listeners: list[Listener] = []

    def connect(self, listener: Listener) -> Listener:
        """Add `listener` (plain or async callable, or a `Mailbox`); returns it."""
        self._listeners.append(listener)
        return listener

    def disconnect(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def __len__(self) -> int:
        return len(self._listeners)

    async def send(self, value: T) -> None:
        for listener in list(self._listeners):
            await call_listener(listener, value, what=f"listener of {self.name}")


class Mailbox(Generic[T]):
    """A listener on its own task behind a bounded queue.

    Connected to a `Signal`, it is called synchronously and only enqueues; `run()` (a
    background task the composition root owns) takes values off the queue in order and calls
    `listener` with each. When the queue is full the value is dropped: `dropped` counts them
    and a WARNING is logged at most every `warn_every_s` seconds.
    """

    def __init__(self, name: str, listener: Listener, *, maxsize: int = 10_000,
                 warn_every_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.listener = listener
        self.queue: asyncio.Queue = asyncio.Queue(maxsize)
        self.dropped = 0
        self.handled = 0
        self._warn_every_s = warn_every_s
        self._warned_at: float | None = None
        self._clock = clock

    def __call__(self, value: T) -> None:
        try:
            self.queue.put_nowait(value)
        except asyncio.QueueFull:
            self.dropped += 1
            now = self._clock()
            if self._warned_at is None or now - self._warned_at >= self._warn_every_s:
                self._warned_at = now
                log.warning("%s cannot keep up: %d value(s) dropped so far (queue of %d full)",
                            self.name, self.dropped, self.queue.maxsize)

    def pending(self) -> int:
        return self.queue.qsize()

    async def run(self) -> None:
        """Deliver values until cancelled; a failing listener is logged and the next value goes on."""
        while True:
            stop_if_cancelled()
            value = await self.queue.get()
            try:
                await call_listener(self.listener, value, what=self.name)
                self.handled += 1
            finally:
                self.queue.task_done()

    async def drain(self, timeout_s: float = 2.0) -> bool:
        """Wait (at most `timeout_s`) until everything queued so far was handled."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.queue.join()
            return True
        except TimeoutError:
            return False
