"""Broadcasting one event to a room: encoded once, the same WebSocket frame written to every client.

python-socketio's stock broadcast encodes the Socket.IO packet once, but then pays per
recipient an asyncio task, a put on the Engine.IO socket's queue, a wake-up of that socket's
writer task, an Engine.IO encode and an aiohttp frame build (plus a per-client deflate when
permessage-deflate was negotiated). `FastBroadcaster.emit` keeps the protocol byte for byte (the
packet is encoded by python-socketio's own packet class) and builds the WebSocket frame once;
for each recipient that is *idle* it writes that frame straight to the connection's transport.

Ordering. Every other packet of a socket (pings, acknowledgements, per-client events, the
close packet) still goes through Engine.IO's queue and its writer task. A frame written
directly must not overtake any of those, so a recipient takes the fast path only when
nothing of its own is in flight: its queue is empty *and* no writer is at work. Under
socket_loops.py (the server's own WebSocket loops) a writing task exists only while packets are
waiting or being written (`QueueWriter.idle`); under python-engineio's own handler, its writer
task must be parked in `queue.get()` (the one waiter in the queue's `_getters`, not yet woken).
A packet that was put in the queue but not yet written either sits in the queue or has a
writer at work (woken, or suspended in `drain()`); in each case the recipient takes the stock
path: the packet is queued behind the rest, and as long as the writer is busy later broadcasts
queue behind it too, so per-socket order is the order of sends.

Bound. A direct write does not wait for the client to read. A recipient whose transport
already buffers more than `max_buffered_bytes` takes the stock path, whose writer awaits
`drain()`; so the fast path never adds more than one frame beyond that bound, and a client
that stops reading ends up with its packets on its Engine.IO queue, bounded (or not) exactly as
the stock path bounds it.

With a message queue (Redis, RabbitMQ: python-socketio's pub/sub manager fans each emit out
across instances), `QueueFastBroadcaster` delivers each instance's part of an emit, its own or one
arriving from the queue, the same way. The stock `sio.emit` is used whole by `StockBroadcaster`
(the fallback, and the strategy for any other client manager), and per recipient for
long-polling clients, upgrading sockets, sockets whose ping timed out,
connections with permessage-deflate negotiated, and packets with binary attachments.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

import socketio
from socketio.async_pubsub_manager import AsyncPubSubManager
from aiohttp import web
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from .internals import missing_internals, upgraded_protocol_internals_missing

log = logging.getLogger(__name__)

DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final, uncompressed WebSocket text frame (RFC 6455 §5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


class StockBroadcaster:
    """python-socketio's own emit: the fallback when an internal the fast path uses is missing,
    and the strategy for a client manager other than python-socketio's plain or pub/sub ones.

    Each stream room gets its own `batch` per window (behind a message queue, other instances'
    clients cannot be grouped here); each is still in publish order.
    """

    def __init__(self, sio: socketio.AsyncServer):
        self.sio = sio
        self.fast_deliveries = 0
        self.stock_deliveries = 0

    # Connections are registered by `FastPathWebSocket` for the fast path; nothing to do here.
    def register(self, eio_sid: str, response: web.WebSocketResponse) -> None:
        """A WebSocket connection opened (only the fast path writes to it directly)."""

    def unregister(self, eio_sid: str, response: web.WebSocketResponse) -> None:
        """A WebSocket connection closed."""

    def connections(self) -> int:
        return 0

    async def emit(self, event: str, data: Any, *, room: str, namespace: str) -> None:
        await self.sio.emit(event, data, room=room, namespace=namespace)

    async def emit_here(self, event: str, data: Any, *, room: str, namespace: str) -> None:
        """To this instance's clients only (the message queue is away)."""
        await self.sio.emit(event, data, room=room, namespace=namespace, ignore_queue=True)

    async def emit_batches(self, pending: list[tuple[str, str, Any]], *,
                           room_of: Callable[[str], str]) -> None:
        """Send `(stream, namespace, envelope)`s, in publish order, as one `batch` per stream room."""
        by_stream: dict[tuple[str, str], list] = {}
        for stream, namespace, envelope in pending:
            by_stream.setdefault((stream, namespace), []).append(envelope)
        for (stream, namespace), batch in by_stream.items():
            await self.sio.emit("batch", batch, room=room_of(stream), namespace=namespace)


