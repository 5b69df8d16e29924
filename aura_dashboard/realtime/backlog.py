"""The cut-off of slow consumers.

python-engineio queues every outgoing packet of a session in an unbounded `asyncio.Queue`
(`eio_socket.queue`); a client that stops reading would make it grow without end (and,
over WebSocket, park the writer in a drain that never returns). `BacklogWatch` looks at
every queue a few times a second and disconnects a session whose backlog passes
`websocket.max_client_backlog` packets or `websocket.max_client_backlog_bytes` bytes (what
waits in its queue plus what waits in its connection's write buffer, where the broadcast fast
path writes), dropping what was queued and aborting its TCP connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio
from aiohttp import web

from ..tasks import stop_if_cancelled
from .server import session_in_query

log = logging.getLogger(__name__)
SWEEP_INTERVAL_S = 0.25


class BacklogWatch:
    """Disconnects Engine.IO sessions whose outgoing backlog passes `max_backlog` packets or
    `max_backlog_bytes` bytes."""

    def __init__(self, sio: socketio.AsyncServer, max_backlog: int, socketio_path: str,
                 interval_s: float = SWEEP_INTERVAL_S, max_backlog_bytes: int | None = None):
        self.sio = sio
        self.max_backlog = max_backlog
        self.max_backlog_bytes = max_backlog_bytes
        self.socketio_path = socketio_path.rstrip("/")
        self.interval_s = interval_s
        self.cut_off = 0
        # eio sid -> the TCP transport of its WebSocket, for sessions upgraded from polling
        # (a session that opened on WebSocket is found through its handshake request).
        self._upgrades: dict[str, asyncio.BaseTransport] = {}

    async def track_upgrade(self, request: web.Request, response: web.StreamResponse) -> None:
        """on_response_prepare: remember which connection carries an upgraded session."""
        if (isinstance(response, web.WebSocketResponse) and request.path.rstrip("/") == self.socketio_path
                and request.transport is not None):
            sid = session_in_query(request.query_string)
            if sid is not None:
                self._upgrades[sid] = request.transport

    def _transport(self, eio_sid: str, keep: bool = False) -> asyncio.BaseTransport | None:
        transport = self._upgrades.get(eio_sid) if keep else self._upgrades.pop(eio_sid, None)
        if transport is not None:
            return transport
        environ = self.sio.environ.get(eio_sid) or {}
        request = environ.get("aiohttp.request")
        if request is not None and environ.get("QUERY_STRING", "").find("transport=websocket") >= 0:
            return request.transport
        return None

    async def sweep(self) -> int:
        """One look at every session; returns how many were cut off."""
        sockets = self.sio.eio.sockets
        count = 0
        for eio_sid, eio_socket in list(sockets.items()):
            if eio_socket.closed or (eio_socket.queue.qsize() <= self.max_backlog
                                     and not self._over_bytes(eio_sid, eio_socket)):
                continue
            await self._cut_off(eio_sid, eio_socket)
            count += 1
        for eio_sid in [s for s in self._upgrades if s not in sockets]:
            del self._upgrades[eio_sid]
        return count

    def pending_bytes(self, eio_sid: str, eio_socket: Any) -> int:
        """Bytes waiting for one client: its queued packets and its connection's write buffer."""
        queued = sum(len(pkt.data) for pkt in list(getattr(eio_socket.queue, "_queue", ()))
                     if pkt is not None and isinstance(pkt.data, (str, bytes)))
        transport = self._transport(eio_sid, keep=True)
        buffered = transport.get_write_buffer_size() if transport is not None and not transport.is_closing() else 0
        return queued + buffered

    def _over_bytes(self, eio_sid: str, eio_socket: Any) -> bool:
        return self.max_backlog_bytes is not None and self.pending_bytes(eio_sid, eio_socket) > self.max_backlog_bytes

    async def _cut_off(self, eio_sid: str, eio_socket: Any) -> None:
        backlog = eio_socket.queue.qsize()
        pending = self.pending_bytes(eio_sid, eio_socket)
        transport = self._transport(eio_sid)
        log.warning("slow consumer %s: %d packets, %d bytes waiting (websocket.max_client_backlog is %d, "
                    "max_client_backlog_bytes %s); disconnecting it", eio_sid, backlog, pending,
                    self.max_backlog, self.max_backlog_bytes)
        queue = eio_socket.queue
        while not queue.empty():  # what it never read is dropped now, not when it goes
            queue.get_nowait()
            queue.task_done()
        try:
            await eio_socket.close(wait=False, abort=True, reason=self.sio.eio.reason.TRANSPORT_ERROR)
        except Exception:
            log.exception("closing slow consumer %s failed", eio_sid)
        queue.put_nowait(None)  # wakes its writer (WebSocket) or its pending poll
        if transport is not None and not transport.is_closing():
            transport.abort()  # a writer stuck in drain only wakes when the connection goes
        self.cut_off += 1

    async def run(self) -> None:
        while True:
            stop_if_cancelled()
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("backlog sweep failed")
