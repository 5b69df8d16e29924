"""One sweep for the read deadline of every WebSocket, instead of a timer per read.

python-engineio ends a WebSocket whose client sent nothing for `ping_interval + ping_timeout`
(its read of each message is under `wait_for`; a client answers every PING, so only a gone
or stuck client stays silent that long). Holding a timeout around every idle read costs a
Timeout and a TimerHandle per connection. `ReadDeadlines` keeps the same rule with one timer
for the whole server: the reader of each socket records the loop time of its last message
(`sock.last_read`, socket_loops.py), and every `period` the sweep aborts the connection of each
watched socket silent for longer than the limit (`sock.read_deadline_passed()`); the read then
fails and the socket's handler ends as after python-engineio's timeout. The limit is read from
the server at each sweep (`ping_interval + ping_timeout`), so a change of either applies at once;
a connection is ended at most `period` (an eighth of the limit) after its deadline.

The sweep runs only while a socket is watched: `watch()` starts it, a reader's end `forget()`s
its socket, and the sweep stops when no watched socket is left.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

SWEEPS_PER_LIMIT = 8  # the sweep's period is the limit divided by this


class ReadDeadlines:
    """The read deadlines of one Engine.IO server's WebSockets.

    :param eio: the python-engineio server (its `ping_interval` and `ping_timeout`, read at each sweep).
    """

    def __init__(self, eio: Any):
        self.eio = eio
        self._watched: set[Any] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.expired = 0  # connections ended by the sweep (for tests and logs)

    def limit_s(self) -> float:
        return self.eio.ping_interval + self.eio.ping_timeout

    def __len__(self) -> int:
        return len(self._watched)

    def watch(self, sock: Any) -> None:
        """Hold `sock` to its read deadline until its connection ends (`sock.last_read` is set)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (tests run several): the old one's sockets are gone
            self.close()
            self._loop = loop
        self._watched.add(sock)
        if self._timer is None:
            self._timer = loop.call_later(self.limit_s() / SWEEPS_PER_LIMIT, self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        limit = self.limit_s()
        oldest = self._loop.time() - limit
        for sock in list(self._watched):
            # A closed socket is held to it too: python-engineio's ping timeout closes a socket
            # without ending its WebSocket, which was left to the timed-out read.
            if sock.last_read < oldest:
                self._watched.discard(sock)
                self.expired += 1
                try:
                    sock.read_deadline_passed()
                except Exception:  # one socket's failure must not stop the others' deadlines
                    log.exception("ending the silent WebSocket of %s failed", getattr(sock, "sid", "?"))
        if self._watched:
            self._timer = self._loop.call_later(limit / SWEEPS_PER_LIMIT, self._sweep)

    def forget(self, sock: Any) -> None:
        """`sock` stopped reading (its handler is ending)."""
        self._watched.discard(sock)

    def close(self) -> None:
        """Stop the sweep and forget every socket (the server is going away)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._watched.clear()
