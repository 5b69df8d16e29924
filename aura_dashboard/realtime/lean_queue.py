"""A lighter `asyncio.Queue` for python-engineio's per-socket packet queue (one per connection).

`asyncio.Queue` allocates, per instance, four deques (its items, the getters, the putters and
its `join()` Event's waiters) and that Event: about 3 KB per connection, most of it never used.
Engine.IO's queue is unbounded, so nobody ever waits to put (the putters' deque stays empty),
and `join()` is awaited only when a socket closes. `LeanQueue` is an `asyncio.Queue` (the
broadcast fast path reads its `_getters`, see internals.py) whose putters' deque is one shared
empty deque, and whose `join()` event is a flag that makes an `asyncio.Event` only while someone
waits on it. Every method is the stdlib's.
"""

from __future__ import annotations

import asyncio
from collections import deque

_NO_PUTTERS: deque = deque()  # an unbounded queue never waits to put: always empty


class _JoinFlag:
    """What `asyncio.Queue` uses of its `_finished` Event (set, clear, is_set, wait), with the
    Event (and its waiters' deque) made only when `join()` has to wait."""

    __slots__ = ("_set", "_event")

    def __init__(self) -> None:
        self._set = True
        self._event: asyncio.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        event, self._event = self._event, None
        if event is not None:
            event.set()

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        if self._event is None:
            self._event = asyncio.Event()
        return await self._event.wait()


class LeanQueue(asyncio.Queue):
    """An unbounded `asyncio.Queue` without the per-instance putters' deque and join Event."""

    def __init__(self, maxsize: int = 0):
        if maxsize > 0:
            raise ValueError("LeanQueue is unbounded (Engine.IO's queue is)")
        super().__init__()
        self._putters = _NO_PUTTERS
        self._finished = _JoinFlag()


def install(eio) -> None:
    """Engine.IO sockets of this server (only) get a `LeanQueue` (python-engineio builds each
    socket's queue with `server.create_queue()`)."""
    eio.create_queue = LeanQueue
