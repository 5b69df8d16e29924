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


async def test_an_idle_websockets_writer_waits_without_wait_for_and_still_writes_in_order():
    from tests.realtime.test_broadcast import payload
    from aura_dashboard.web.keys import HUB
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        client = await RawClient.connect(http, srv)
        await wait_members(srv, 1)
        await asyncio.sleep(0.05)
        writers = [chain for chain in map(coroutine_chain, asyncio.all_tasks())
                   if chain[0].endswith("websocket_handler.<locals>.writer")]
        assert len(writers) == 1
        assert any(name.endswith("socket_loops.py:writer_poll") for name in writers[0])
        assert not any(name.endswith(":wait_for") for name in writers[0]), writers[0]
        # Packets of its own (acknowledgements) and broadcasts still arrive, in order.
        hub = srv.app[HUB]
        sent = [await hub.publish("alerts", payload(i)) for i in range(20)]
        got = [json.loads((await client.text()).split(",", 1)[1])[1]["seq"] for _ in sent]
        assert got == [envelope["seq"] for envelope in sent]
        await client.ws.close()


async def test_a_packet_put_as_the_writers_wait_is_cancelled_stays_queued_for_its_next_poll():
    # The writer waits in writer_poll under asyncio.timeout: when the timeout expires (or the
    # writer task is cancelled) in the loop pass where a packet was put, before the writer ran
    # again, writer_poll raises QueueEmpty; the packet must still be queued, not lost with the
    # cancelled get() (and still unfinished, so that join() counts it).
    from engineio import exceptions, packet

    from aura_dashboard.realtime.lean_queue import LeanQueue
    from aura_dashboard.realtime.socket_loops import writer_poll

    sock = types.SimpleNamespace(queue=LeanQueue(),
                                 server=types.SimpleNamespace(ping_interval=25, ping_timeout=20))
    polling = asyncio.ensure_future(writer_poll(sock))
    await asyncio.sleep(0)  # parked in the queue's get()
    ack = packet.Packet(packet.MESSAGE, data="31/alerts,0[{}]")
    sock.queue.put_nowait(ack)
    polling.cancel()  # what the timeout does on expiry: Task.cancel(), here in the put's loop pass
    try:
        await polling
    except exceptions.QueueEmpty:
        pass
    assert sock.queue.qsize() == 1 and sock.queue._unfinished_tasks == 1
    assert await asyncio.wait_for(writer_poll(sock), 1) == [ack]
    await asyncio.wait_for(sock.queue.join(), 1)
