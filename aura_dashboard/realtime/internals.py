"""The private parts of python-engineio, python-socketio, aiohttp (and bidict) that the broadcast
fast path relies on, each checked for the shape `broadcast.py` expects; and, apart, the parts of
python-engineio's ping that the shared ping scheduler (`pings.py`) replaces (`ping_internals_missing`:
when one is not as expected, python-engineio's own ping task per socket, with one WARNING), and
the python-engineio methods that `socket_loops.py` repeats (`socket_loop_internals_missing`), and
the aiohttp protocol that `broadcast.trim_upgraded_protocol` trims (`upgraded_protocol_internals_missing`).

`setup.cfg` pins the three libraries to the minor versions tested; this check is the second
guard: `broadcaster_for` calls `missing_internals(sio)` when it builds the fast path, and when
anything is missing or changed shape, the server falls back to python-socketio's stock path
with ONE WARNING naming what is missing (correct, only slower). tests/realtime/test_internals.py
fails loudly on the same list, so an upgrade that breaks the fast path is a deliberate act.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections import deque
from collections.abc import Callable

import socketio
from socketio.async_pubsub_manager import AsyncPubSubManager
from aiohttp import web
from aiohttp.http_websocket import WebSocketWriter
from bidict import bidict
from engineio import async_server as eio_server
from engineio import async_socket, base_socket


def _params(fn, *names: str) -> bool:
    try:
        return list(inspect.signature(fn).parameters)[:len(names)] == list(names)
    except (TypeError, ValueError):
        return False


def _writer_attributes() -> bool:
    """aiohttp's WebSocketWriter keeps `transport` and a `_closing` flag (a writer built on stand-ins)."""
    transport = object()
    writer = WebSocketWriter(object(), transport)
    return writer.transport is transport and writer._closing is False


def _socket_attributes(sio: socketio.AsyncServer) -> list[str]:
    """The Engine.IO socket's state the fast path reads (a socket built as the server builds it)."""
    sock = async_socket.AsyncSocket(sio.eio, "probe")
    return [name for name in ("queue", "last_ping", "upgrading", "upgraded", "closing", "closed")
            if not hasattr(sock, name)]


def _members_fwdm() -> bool:
    members = bidict()
    members["sid"] = "eio_sid"
    return isinstance(getattr(members, "_fwdm", None), dict) and dict(members._fwdm) == {"sid": "eio_sid"}


def _queue_getters(sio: socketio.AsyncServer) -> bool:
    queue = sio.eio.create_queue()
    return (isinstance(queue, asyncio.Queue) and isinstance(getattr(queue, "_getters", None), (deque, list))
            and callable(getattr(queue, "qsize", None)))


def _queue_fields() -> bool:
    queue = asyncio.Queue()
    return (isinstance(getattr(queue, "_putters", None), deque)
            and isinstance(getattr(queue, "_finished", None), asyncio.Event)
            and inspect.getsource(asyncio.Queue.__init__).count("self._finished") == 2)


def _queue_lean_parts() -> bool:
    """What LeanQueue relies on: asyncio.Queue's `_queue` made by `_init` and used through
    `_put`/`_get`, and its get() waiting in `_getters` (appended, removed, woken with
    `_wakeup_next`'s `popleft`: a list with `popleft` serves)."""
    queue = asyncio.Queue()
    put = inspect.getsource(asyncio.Queue.put_nowait)
    get = inspect.getsource(asyncio.Queue.get_nowait)
    waits = inspect.getsource(asyncio.Queue.get)
    return (isinstance(queue._queue, deque) and isinstance(queue._getters, deque)
            and "self._init(maxsize)" in inspect.getsource(asyncio.Queue.__init__)
            and "self._put(item)" in put and "self._get()" in get
            and "self._wakeup_next(self._getters)" in put
            and all(part in waits for part in ("self._getters.append(getter)", "self._getters.remove(getter)",
                                               "return self.get_nowait()"))
            and "waiters.popleft()" in inspect.getsource(asyncio.Queue._wakeup_next))