class FastBroadcaster(StockBroadcaster):
    """`await emit(event, data, room, namespace)`: one encode per broadcast, one frame for all.

    The strategy for one process on python-socketio's plain manager, which knows every
    recipient. `enabled = False` sends everything the stock way (the benchmark's baseline).
    """

    def __init__(self, sio: socketio.AsyncServer, *, enabled: bool = True,
                 max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES):
        super().__init__(sio)
        self.enabled = enabled
        self.max_buffered_bytes = max_buffered_bytes
        self._connections: dict[str, web.WebSocketResponse] = {}
        # Recipients with a stock send not yet on their Engine.IO queue (see `_deliver`).
        self._queueing: dict[str, int] = {}

    # -- connections, registered by `FastPathWebSocket` ------------------------------------
    def register(self, eio_sid: str, response: web.WebSocketResponse) -> None:
        self._connections[eio_sid] = response

    def unregister(self, eio_sid: str, response: web.WebSocketResponse) -> None:
        if self._connections.get(eio_sid) is response:
            del self._connections[eio_sid]

    def connections(self) -> int:
        return len(self._connections)

    # -- broadcasting ----------------------------------------------------------------------
    async def emit(self, event: str, data: Any, *, room: str, namespace: str) -> None:
        if not self.enabled:
            await super().emit(event, data, room=room, namespace=namespace)
            return
        if namespace not in self.sio.manager.rooms:
            return
        encoded = self._encode(event, data, namespace)
        if encoded is None:  # binary attachments: leave them to the stock path
            await self.sio.emit(event, data, room=room, namespace=namespace)
            return
        await self._deliver([eio_sid for _sid, eio_sid in self.sio.manager.get_participants(namespace, room)],
                            *encoded)

    async def emit_here(self, event: str, data: Any, *, room: str, namespace: str) -> None:
        # One process: this instance's clients are all of them.
        await self.emit(event, data, room=room, namespace=namespace)

    async def emit_batches(self, pending: list[tuple[str, str, Any]], *,
                           room_of: Callable[[str], str]) -> None:
        """Send `(stream, namespace, envelope)`s, in publish order, as `batch` events.

        Each client gets one `batch` per window holding the envelopes of every stream it is
        subscribed to, in publish order. Clients subscribed to the same set of streams share
        one encoding and one frame.
        """
        if not self.enabled:
            await super().emit_batches(pending, room_of=room_of)
            return
        namespaces: dict[str, list[tuple[str, Any]]] = {}
        for stream, namespace, envelope in pending:
            namespaces.setdefault(namespace, []).append((stream, envelope))
        rooms = self.sio.manager.rooms
        for namespace, items in namespaces.items():
            ns_rooms = rooms.get(namespace)
            if not ns_rooms:
                continue
            # Which of these streams each client is subscribed to; clients with the same set
            # form one group.
            streams_of: dict[str, tuple[str, ...]] = {}
            for stream in dict.fromkeys(stream for stream, _ in items):
                members = ns_rooms.get(room_of(stream))
                if members:
                    for eio_sid in members._fwdm.values():
                        streams_of[eio_sid] = streams_of.get(eio_sid, ()) + (stream,)
            groups: dict[tuple[str, ...], list[str]] = {}
            for eio_sid, streams in streams_of.items():
                groups.setdefault(streams, []).append(eio_sid)
            for streams, eio_sids in groups.items():
                wanted = set(streams)
                batch = [envelope for stream, envelope in items if stream in wanted]
                encoded = self._encode("batch", batch, namespace)
                if encoded is None:
                    await _send_stock_packet(self.sio, eio_sids, namespace, "batch", batch)
                    continue
                await self._deliver(eio_sids, *encoded)

    def _encode(self, event: str, data: Any, namespace: str):
        """The Engine.IO packet and its WebSocket frame, built as python-socketio builds them."""
        return self._encode_args([event, data], namespace)

    def _encode_args(self, args: list, namespace: str):
        """`_encode` for the event name and its arguments as one list (none, one or several)."""
        pkt = self.sio.packet_class(sio_packet.EVENT, namespace=namespace, data=args)
        encoded = pkt.encode()
        if isinstance(encoded, list):
            return None
        eio_pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        return eio_pkt, text_frame(eio_pkt.encode().encode("utf-8"))

    async def _deliver(self, eio_sids, eio_pkt, frame: bytes) -> None:
        sockets = self.sio.eio.sockets
        connections = self._connections
        limit = self.max_buffered_bytes
        deadline = time.time() - self.sio.eio.ping_timeout
        queueing = self._queueing
        slow: list[str] = []
        fast = 0
        for eio_sid in eio_sids:
            sock = sockets.get(eio_sid)
            response = connections.get(eio_sid)
            transport = None if sock is None or response is None or eio_sid in queueing else \
                _idle_transport(sock, response, deadline, limit)
            if transport is None:
                slow.append(eio_sid)
                continue
            transport.write(frame)
            fast += 1
        self.fast_deliveries += fast
        if slow:
            self.stock_deliveries += len(slow)
            await _send_stock(self.sio, slow, eio_pkt, queueing)


