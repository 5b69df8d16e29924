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
- its getters in a list (`_Waiters`: python-engineio's writer is the one getter);
- `on_put`, called after every put once set: a WebSocket's `socket_loops.QueueWriter.wake`,
  which starts a writing task only when there is something to write (no getter waits then).

`get()` and `put_nowait()` are the stdlib's: a put only wakes the oldest waiting getter (it
leaves `_getters`, which the fast path's idle test reads) and the item stays queued until that
getter's task runs and takes it. A getter whose task is cancelled after the wake-up (the
writer's `asyncio.timeout` expiring, or the task cancelled, in the loop pass of the put) so
leaves the item for the next `get()`. An earlier version handed the item itself to the getter's
Future (and on 3.11 returned that Future from `get()`): such a cancel then dropped the item
(`test_an_item_put_as_its_waiting_getter_is_cancelled_stays_in_the_queue`).
"""

from __future__ import annotations

import asyncio
from collections import deque

_NO_PUTTERS: deque = deque()  # an unbounded queue never waits to put: always empty
_NO_ITEMS: deque = deque()  # an empty queue's items: never added to (`_put` makes a deque first)


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
    """An unbounded `asyncio.Queue` holding no deque or Event of its own while it is empty, that
    calls `on_put()` (when set) after each put."""

    on_put = None  # (an instance attribute once set)

    def __init__(self, maxsize: int = 0):
        if maxsize > 0:
            raise ValueError("LeanQueue is unbounded (Engine.IO's queue is)")
        super().__init__()
        self._getters = _Waiters()
        self._putters = _NO_PUTTERS
        self._finished = _JoinFlag()

    def put_nowait(self, item) -> None:
        super().put_nowait(item)  # (`put()` of an unbounded queue is this)
        if self.on_put is not None:
            self.on_put()

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


def install(eio) -> None:
    """Engine.IO sockets of this server (only) get a `LeanQueue` (python-engineio builds each
    socket's queue with `server.create_queue()`)."""
    eio.create_queue = LeanQueue
