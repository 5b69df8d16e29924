"""What an idle WebSocket connection keeps alive for its whole life (issue 19: memory per client).

Structure, not sizes: which frames, tasks and references a connection holds while it waits.
The sizes are measured by `python -m bench.memory_sites` and recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import json
import types

import aiohttp

from aura_dashboard.web.keys import SIO
from tests.conftest import make_settings, running_server
from tests.realtime.test_broadcast import QUIET, RawClient, wait_members


def coroutine_chain(task: asyncio.Task) -> list[str]:
    """The qualified names of the coroutines a task is suspended in, outermost first."""
    names = []
    coro = task.get_coro()
    while isinstance(coro, (types.CoroutineType, types.GeneratorType)):
        code = coro.cr_code if isinstance(coro, types.CoroutineType) else coro.gi_code
        names.append(f"{code.co_filename.rsplit('/', 2)[-2]}/{code.co_filename.rsplit('/', 1)[-1]}:{code.co_qualname}")
        coro = coro.cr_await if isinstance(coro, types.CoroutineType) else coro.gi_yieldfrom
    return names


def handler_chains() -> list[list[str]]:
    """The chains of the tasks running an Engine.IO request handler (one per connection)."""
    chains = [coroutine_chain(task) for task in asyncio.all_tasks()]
    return [chain for chain in chains if any(name.endswith(":AsyncServer.handle_request") for name in chain)]


async def test_no_pass_through_middleware_frame_lives_as_long_as_a_websocket():
    # gzip and the rate limit on (the shipped settings), the API key too: each of them passes the
    # Engine.IO request on without a coroutine frame of its own around the handler.
    settings = make_settings({"SECURITY_API_KEY_ENABLED": "true", "DASHBOARD_API_KEY": "k" * 32}, QUIET)
    assert settings.performance.gzip_compression and settings.security.rate_limiting.enabled
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{srv.url}{srv.ws_path}/?EIO=4&transport=websocket")
        assert (await ws.receive_str()).startswith("0{")
        await asyncio.sleep(0.05)
        [chain] = handler_chains()
        ours = [name for name in chain if name.startswith("web/")]
        # The error middleware stays: it turns a failure after the upgrade into a closed WebSocket.
        assert ours == ["web/middleware.py:error_middleware"], chain
        await ws.close()


def test_session_in_query_reads_the_engineio_sid_without_request_query():
    from aura_dashboard.realtime.server import session_in_query
    assert session_in_query("EIO=4&transport=websocket&sid=abc-_D") == "abc-_D"
    assert session_in_query("EIO=4&transport=websocket") is None
    assert session_in_query("sid=&EIO=4") == ""  # present but empty: as `"sid" in request.query`
    assert session_in_query("") is None


def fast_pings(srv, interval_s: float = 0.2, timeout_s: float = 2.0):
    """The configuration counts in whole seconds; a test pings faster (set before any client)."""
    sio = srv.app[SIO]
    sio.eio.ping_interval, sio.eio.ping_timeout = interval_s, timeout_s
    if sio.pings is not None:
        sio.pings.interval_s = interval_s
    return sio


async def engineio_client(http: aiohttp.ClientSession, srv) -> aiohttp.ClientWebSocketResponse:
    """A WebSocket that has had Engine.IO's OPEN packet (its `sid` set on it), nothing more."""
    ws = await http.ws_connect(f"{srv.url}{srv.ws_path}/?EIO=4&transport=websocket")
    opened = await ws.receive_str()
    assert opened.startswith("0{")
    ws.sid = json.loads(opened[1:])["sid"]
    return ws


async def answer_pings(ws: aiohttp.ClientWebSocketResponse, count: int) -> None:
    for _ in range(count):
        assert await asyncio.wait_for(ws.receive_str(), 5) == "2"  # PING
        await ws.send_str("3")  # PONG


def ping_tasks() -> list[asyncio.Task]:
    return [task for task in asyncio.all_tasks()
            if any(name.endswith("AsyncSocket._send_ping") for name in coroutine_chain(task))]


