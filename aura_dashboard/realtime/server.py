"""Builds the python-socketio AsyncServer from the settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import socketio
from aiohttp import WSCloseCode
from engineio import async_socket as eio_socket
from engineio import exceptions as eio_exceptions
from socketio import packet as sio_packet

from ..config import FeatureChange
from ..config.schema import CorsSettings, UpdateSettings, WebSocketSettings
from ..errors import ack_error
from ..security import AccessGuard, AllowedOrigins, OriginPolicy
from ..security.packets import ClientMistakes, Refusal, engineio_text_ok, inspect_packet
from . import lean_queue, socket_loops
from .internals import ping_internals_missing, socket_loop_internals_missing
from .lean_queue import LeanQueue
from .pings import PingScheduler, send_ping
from .read_deadlines import ReadDeadlines

log = logging.getLogger(__name__)


def session_in_query(query_string: str) -> str | None:
    """The Engine.IO session id (`sid`) in a request's query string, None without one.

    Read from the string, not `request.query`: that builds (and the request then keeps, for a
    WebSocket's life) a MultiDict of the query, ~400 B per connection."""
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        if name == "sid":
            return value
    return None


def transports(websocket_fallback: bool) -> list[str]:
    return ["polling", "websocket"] if websocket_fallback else ["websocket"]


class CheckedWebSocket:
    """python-engineio's aiohttp WebSocket, refusing a text frame that is no Engine.IO packet
    (python-engineio would raise inside its handler, and the HTTP error path would then write
    a 500 into the upgraded stream): the connection is closed with a reason instead."""

    __slots__ = ("_ws", "_socket")

    def __init__(self, ws: Any, socket: GuardedSocket):
        self._ws = ws
        self._socket = socket

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    async def wait(self) -> Any:
        received = getattr(self._ws, "received", None)
        if received is not None:  # FastPathWebSocket: aiohttp's receive() awaited here, a coroutine
            data = received(await self._ws.response.receive())  # fewer held by every idle read
        else:
            data = await self._ws.wait()
        if isinstance(data, str) and not engineio_text_ok(data):
            await self._socket.refuse_frame("malformed_frame", "a text frame that is no Engine.IO packet")
            raise OSError("malformed Engine.IO packet")  # python-engineio ends the session on OSError
        return data


class GuardedSocket(eio_socket.AsyncSocket):
    """An Engine.IO session whose malformed input ends it, with a reason, instead of raising
    into the HTTP layer: a long-polling POST that does not decode is answered 400 and ends
    the session (as an oversized one does); a bad WebSocket frame closes the connection."""

    gate: GuardedServer
    writer: socket_loops.QueueWriter | None = None  # its WebSocket's, under socket_loops
    last_read: float = 0.0  # the loop time of the last message its WebSocket read (socket_loops)

    async def handle_post_request(self, environ: dict) -> None:
        try:
            await super().handle_post_request(environ)
        except eio_exceptions.EngineIOError:
            raise
        except Exception as exc:
            self.gate.mistakes.note(self.sid, "malformed_payload", str(exc)[:120] or type(exc).__name__,
                                    self.gate.client_of(self.sid))
            await self.close(wait=False, abort=False, reason=self.server.reason.TRANSPORT_ERROR)
            raise eio_exceptions.EngineIOError("malformed payload") from None  # -> 400, session gone

    def _websocket_handler(self, ws: Any) -> Any:
        """The WebSocket's handler, a coroutine: socket_loops' (which reports its failures to
        `websocket_failed` itself, so that no frame of this method stays alive with the
        connection), or python-engineio's inside `_stock_websocket_handler`."""
        self._ws = ws
        checked = CheckedWebSocket(ws, self)
        # python-engineio's loops without a task or timer while idle (socket_loops.py)
        if self.gate.lean_loops and isinstance(self.queue, LeanQueue):
            return socket_loops.websocket_handler(self, checked, self.gate.read_deadlines)
        return self._stock_websocket_handler(checked)

    async def _stock_websocket_handler(self, checked: CheckedWebSocket) -> None:
        try:
            await super()._websocket_handler(checked)
        except Exception as exc:
            await self.websocket_failed(exc)

    async def websocket_failed(self, exc: Exception) -> None:
        """The WebSocket handler raised: never out into aiohttp (the response is an upgraded
        stream); the session ends and the connection is closed with a protocol error."""
        self.gate.mistakes.note(self.sid, "websocket_error", str(exc)[:120] or type(exc).__name__,
                                self.gate.client_of(self.sid))
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_ERROR)
        await self._close_websocket(WSCloseCode.PROTOCOL_ERROR, "malformed packet")

    def schedule_ping(self) -> None:
        """python-engineio's, with the server's one `PingScheduler` instead of a task per ping
        (realtime/pings.py); the stock task when python-engineio's ping is not as expected."""
        pings = self.gate.pings
        if pings is None:
            super().schedule_ping()
        elif self.last_ping:  # only once the previous ping was answered, as python-engineio
            self.last_ping = None
            pings.schedule(self)

    def ping_due(self) -> None:
        send_ping(self)

    def read_deadline_passed(self) -> None:
        """Nothing read for `ping_interval + ping_timeout` (`ReadDeadlines`): the connection is
        aborted, which fails the pending read and so ends the handler, as python-engineio's
        timed-out read does. The transport is the WebSocket's own (not found through the
        session's environ: python-engineio's ping timeout may have closed the session, and
        python-socketio forgotten its environ, while the connection stays open)."""
        response = self._websocket_response()
        transport = getattr(getattr(response, "_writer", None), "transport", None)
        if transport is not None:
            transport.abort()
        elif response is not None and not response.closed:  # (no writer: aiohttp changed) its close
            self._deadline_close = asyncio.ensure_future(response.close())  # (held till it ends)

    async def refuse_frame(self, kind: str, message: str) -> None:
        self.gate.mistakes.note(self.sid, kind, message, self.gate.client_of(self.sid))
        await self._close_websocket(WSCloseCode.PROTOCOL_ERROR, f"{kind}: {message}")

    def _websocket_response(self) -> Any:
        """The aiohttp `WebSocketResponse` of this session's WebSocket (None before one opened)."""
        return getattr(getattr(self, "_ws", None), "_sock", None)

    async def _close_websocket(self, code: int, message: str) -> None:
        response = self._websocket_response()
        if response is not None and not response.closed:
            try:
                await response.close(code=code, message=message.encode()[:120])
            except Exception:  # the peer is gone already
                pass