def _probes(sio: socketio.AsyncServer) -> list[tuple[str, Callable[[], bool]]]:
    eio = sio.eio
    return [
        ("engineio AsyncServer._async['websocket'] (a dict entry, the WebSocket adapter factory)",
         lambda: isinstance(getattr(eio, "_async", None), dict) and "websocket" in eio._async),
        ("engineio AsyncServer.sockets (dict of Engine.IO sockets)", lambda: isinstance(eio.sockets, dict)),
        ("engineio AsyncServer.ping_timeout (number)", lambda: isinstance(eio.ping_timeout, (int, float))),
        ("engineio AsyncSocket calls _async['websocket'](self._websocket_handler, server)",
         lambda: "_async['websocket'](" in inspect.getsource(async_socket.AsyncSocket._upgrade_websocket)
         and callable(getattr(async_socket.AsyncSocket, "_websocket_handler", None))),
        ("engineio AsyncSocket attributes queue, last_ping, upgrading, upgraded, closing, closed",
         lambda: not _socket_attributes(sio)),
        ("engineio socket queue: asyncio.Queue with a deque `_getters`", lambda: _queue_getters(sio)),
        ("engineio sockets make their queue with server.create_queue() (lean_queue.install replaces it)",
         lambda: "self.server.create_queue()" in inspect.getsource(base_socket.BaseSocket.__init__)),
        ("asyncio.Queue keeps `_putters` and a `_finished` Event set in __init__ (lean_queue.LeanQueue)",
         _queue_fields),
        ("asyncio.Queue's _init/_put/_get and its get() waiting in _getters, as LeanQueue relies on them",
         _queue_lean_parts),
        ("socketio AsyncServer._send_eio_packet(eio_sid, eio_pkt) coroutine",
         lambda: inspect.iscoroutinefunction(getattr(sio, "_send_eio_packet", None))
         and _params(sio._send_eio_packet, "eio_sid", "eio_pkt")),
        ("socketio AsyncServer._send_packet(eio_sid, pkt) coroutine",
         lambda: inspect.iscoroutinefunction(getattr(sio, "_send_packet", None))
         and _params(sio._send_packet, "eio_sid", "pkt")),
        ("socketio AsyncServer.packet_class", lambda: callable(getattr(sio, "packet_class", None))),
        ("socketio manager.rooms (dict) and get_participants(namespace, room)",
         lambda: isinstance(getattr(sio.manager, "rooms", None), dict)
         and _params(sio.manager.get_participants, "namespace", "room")),
        ("bidict members._fwdm (the rooms' sid -> eio_sid dict)", _members_fwdm),
        ("aiohttp WebSocketResponse._writer", lambda: hasattr(web.WebSocketResponse(), "_writer")),
        ("aiohttp WebSocketWriter.transport and ._closing", _writer_attributes),
    ]


def _source_has(fn, *parts: str) -> bool:
    source = inspect.getsource(fn)
    return all(part in source for part in parts)


def _queue_probes(manager: AsyncPubSubManager) -> list[tuple[str, Callable[[], bool]]]:
    """What `QueueFastBroadcaster` relies on in a message queue's pub/sub manager."""
    pubsub = AsyncPubSubManager
    return [
        ("socketio AsyncPubSubManager._handle_emit(message) coroutine, on the instance",
         lambda: inspect.iscoroutinefunction(getattr(manager, "_handle_emit", None))
         and _params(manager._handle_emit, "message")),
        ("socketio AsyncPubSubManager.emit hands its message to self._handle_emit, then publishes it",
         lambda: _source_has(pubsub.emit, "await self._handle_emit(message)", "'method': 'emit'",
                             "'host_id': self.host_id", "'skip_sid'", "'callback'", "'binary'")),
        ("socketio AsyncPubSubManager._thread hands other instances' emits to self._handle_emit",
         lambda: _source_has(pubsub._thread, "await self._handle_emit(data)")),
        ("socketio AsyncPubSubManager._handle_emit reads event, data (a list), namespace, room",
         lambda: _source_has(pubsub._handle_emit, "message['data']", "message['event']",
                             "message.get('namespace')", "message.get('room')", "len(data) == 1")),
        ("socketio AsyncPubSubManager.host_id (str)", lambda: isinstance(getattr(manager, "host_id", None), str)),
    ]