async def test_pings_reach_every_client_from_one_scheduler_without_a_task_per_socket():
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        pings = fast_pings(srv).pings
        assert pings is not None
        clients = [await engineio_client(http, srv) for _ in range(3)]
        assert len(pings) == 3  # one entry per socket waiting for its ping, no task
        assert ping_tasks() == []
        await asyncio.gather(*(answer_pings(ws, 3) for ws in clients))
        assert ping_tasks() == []
        assert all(not sock.closed for sock in srv.app[SIO].eio.sockets.values())
        for ws in clients:
            await ws.close()


async def test_pings_stop_when_a_client_closes_and_go_on_for_the_others():
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        sio = fast_pings(srv)
        gone, staying = await engineio_client(http, srv), await engineio_client(http, srv)
        await answer_pings(gone, 1)
        gone_socket = sio.eio.sockets[gone.sid]
        await gone.close()
        await answer_pings(staying, 3)  # 0.6 s: three intervals
        assert gone_socket.closed
        assert all(sock is not gone_socket for _when, sock in sio.pings._due)  # nothing left for it
        assert gone_socket.queue.qsize() == 0  # and no PING queued to a closed socket
        await staying.close()


async def test_a_client_that_does_not_answer_a_ping_is_closed_as_before():
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        fast_pings(srv, 0.1, 0.3)
        ws = await engineio_client(http, srv)
        assert await asyncio.wait_for(ws.receive_str(), 5) == "2"
        # No PONG: python-engineio's ping timeout ends the session (a close packet, then the close).
        while (msg := await asyncio.wait_for(ws.receive(), 10)).type == aiohttp.WSMsgType.TEXT:
            assert msg.data in ("1", "2")
        assert ws.closed or msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await asyncio.sleep(0.05)
        assert not srv.app[SIO].eio.sockets
        assert srv.app[SIO].read_deadlines.expired == 1  # its read deadline ended the connection


async def test_the_stock_ping_task_when_engineios_ping_is_not_as_expected(monkeypatch, caplog):
    import logging
    from aura_dashboard.realtime import internals
    real = internals._ping_probes
    monkeypatch.setattr(internals, "_ping_probes",
                        lambda: real() + [("engineio AsyncSocket._send_ping renamed", lambda: False)])
    caplog.set_level(logging.WARNING, logger="aura_dashboard.realtime.server")
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        fast_pings(srv)
        warnings = [r for r in caplog.records if r.name == "aura_dashboard.realtime.server"]
        assert len(warnings) == 1 and "_send_ping renamed" in warnings[0].getMessage()
        assert srv.app[SIO].pings is None
        ws = await engineio_client(http, srv)
        assert len(ping_tasks()) == 1  # python-engineio's own
        await answer_pings(ws, 2)
        await ws.close()


async def test_an_open_websockets_environ_keeps_what_is_read_later_and_no_header_copies():
    from aura_dashboard.realtime.broadcast import KEPT_ENVIRON
    from aura_dashboard.web.keys import BACKLOG_WATCH, NAMESPACES
    from tests.realtime.test_broadcast import NS
    key = "k" * 32
    settings = make_settings({"SECURITY_API_KEY_ENABLED": "true", "DASHBOARD_API_KEY": key}, QUIET)
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        url = f"{srv.url}{srv.ws_path}/?EIO=4&transport=websocket"
        ws = await http.ws_connect(url, headers={"X-API-Key": key, "X-Custom": "x"})
        sid = json.loads((await ws.receive_str())[1:])["sid"]
        sio = srv.app[SIO]
        environ = sio.environ[sid]
        assert set(environ) == set(KEPT_ENVIRON)  # no HTTP_* copies of the headers
        assert environ["aiohttp.request"].headers["X-Custom"] == "x"  # the request still has them
        # A namespace connect after the trim: the API key of the handshake's header is still found
        # (through the request), and so is the client's address.
        await ws.send_str(f"40{NS},")
        connected = await asyncio.wait_for(ws.receive_str(), 5)
        assert connected.startswith(f"40{NS},"), connected
        [handler] = [h for h in srv.app[NAMESPACES].values() if h.namespace == NS]
        [(client, actor)] = handler.who.values()
        assert client == "127.0.0.1" and not actor.startswith("socket:")  # the key's id
        assert srv.app[BACKLOG_WATCH]._transport(sid, keep=True) is environ["aiohttp.request"].transport
        # Without the key, the same namespace connect is refused: the check did not get lost.
        bare = await http.ws_connect(url)
        await bare.receive_str()
        await bare.send_str(f"40{NS},")
        refused = await asyncio.wait_for(bare.receive_str(), 5)
        assert refused.startswith(f"44{NS},") and "unauthorized" in refused, refused
        await ws.close()
        await bare.close()