class QueueFastBroadcaster(FastBroadcaster):
    """The fast path behind a message queue's client manager (python-socketio's
    `AsyncPubSubManager`: Redis, RabbitMQ), where every instance delivers to its own clients.

    A pub/sub manager's emit hands the message to its `_handle_emit` for this instance, then
    publishes it; each other instance's listening task hands it to its own `_handle_emit`. That
    local part is a local room, so `_handle_emit` is replaced on this manager: an event without
    an acknowledgement callback, binary attachments or `skip_sid` is delivered here as
    `FastBroadcaster` delivers (one encode, one frame, written directly to idle recipients, the
    others queued in order); anything else goes to the manager's own `_handle_emit`. The message
    on the queue is python-socketio's own, so instances on the stock path interoperate.

    Batches: this instance does not know other instances' clients, so each stream room gets its
    own `batch` per window (as on the stock path), each in publish order.

    `from_queue` counts the envelopes that arrived from another instance and were delivered here
    by the fast path.
    """

    def __init__(self, sio: socketio.AsyncServer, manager: AsyncPubSubManager, *,
                 enabled: bool = True, max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES):
        super().__init__(sio, enabled=enabled, max_buffered_bytes=max_buffered_bytes)
        self.manager = manager
        self.from_queue = 0
        self._stock_handle_emit = manager._handle_emit
        manager._handle_emit = self._handle_emit  # this manager only (an instance attribute)

    async def emit(self, event: str, data: Any, *, room: str, namespace: str) -> None:
        # The manager's emit: this instance's recipients through `_handle_emit`, then the queue.
        await self.sio.emit(event, data, room=room, namespace=namespace)

    async def emit_here(self, event: str, data: Any, *, room: str, namespace: str) -> None:
        """To this instance's clients only (the message queue is away): the local part of an
        emit, by the same path (so per-socket order holds across the two)."""
        await self._handle_emit({"method": "emit", "event": event, "data": [data], "binary": False,
                                 "namespace": namespace, "room": room, "skip_sid": None, "callback": None,
                                 "host_id": self.manager.host_id})

    async def emit_batches(self, pending: list[tuple[str, str, Any]], *,
                           room_of: Callable[[str], str]) -> None:
        await StockBroadcaster.emit_batches(self, pending, room_of=room_of)

    async def _handle_emit(self, message: dict) -> None:
        data = message.get("data")
        if (not self.enabled or message.get("callback") or message.get("binary")
                or message.get("skip_sid") not in (None, [None]) or not isinstance(data, list)):
            await self._stock_handle_emit(message)
            return
        namespace = message.get("namespace") or "/"
        if namespace not in self.sio.manager.rooms:
            return
        # As the manager's `_handle_emit` and `AsyncManager.emit` unpack them: [None] is no argument.
        args = [] if len(data) == 1 and data[0] is None else data
        encoded = self._encode_args([message["event"], *args], namespace)
        if encoded is None:
            await self._stock_handle_emit(message)
            return
        if message.get("host_id") != self.manager.host_id:
            self.from_queue += 1
        await self._deliver([eio_sid for _sid, eio_sid in self.sio.manager.get_participants(namespace,
                                                                                            message.get("room"))],
                            *encoded)


def _idle_transport(sock, response: web.WebSocketResponse, deadline: float, limit: int):
    """The transport to write to when this recipient may take the fast path, else None."""
    if sock.closing or sock.closed or sock.upgrading or not sock.upgraded:
        return None
    if sock.last_ping and sock.last_ping < deadline:
        return None  # the stock send closes a socket whose ping timed out
    queue = sock.queue
    queue_writer = getattr(sock, "writer", None)
    if queue_writer is not None:
        # socket_loops: idle when nothing is queued and no writing task is at work.
        if not queue_writer.idle() or queue.qsize():
            return None  # something of this socket's own is queued or being written
    else:
        # python-engineio's writer: idle when nothing is queued and exactly one waiter, the
        # writer task, is parked in queue.get(). (A woken or cancelled waiter leaves the deque
        # before its task runs again, or is done.)
        getters = getattr(queue, "_getters", None)
        if getters is None or len(getters) != 1 or getters[0].done() or queue.qsize():
            return None  # something of this socket's own is queued or being written
    writer = response._writer
    if writer is None or writer._closing or response.closed:
        return None
    transport = writer.transport
    if transport is None or transport.is_closing() or transport.get_write_buffer_size() > limit:
        return None
    return transport