def _ping_probes() -> list[tuple[str, Callable[[], bool]]]:
    """What `pings.PingScheduler` (with `server.GuardedSocket.schedule_ping`) replaces and relies on."""
    sock = async_socket.AsyncSocket
    return [
        ("engineio AsyncSocket.schedule_ping: once last_ping is set, clears it and starts _send_ping",
         lambda: _source_has(sock.schedule_ping, "if self.last_ping:", "self.last_ping = None",
                             "start_background_task(self._send_ping)")),
        ("engineio AsyncSocket._send_ping: sleeps ping_interval, then unless closing or closed sets "
         "last_ping and sends a PING",
         lambda: _source_has(sock._send_ping, "await asyncio.sleep(self.server.ping_interval)",
                             "if not self.closing and not self.closed:", "self.last_ping = time.time()",
                             "await self.send(packet.Packet(packet.PING))")
         and inspect.getsource(sock._send_ping).count("await") == 2),
        ("engineio AsyncSocket.send: checks the ping timeout, then puts the packet on its queue",
         lambda: _source_has(sock.send, "await self.check_ping_timeout()", "await self.queue.put(pkt)")),
        ("engineio AsyncServer._handle_connect schedules the first ping after the connect event",
         lambda: 0 <= inspect.getsource(eio_server.AsyncServer._handle_connect).find(
             "_trigger_event('connect'") < inspect.getsource(
                 eio_server.AsyncServer._handle_connect).find("s.schedule_ping()")),
        ("engineio AsyncSocket.receive reschedules the ping on a PONG",
         lambda: _source_has(sock.receive, "packet.PONG", "self.schedule_ping()")),
    ]


def ping_internals_missing() -> list[str]:
    """Every part of python-engineio's ping that the shared ping scheduler replaces or relies on and
    that is absent or not as expected ([] when all are); the stock ping is used otherwise."""
    return _missing(_ping_probes())


def _socket_loop_probes() -> list[tuple[str, Callable[[], bool]]]:
    """`socket_loops.py` repeats a method of python-engineio: only while it is the one copied."""
    from .socket_loops import COPIED_FROM

    def same(name: str) -> bool:
        source = inspect.getsource(getattr(async_socket.AsyncSocket, name))
        return hashlib.sha256(source.encode()).hexdigest()[:16] == COPIED_FROM[name]

    return [(f"engineio AsyncSocket.{name} as in python-engineio 4.15.1 (socket_loops.py repeats it)",
             lambda name=name: same(name)) for name in COPIED_FROM]


def socket_loop_internals_missing() -> list[str]:
    """The python-engineio method `socket_loops.py` repeats, when it is no longer the one copied."""
    return _missing(_socket_loop_probes())


# sha256 of inspect.getsource() of aiohttp 3.14.5's classes, first 16 hex digits: every use of
# `_parser` and `_messages` in them was read for `broadcast.trim_upgraded_protocol`.
UPGRADED_PROTOCOL_READ_FROM = {"RequestHandler": "3960a24b6f6b63e0", "BaseProtocol": "b8cbe831e85f09b9"}


def _upgraded_protocol_probes() -> list[tuple[str, Callable[[], bool]]]:
    from aiohttp import base_protocol, web_protocol
    classes = {"RequestHandler": web_protocol.RequestHandler, "BaseProtocol": base_protocol.BaseProtocol}

    def same(name: str) -> bool:
        source = inspect.getsource(classes[name])
        return hashlib.sha256(source.encode()).hexdigest()[:16] == UPGRADED_PROTOCOL_READ_FROM[name]

    return [(f"aiohttp {name} as in aiohttp 3.14.5 (broadcast.trim_upgraded_protocol lets go of its "
             f"HTTP parser and message queue once a WebSocket is open)", lambda name=name: same(name))
            for name in UPGRADED_PROTOCOL_READ_FROM]


def upgraded_protocol_internals_missing() -> list[str]:
    """The aiohttp classes `trim_upgraded_protocol` was written against, when they changed."""
    return _missing(_upgraded_protocol_probes())


def _missing(probes: list[tuple[str, Callable[[], bool]]]) -> list[str]:
    missing = []
    for name, present in probes:
        try:
            ok = present()
        except Exception:  # noqa: BLE001 - any failure to find the internal means it is not there
            ok = False
        if not ok:
            missing.append(name)
    return missing


def missing_internals(sio: socketio.AsyncServer,
                      queue_manager: AsyncPubSubManager | None = None) -> list[str]:
    """Every internal the fast path uses that is absent or not of the expected shape ([] when all are);
    with `queue_manager`, also those the fast path behind that message queue's manager uses."""
    return _missing(_probes(sio) + (_queue_probes(queue_manager) if queue_manager is not None else []))