def read_tasks() -> list[asyncio.Task]:
    """python-engineio's Task per WebSocket read (its `websocket_wait` wrapped in ensure_future)."""
    return [task for task in asyncio.all_tasks()
            if coroutine_chain(task)[0].endswith("_websocket_handler.<locals>.websocket_wait")]


async def test_an_idle_websocket_is_read_without_a_task_per_read():
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        assert srv.app[SIO].lean_loops
        clients = [await engineio_client(http, srv) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert read_tasks() == []
        # Each connection: aiohttp's handler task (reading, in socket_loops) and the writer task.
        assert len(handler_chains()) == 3
        assert all(any(name.endswith("socket_loops.py:websocket_handler") for name in chain)
                   for chain in handler_chains())
        for ws in clients:  # still read: an Engine.IO message is answered (a ping from the client)
            await ws.send_str("3")  # an unsolicited PONG is taken as python-engineio takes it
        await clients[0].send_str(f"40{NS_FOR_READS},")
        answer = await asyncio.wait_for(clients[0].receive_str(), 5)
        assert answer.startswith(f"40{NS_FOR_READS},"), answer
        for ws in clients:
            await ws.close()
        await asyncio.sleep(0.1)
        assert not srv.app[SIO].eio.sockets  # each handler ended its session as python-engineio's does


NS_FOR_READS = "/omni_monitor"


async def test_engineios_own_websocket_handler_when_its_source_changed(monkeypatch, caplog):
    import logging
    from aura_dashboard.realtime import socket_loops
    monkeypatch.setitem(socket_loops.COPIED_FROM, "_websocket_handler", "0" * 16)  # as a new release
    caplog.set_level(logging.WARNING, logger="aura_dashboard.realtime.server")
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        warnings = [r for r in caplog.records if r.name == "aura_dashboard.realtime.server"]
        assert len(warnings) == 1 and "_websocket_handler" in warnings[0].getMessage()
        assert not srv.app[SIO].lean_loops
        ws = await engineio_client(http, srv)
        await asyncio.sleep(0.05)
        assert len(read_tasks()) == 1  # python-engineio's
        await ws.send_str(f"40{NS_FOR_READS},")
        assert (await asyncio.wait_for(ws.receive_str(), 5)).startswith(f"40{NS_FOR_READS},")
        await ws.close()


def timeout_timers() -> int:
    """How many timers of `asyncio.timeout` and `wait_for` the running loop holds."""
    return sum(1 for handle in asyncio.get_running_loop()._scheduled
               if not handle.cancelled()
               and getattr(handle._callback, "__name__", "") in ("_on_timeout", "_release_waiter"))


def writer_tasks() -> list[asyncio.Task]:
    """socket_loops' writing tasks (`QueueWriter._write`), and python-engineio's writer tasks."""
    return [task for task in asyncio.all_tasks()
            if coroutine_chain(task)[0].endswith(("QueueWriter._write", "websocket_handler.<locals>.writer"))]


async def test_an_idle_websocket_holds_no_writer_task_and_no_timer_and_still_writes_in_order():
    from tests.realtime.test_broadcast import NS, payload
    from aura_dashboard.web.keys import HUB
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        client = await RawClient.connect(http, srv)
        await wait_members(srv, 1)
        await asyncio.sleep(0.05)
        sio = srv.app[SIO]
        [sock] = sio.eio.sockets.values()
        assert writer_tasks() == [] and sock.writer.idle()  # python-engineio: a task parked in get()
        # and no timer of its own (python-engineio's reads and writes each wait under a timeout):
        # a second idle connection adds none to the loop's timers
        timers = timeout_timers()
        second = await RawClient.connect(http, srv)
        await wait_members(srv, 2)
        await asyncio.sleep(0.05)
        assert timeout_timers() == timers
        assert len(sio.read_deadlines) == 2  # their read deadlines are the server's one sweep's
        await second.ws.close()
        # Packets of its own (acknowledgements, pings) and broadcasts still arrive, in order.
        hub = srv.app[HUB]
        sent = [await hub.publish("alerts", payload(i)) for i in range(20)]
        got = [json.loads((await client.text()).split(",", 1)[1])[1]["seq"] for _ in sent]
        assert got == [envelope["seq"] for envelope in sent]
        await client.ws.send_str(f'42{NS},2["subscribe",{{"streams":["alerts"]}}]')  # its ack: its own
        assert (await client.text()).startswith(f"43{NS},2")
        await asyncio.sleep(0.05)
        assert writer_tasks() == [] and sock.writer.idle()  # the writing task ended with its queue
        await client.ws.close()
        await asyncio.sleep(0.1)
        assert len(sio.read_deadlines) == 0


class HeldWebSocket:
    """A stand-in for the WebSocket a `QueueWriter` writes to: each send waits for `release`."""

    def __init__(self):
        self.sent: list[str] = []
        self.closed = 0
        self.release = asyncio.Event()
        self.fail = False

    async def send(self, data: str) -> None:
        await self.release.wait()
        if self.fail:
            raise ConnectionResetError("gone")
        self.sent.append(data)

    async def close(self) -> None:
        self.closed += 1


def queue_writer():
    from aura_dashboard.realtime.lean_queue import LeanQueue
    from aura_dashboard.realtime.socket_loops import QueueWriter
    sock = types.SimpleNamespace(queue=LeanQueue())
    ws = HeldWebSocket()
    writer = QueueWriter(sock, ws)
    sock.queue.on_put = writer.wake
    return sock.queue, ws, writer


def message(text: str):
    from engineio import packet
    return packet.Packet(packet.MESSAGE, data=text)


async def test_a_queue_writer_writes_from_one_task_only_while_packets_wait_in_queue_order():
    queue, ws, writer = queue_writer()
    assert writer.idle()
    queue.put_nowait(message("a"))
    task = writer.task
    assert task is not None and not writer.idle()
    await asyncio.sleep(0)  # in send("a"), held
    queue.put_nowait(message("b"))  # put while the task writes: the same task writes it next
    queue.put_nowait(message("c"))
    assert writer.task is task
    ws.release.set()
    await asyncio.wait_for(task, 1)
    assert ws.sent == ["4a", "4b", "4c"] and writer.idle() and writer.task is None
    assert queue._unfinished_tasks == 0  # join() counts every packet written
    queue.put_nowait(message("d"))  # a later put: a new task
    await asyncio.wait_for(writer.stopped(), 1)
    assert ws.sent[-1] == "4d" and writer.idle() and ws.closed == 0


async def test_a_none_ends_the_connection_after_the_packets_queued_before_it():
    queue, ws, writer = queue_writer()
    ws.release.set()
    for item in (message("a"), None, message("late")):
        queue.put_nowait(item)
    await asyncio.wait_for(writer.stopped(), 1)
    # As python-engineio's writer: what poll() returned before the None is written, then the close.
    assert ws.sent == ["4a"] and ws.closed == 1 and writer.finished and not writer.idle()
    queue.put_nowait(message("after"))  # nothing writes to a finished connection
    assert writer.task is None and queue.qsize() == 2


async def test_a_failed_send_ends_the_connection_and_the_writer():
    queue, ws, writer = queue_writer()
    ws.fail = True
    ws.release.set()
    queue.put_nowait(message("a"))
    queue.put_nowait(message("b"))
    await asyncio.wait_for(writer.stopped(), 1)
    assert ws.sent == [] and ws.closed == 1 and writer.finished
    assert queue.qsize() == 1  # "b": left queued, as python-engineio's writer leaves it


async def test_a_client_that_keeps_answering_pings_outlives_many_read_deadlines():
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        sio = fast_pings(srv, 0.1, 0.2)  # a read deadline of 0.3 s
        ws = await engineio_client(http, srv)
        await answer_pings(ws, 12)  # 1.2 s: four deadlines long
        assert sio.read_deadlines.expired == 0
        assert not ws.closed and len(sio.eio.sockets) == 1
        await ws.close()


async def test_an_open_websockets_protocol_lets_go_of_its_http_parser_and_request_queue():
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        ws = await engineio_client(http, srv)
        request = srv.app[SIO].environ[ws.sid]["aiohttp.request"]
        protocol = request.protocol
        assert protocol._parser is None and protocol._messages == ()
        # The connection still reads, answers and closes as before.
        await ws.send_str(f"40{NS_FOR_READS},")
        assert (await asyncio.wait_for(ws.receive_str(), 5)).startswith(f"40{NS_FOR_READS},")
        await ws.send_str("3")  # an unsolicited PONG
        await ws.close()
        await asyncio.sleep(0.1)
        assert not srv.app[SIO].eio.sockets


async def test_the_protocol_is_left_whole_when_aiohttp_changed(monkeypatch, caplog):
    import logging
    from aura_dashboard.realtime import internals
    monkeypatch.setitem(internals.UPGRADED_PROTOCOL_READ_FROM, "RequestHandler", "0" * 16)  # a new aiohttp
    caplog.set_level(logging.WARNING, logger="aura_dashboard.realtime.broadcast")
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        warnings = [r for r in caplog.records if r.name == "aura_dashboard.realtime.broadcast"]
        assert len(warnings) == 1 and "RequestHandler" in warnings[0].getMessage()
        ws = await engineio_client(http, srv)
        protocol = srv.app[SIO].environ[ws.sid]["aiohttp.request"].protocol
        assert protocol._parser is not None and len(protocol._messages) == 0
        await ws.send_str(f"40{NS_FOR_READS},")
        assert (await asyncio.wait_for(ws.receive_str(), 5)).startswith(f"40{NS_FOR_READS},")
        await ws.close()


async def test_an_idle_websocket_is_held_by_no_frame_of_the_wrappers_around_its_read():
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        ws = await engineio_client(http, srv)
        await asyncio.sleep(0.05)
        [chain] = handler_chains()
        names = [name.rsplit(":", 1)[1] for name in chain]
        start = names.index("FastPathWebSocket.__call__")
        # python-engineio's own chain below its adapter: _websocket_handler, websocket_wait, the
        # adapter's wait and aiohttp's receive, each a frame alive for the connection's life
        assert names[start:start + 4] == ["FastPathWebSocket.__call__", "websocket_handler",
                                          "CheckedWebSocket.wait", "WebSocketResponse.receive"], chain
        await ws.close()


async def test_a_session_closed_by_the_ping_timeout_first_still_has_its_connection_ended():
    # python-engineio's service task closes a session whose ping timed out without ending its
    # WebSocket (its CLOSE packet is refused by the same ping check), and python-socketio then
    # forgets the session's environ; the read deadline must still end the connection.
    import time
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        sio = fast_pings(srv, 0.2, 0.3)
        ws = await engineio_client(http, srv)
        sock = sio.eio.sockets[ws.sid]
        sock.last_ping = time.time() - 10  # as the service task finds a silent client
        assert not await sock.check_ping_timeout()
        assert sock.closed and ws.sid not in sio.environ
        while (msg := await asyncio.wait_for(ws.receive(), 5)).type == aiohttp.WSMsgType.TEXT:
            pass  # the session's pings, if any
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        assert sio.read_deadlines.expired == 1