async def _send_stock_packet(sio: socketio.AsyncServer, eio_sids: list[str], namespace: str,
                             event: str, data: Any) -> None:
    """A packet with binary attachments, sent as python-socketio sends it."""
    pkt = sio.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, data])
    for eio_sid in eio_sids:
        await sio._send_packet(eio_sid, pkt)


async def _send_stock(sio: socketio.AsyncServer, eio_sids: list[str], eio_pkt,
                      queueing: dict[str, int] | None = None) -> None:
    """What python-socketio's AsyncManager does per recipient: queue the packet, concurrently.

    The tasks queue their packets a loop pass (or more) later. Until a recipient's packet is on
    its Engine.IO queue, the recipient is counted in `queueing`, and a broadcast made meanwhile
    (another publisher's, on the same stream) sends to it the stock way too, a task queued
    behind this one: otherwise its writer could turn idle in between and the later envelope be
    written directly, before the earlier one is queued.
    """
    if len(eio_sids) == 1:
        await sio._send_eio_packet(eio_sids[0], eio_pkt)  # queued before this returns
        return
    if queueing is None:
        await asyncio.wait([asyncio.create_task(sio._send_eio_packet(eio_sid, eio_pkt))
                            for eio_sid in eio_sids])
        return

    def queued(_task, eio_sid: str) -> None:
        left = queueing[eio_sid] - 1
        if left:
            queueing[eio_sid] = left
        else:
            del queueing[eio_sid]

    tasks = []
    for eio_sid in eio_sids:
        queueing[eio_sid] = queueing.get(eio_sid, 0) + 1
        task = asyncio.create_task(sio._send_eio_packet(eio_sid, eio_pkt))
        task.add_done_callback(lambda t, eio_sid=eio_sid: queued(t, eio_sid))
        tasks.append(task)
    await asyncio.wait(tasks)


# What is read of a connection's `environ` once its WebSocket is open: the namespaces' connect
# handlers (the aiohttp request: its remote address and headers for the client and the API key;
# REMOTE_ADDR without one), GuardedServer.client_of (the request), BacklogWatch (the request,
# QUERY_STRING), and the WSGI basics. python-engineio read the rest during the handshake.
KEPT_ENVIRON = ("aiohttp.request", "REMOTE_ADDR", "QUERY_STRING", "REQUEST_METHOD", "PATH_INFO")


def trim_environ(environ: dict) -> None:
    """Keep only `KEPT_ENVIRON` of an open WebSocket's environ, in place (python-engineio's
    frames and python-socketio's `environ` table hold this dict for the connection's life):
    python-engineio's aiohttp driver copies every request header into it (`HTTP_*`), ~1 KB per
    connection that the request's own headers already hold. `clear()` first, so that the dict's
    table shrinks too."""
    kept = {key: environ[key] for key in KEPT_ENVIRON if key in environ}
    environ.clear()
    environ.update(kept)


_NO_MESSAGES = ()  # an upgraded protocol's HTTP request queue: empty for good (see below)


def trim_upgraded_protocol(request: web.BaseRequest) -> None:
    """Let aiohttp's protocol of an open WebSocket go of what only HTTP requests use (~1.5 KB per
    connection): its HTTP request parser and its queue of parsed requests (an empty deque
    holds a block of 64 slots). Once the connection is upgraded and its WebSocket reader is
    set, aiohttp 3.14's `RequestHandler` feeds every byte to that reader; it reads `_parser` only
    where `_payload_parser is None` or not `_upgraded`, or after checking it for None, and
    appends to `_messages` only in those places (internals.UPGRADED_PROTOCOL_READ_FROM names the
    sources this was read in; `install` trims only while they are unchanged). The queue is
    replaced by an empty tuple, so that an append would fail loudly rather than be shared."""
    protocol = request.protocol
    if protocol is not None and protocol._upgraded and protocol._payload_parser is not None:
        protocol._parser = None
        protocol._messages = _NO_MESSAGES