class GuardedServer(socketio.AsyncServer):
    """python-socketio's server with a gate before its dispatch: every incoming packet is
    inspected (`security.packets.inspect_packet`) and a refused one gets its defined outcome;
    the default namespace `/` is not served (every panel has its own, behind the key).

    :param guard: counts refused events against the connection's event bucket.
    :param mistakes: where malformed input is reported (once per connection, a summary a minute).
    """

    def __init__(self, *args: Any, guard: AccessGuard | None = None, mistakes: ClientMistakes | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.guard = guard
        self.mistakes = mistakes or ClientMistakes()
        missing = ping_internals_missing()
        if missing:
            log.warning("one task per Engine.IO ping (python-engineio's own) instead of the shared ping "
                        "scheduler: these internals of python-engineio are missing or changed shape "
                        "(a version other than the one setup.cfg pins?): %s", "; ".join(missing))
        self.pings = PingScheduler(self.eio.ping_interval) if not missing else None
        missing = socket_loop_internals_missing()
        if missing:
            log.warning("python-engineio's own WebSocket handler (a Task and wait_for per read) instead of "
                        "socket_loops.py's: %s", "; ".join(missing))
        self.lean_loops = not missing
        # Every session's queue is a LeanQueue: ~1.7 KB less per connection, and socket_loops'
        # writer is woken by its `on_put`.
        lean_queue.install(self.eio)
        self.read_deadlines = ReadDeadlines(self.eio)

    async def shutdown(self) -> None:
        if self.pings is not None:
            self.pings.close()
        self.read_deadlines.close()
        await super().shutdown()

    def client_of(self, eio_sid: str) -> str | None:
        request = (self.environ.get(eio_sid) or {}).get("aiohttp.request")
        if request is None:
            return None
        if self.guard is None:
            return request.remote
        return self.guard.client(request.remote, request.headers.get("X-Forwarded-For"))

    async def _handle_eio_connect(self, eio_sid: str, environ: dict) -> Any:
        socket = self.eio.sockets.get(eio_sid)
        if type(socket) is eio_socket.AsyncSocket:
            socket.__class__ = GuardedSocket  # python-engineio builds its sessions itself
            socket.gate = self
        return await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        self.mistakes.forget(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            pkt = inspect_packet(self.packet_class, data)
            if isinstance(pkt, Refusal):
                await self._refuse(eio_sid, pkt)
            elif pkt.packet_type == sio_packet.CONNECT:
                namespace = pkt.namespace or "/"
                if namespace not in self.namespace_handlers:
                    await self._send_packet(eio_sid, self.packet_class(
                        sio_packet.CONNECT_ERROR, namespace=namespace, data={
                            "code": "unknown_namespace",
                            "message": f"no namespace {namespace!r}: connect to a panel's namespace "
                                       f"({', '.join(sorted(self.namespace_handlers))})"}))
                else:
                    await self._handle_connect(eio_sid, namespace, pkt.data)
            elif pkt.packet_type == sio_packet.DISCONNECT:
                await self._handle_disconnect(eio_sid, pkt.namespace, self.reason.CLIENT_DISCONNECT)
            elif not self.manager.sid_from_eio_sid(eio_sid, pkt.namespace or "/"):
                await self._refuse(eio_sid, Refusal("not_connected", "an event on a namespace this connection "
                                                    "has not joined", pkt.namespace or "/"))
            else:
                await self._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        except Exception:  # a failure of ours, not the client's: logged, the connection kept
            log.exception("handling a packet from %s failed", eio_sid)

    async def _refuse(self, eio_sid: str, refusal: Refusal) -> None:
        """A `bad_request` acknowledgement where the packet can be answered (an ack id on a
        joined namespace; `rate_limited` past the connection's event bucket), else the session
        is closed after a connect error that says why."""
        self.mistakes.note(eio_sid, refusal.kind, refusal.message, self.client_of(eio_sid))
        sid = self.manager.sid_from_eio_sid(eio_sid, refusal.namespace)
        if refusal.ack_id is not None and sid is not None:
            wait = self.guard.take_event(sid) if self.guard is not None else 0.0
            answer = (ack_error("rate_limited", f"too many events; retry in {wait:.1f}s") if wait > 0
                      else ack_error(refusal.kind, refusal.message))
            await self._send_packet(eio_sid, self.packet_class(
                sio_packet.ACK, namespace=refusal.namespace, id=refusal.ack_id, data=[answer]))
            return
        await self.close_session(eio_sid, refusal)

    async def close_session(self, eio_sid: str, refusal: Refusal) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed:
            return
        await self._send_packet(eio_sid, self.packet_class(
            sio_packet.CONNECT_ERROR, namespace=refusal.namespace, data=refusal.data()))
        await socket.close(wait=False, abort=False, reason=self.reason.SERVER_DISCONNECT)
        socket.queue.put_nowait(None)  # the writer sends what is queued, then ends the connection


def build_socketio(ws: WebSocketSettings, cors: CorsSettings, updates: UpdateSettings, *,
                   origins: AllowedOrigins, websocket_fallback: bool,
                   client_manager: socketio.AsyncManager | None = None,
                   guard: AccessGuard | None = None, mistakes: ClientMistakes | None = None) -> GuardedServer:
    """The server: Engine.IO's ping, payload limit and transports from `websocket`, the allowed
    `origins` (credentials per `security.cors`), long-polling compression from `updates`;
    `client_manager` is the message queue's manager in a cluster (None: this process alone);
    `guard` and `mistakes` as in `GuardedServer`."""
    return GuardedServer(
        guard=guard, mistakes=mistakes,
        async_mode="aiohttp",
        client_manager=client_manager,
        ping_interval=ws.ping_interval_ms / 1000,
        ping_timeout=ws.pong_timeout_ms / 1000,
        max_http_buffer_size=ws.max_message_size_bytes,
        cors_allowed_origins=OriginPolicy(origins),
        cors_credentials=cors.allow_credentials,
        transports=transports(websocket_fallback),
        http_compression=updates.compression_enabled,
        compression_threshold=updates.compression_threshold_bytes,
        logger=False,
        engineio_logger=False,
    )


def follow_fallback_flag(sio: socketio.AsyncServer) -> Callable[[FeatureChange], None]:
    """A flag listener: new sessions honour `features.websocket_fallback` at once; sessions
    already open keep their transport."""

    def follow(change: FeatureChange) -> None:
        if change.flag == "websocket_fallback":
            sio.eio.transports = transports(change.new)
            log.info("transports now %s", sio.eio.transports)

    return follow
