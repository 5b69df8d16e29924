"""A lighter `asyncio.Queue` for python-engineio's per-socket packet queue (one per connection).

`asyncio.Queue` allocates, per instance, four deques (its items, the getters, the putters and
its `join()` Event's waiters; ~760 B each: a deque holds a block of 64 slots from the start) and
that Event, most of it never used by an idle connection. Engine.IO's queue is unbounded, so
nobody ever waits to put, and `join()` is awaited only when a socket closes. `LeanQueue` is an
`asyncio.Queue` (the broadcast fast path reads its `_getters`, see internals.py) with:
- one shared empty putters' deque;
- a `join()` flag that makes an `asyncio.Event` only while someone waits on it;
- its items' deque made on the first put and let go when it empties (one shared empty deque
  meanwhile): an idle connection's queue is empty;
- its getters in a list (`_Waiters`: python-engineio's writer is the one getter).

`get()` is built on a Future per getter: `put` hands the item straight to the oldest waiting
getter's Future (that getter leaves `_getters`, as a woken stdlib getter does), and a getter
cancelled (a timeout) leaves `_getters` at once. On Python 3.11, `get()` returns that Future
itself rather than a coroutine: python-engineio's writer waits with
`asyncio.wait_for(queue.get(), timeout)`, and 3.11's `wait_for` wraps a coroutine in a Task
(~0.5 KB alive as long as the connection is idle); a Future it takes as it is. What differs
there from the stdlib: the Future is not a coroutine (`asyncio.create_task(q.get())` refuses it;
`ensure_future` takes it), and an item handed to a getter whose awaiting task is cancelled
before it runs again is lost with it (3.11's `wait_for` returns the item in that case, and
python-engineio's only `get()` is inside `wait_for`). From 3.12 on, `wait_for` makes no Task and
`get()` is a coroutine that puts such an item back in front. The other methods are the stdlib's.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections import deque

_NO_PUTTERS: deque = deque()  # an unbounded queue never waits to put: always empty
_NO_ITEMS: deque = deque()  # an empty queue's items: never added to (`_put` makes a deque first)
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


class _Waiters(list):
    """The getters: a list (an empty one holds no block of slots), with the deque's `popleft`."""

    __slots__ = ()

    def popleft(self):
        return self.pop(0)


class LeanQueue(asyncio.Queue):
    """An unbounded `asyncio.Queue` holding no deque or Event of its own while it is empty."""

    def __init__(self, maxsize: int = 0):
        if maxsize > 0:
            raise ValueError("LeanQueue is unbounded (Engine.IO's queue is)")
        super().__init__()
        self._getters = _Waiters()
        self._putters = _NO_PUTTERS
        self._finished = _JoinFlag()

    def _init(self, maxsize: int) -> None:
        self._queue = _NO_ITEMS

    def _put(self, item) -> None:
        if self._queue is _NO_ITEMS:
            self._queue = deque()
        self._queue.append(item)

    def _get(self):
        item = self._queue.popleft()
        if not self._queue:
            self._queue = _NO_ITEMS
        return item

    def _getter(self) -> asyncio.Future:
        """A Future of the next item: done already when one is queued, else waiting in `_getters`."""
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

    if sys.version_info < (3, 12):
        def get(self) -> asyncio.Future:  # type: ignore[override]
            """A Future of the next item (see the module's docstring)."""
            return self._getter()
    else:
        async def get(self):
            getter = self._getter()
            try:
                return await getter
            except asyncio.CancelledError:
                if getter.done() and not getter.cancelled():  # handed over, then this task cancelled
                    self._put_back(getter.result())
                raise

    def _put_back(self, item) -> None:
        """An item handed to a getter that never took it: first in line again (still unfinished)."""
        for getter in list(self._getters):
            if not getter.done():
                self._getters.remove(getter)
                getter.set_result(item)
                return
        if self._queue is _NO_ITEMS:
            self._queue = deque()
        self._queue.appendleft(item)

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