class FastPathWebSocket:
    """python-engineio's aiohttp WebSocket adapter, with three differences.

    Its `WebSocketResponse` negotiates permessage-deflate only when `compress` is true
    (python-engineio always accepts it); each connection is registered with the
    `Broadcaster` while its handler runs, so a broadcast can write to it directly; and once the
    WebSocket is open, its `environ` keeps only what is read later (`trim_environ`) and, with
    `trim_protocol`, aiohttp's protocol lets go of its HTTP parts (`trim_upgraded_protocol`).
    """

    __slots__ = ("handler", "server", "broadcaster", "compress", "trim_protocol", "_sock")

    def __init__(self, handler, server, *, broadcaster: Broadcaster, compress: bool,
                 trim_protocol: bool = False):
        self.handler = handler
        self.server = server
        self.broadcaster = broadcaster
        self.compress = compress
        self.trim_protocol = trim_protocol
        self._sock: web.WebSocketResponse | None = None

    async def __call__(self, environ):
        request = environ["aiohttp.request"]
        # + 1: aiohttp refuses a frame of exactly max_msg_size; the advertised limit is inclusive.
        self._sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size + 1,
                                           compress=self.compress)
        await self._sock.prepare(request)
        trim_environ(environ)
        if self.trim_protocol:
            trim_upgraded_protocol(request)
        eio_socket = getattr(self.handler, "__self__", None)
        # A connection with permessage-deflate negotiated is never registered: its messages are
        # compressed per client by aiohttp, on the stock path.
        eio_sid = None if self._sock.compress else getattr(eio_socket, "sid", None)
        if eio_sid is not None:
            self.broadcaster.register(eio_sid, self._sock)
        try:
            await self.handler(self)
        finally:
            if eio_sid is not None:
                self.broadcaster.unregister(eio_sid, self._sock)
        return self._sock

    async def close(self):
        await self._sock.close()

    async def send(self, message):
        if isinstance(message, bytes):
            result = self._sock.send_bytes(message)
        else:
            result = self._sock.send_str(message)
        if inspect.isawaitable(result):
            await result

    @property
    def response(self) -> web.WebSocketResponse | None:
        return self._sock

    @staticmethod
    def received(msg: Any) -> str | bytes:
        """A received message's data, as python-engineio's adapter returns it from `wait()`."""
        if not isinstance(msg.data, bytes) and not isinstance(msg.data, str):
            raise OSError()
        return msg.data

    async def wait(self):
        return self.received(await self._sock.receive())


Broadcaster = StockBroadcaster  # the interface: emit, emit_batches, register, unregister


def broadcaster_for(sio: socketio.AsyncServer, manager: socketio.AsyncManager | None) -> StockBroadcaster:
    """The strategy for the client manager the server was given: the fast path when there is
    none beyond python-socketio's plain one (this process knows every recipient); behind a
    message queue's pub/sub manager, the fast path for this instance's part of every emit
    (`QueueFastBroadcaster`); any other manager, the stock emit. When a private internal the
    fast path uses is missing (an untested library version), the stock path, with one WARNING."""
    queue = isinstance(manager, AsyncPubSubManager)
    if manager is not None and not queue:
        return StockBroadcaster(sio)
    missing = missing_internals(sio, manager if queue else None)
    if missing:
        log.warning("broadcast fast path off, python-socketio's stock path used instead: these internals "
                    "of python-engineio/python-socketio/aiohttp/bidict are missing or changed shape "
                    "(versions other than those setup.cfg pins?): %s", "; ".join(missing))
        return StockBroadcaster(sio)
    return QueueFastBroadcaster(sio, manager) if queue else FastBroadcaster(sio)


def install(sio: socketio.AsyncServer, broadcaster: Broadcaster, *, compress: bool) -> None:
    """Make this server's WebSocket connections `FastPathWebSocket`s (this server only); nothing
    when python-engineio's adapter table is not what `missing_internals` expects."""
    if not isinstance(getattr(sio.eio, "_async", None), dict) or "websocket" not in sio.eio._async:
        return

    missing = upgraded_protocol_internals_missing()
    if missing:
        log.warning("aiohttp's protocol keeps its HTTP parser and request queue for every open WebSocket "
                    "(~1.5 KB each): %s", "; ".join(missing))

    def websocket(handler, server):
        return FastPathWebSocket(handler, server, broadcaster=broadcaster, compress=compress,
                                 trim_protocol=not missing)

    # A copy: python-engineio's `_async` is the driver module's own dict, shared by every server.
    sio.eio._async = {**sio.eio._async, "websocket": websocket}
