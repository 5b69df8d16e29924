"""A lighter `asyncio.Queue` for python-engineio's per-socket packet queue (one per connection).

`asyncio.Queue` allocates, per instance, four deques (its items, the getters, the putters and
its `join()` Event's waiters) and that Event: about 3 KB per connection, most of it never used.
Engine.IO's queue is unbounded, so nobody ever waits to put (the putters' deque stays empty),
and `join()` is awaited only when a socket closes. `LeanQueue` is an `asyncio.Queue` (the
broadcast fast path reads its `_getters`, see internals.py) whose putters' deque is one shared
empty deque, and whose `join()` event is a flag that makes an `asyncio.Event` only while someone
waits on it.

On Python 3.11, `get()` returns a Future rather than a coroutine: python-engineio's writer waits
with `asyncio.wait_for(queue.get(), timeout)`, and 3.11's `wait_for` wraps a coroutine in a Task
(~0.7 KB alive for as long as the connection is idle; a Future it takes as it is). `put` hands
the item straight to the oldest waiting getter's Future (that getter leaves `_getters`, as a
woken stdlib getter does); a getter cancelled (the timeout) leaves `_getters` at once. What
differs from the stdlib: the Future is not a coroutine (`asyncio.create_task(q.get())` refuses it;
`ensure_future` takes it), and an item handed to a getter whose awaiting task is cancelled before
it runs again is lost with it, where the stdlib's would stay queued; `wait_for` (3.11) returns the
item in that case, and python-engineio's only `get()` is inside `wait_for`. From 3.12 on,
`wait_for` makes no Task, and `get()` is the stdlib's. Every other method is the stdlib's.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections import deque

_NO_PUTTERS: deque = deque()  # an unbounded queue never waits to put: always empty
# The context `_forget_cancelled` runs in (it reads no context variable): given, so that adding it
# does not copy the current context for every get().
_CONTEXT = contextvars.Context()


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

    if sys.version_info < (3, 12):
        def get(self) -> asyncio.Future:  # type: ignore[override]
            """A Future of the next item (see the module's docstring)."""
            getter = self._get_loop().create_future()
            if self._queue:
                getter.set_result(self.get_nowait())
                return getter
            self._getters.append(getter)
            getter.add_done_callback(self._forget_cancelled, context=_CONTEXT)
            return getter

        def _forget_cancelled(self, getter: asyncio.Future) -> None:
            if getter.cancelled():
                try:
                    self._getters.remove(getter)
                except ValueError:
                    pass

        def put_nowait(self, item) -> None:
            getters = self._getters
            while getters:
                getter = getters.popleft()
                if not getter.done():
                    self._unfinished_tasks += 1
                    self._finished.clear()
                    getter.set_result(item)
                    return
            super().put_nowait(item)


def install(eio) -> None:
    """Engine.IO sockets of this server (only) get a `LeanQueue` (python-engineio builds each
    socket's queue with `server.create_queue()`)."""
    eio.create_queue = LeanQueue
