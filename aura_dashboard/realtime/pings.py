"""One timer for the Engine.IO pings of every connection, instead of a task per connection.

python-engineio starts, for each socket and each ping cycle, a background task that sleeps
`ping_interval` and then queues a PING (`AsyncSocket._send_ping`): about 1.6 KB per idle
connection (the task, its coroutine, the sleep's future and timer). `PingScheduler` keeps one
`(due, socket)` entry per waiting socket in a deque and one timer for the earliest: the
interval is the server's, the same for every socket, so entries are due in the order they were
added. At its time a socket gets exactly what `_send_ping` gives it: unless it is closing or
closed, `last_ping` is set and a PING is queued (`send` would check the ping timeout that was
just reset, then put on the unbounded queue). The next cycle starts, as python-engineio's does,
when the client's PONG arrives (`schedule_ping`).

`GuardedSocket.schedule_ping` uses it when `internals.ping_internals_missing()` finds
python-engineio's ping as described; otherwise the stock task per ping, with one WARNING.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from engineio import packet as eio_packet

log = logging.getLogger(__name__)


class PingScheduler:
    """The pings of every Engine.IO socket of one server, due `interval_s` after they are scheduled.

    :param interval_s: the server's `ping_interval` (seconds).
    """

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._due: deque[tuple[float, Any]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._due)

    def schedule(self, sock: Any) -> None:
        """`sock.ping_due()` in `interval_s` (on the running loop)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests run several): what was due on the old one is gone
            self.close()
            self._loop = loop
        when = loop.time() + self.interval_s
        self._due.append((when, sock))
        if self._timer is None:
            self._timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = self._loop
        now = loop.time()
        due = self._due
        while due and due[0][0] <= now:
            _when, sock = due.popleft()
            try:
                sock.ping_due()
            except Exception:  # one socket's failure must not stop the others' pings
                log.exception("the Engine.IO ping of %s failed", getattr(sock, "sid", "?"))
        if due:
            self._timer = loop.call_at(due[0][0], self._fire)

    def close(self) -> None:
        """Forget every scheduled ping (the server is going away)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()


def send_ping(sock: Any) -> None:
    """What python-engineio's `AsyncSocket._send_ping` does once its sleep is over."""
    if not sock.closing and not sock.closed:
        sock.last_ping = time.time()
        sock.queue.put_nowait(eio_packet.Packet(eio_packet.PING))
