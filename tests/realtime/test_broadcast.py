"""The broadcast fast path: same bytes as the stock path, every envelope in order, JS client unaware."""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
import pytest
import socketio

from aura_dashboard.web.keys import EMITTERS, HUB, SIO
from aura_dashboard.realtime.broadcast import text_frame
from aura_dashboard.realtime.hub import room_of
from tests.conftest import JS_DIR, alert_payload, backend_state, make_settings, running_server

NS = "/omni_monitor"
ROOM = room_of("alerts")
# No sampling streams to interfere; the tests publish on `alerts`, which only they feed.
# No emitter publishes during a test (their first samples come at start, before it publishes).
QUIET = {"updates": {"batch_updates": False,
                     "intervals": {name: 600000 for name in ("system_metrics", "chat_status", "model_status",
                                                             "governance_data", "database_metrics")}},
         "backends": {name: {"health_check_interval_ms": 600000} for name in ("mcp", "ml", "governance")},
         "panels": {"ai_system": {"refresh_interval_ms": 600000}},
         "monitoring": {"system": {"enabled": False}}}


def payload(i: int) -> dict:
    """An alert of about 1 KB, with the things JSON encoders disagree on: non-ASCII, floats, nesting."""
    return alert_payload(i, message="température ✓ 温度 \"quoted\" \\ \n" + "x" * 900,
                         value={"i": i, "ratio": 1 / 3, "big": 1e16, "neg": -0.0,
                                "list": [1.5, None, True, {"k": "v"}]})


class RawClient:
    """An aiohttp WebSocket speaking Engine.IO/Socket.IO by hand, to see the exact text frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws

    @classmethod
    async def connect(cls, http: aiohttp.ClientSession, srv, streams=("alerts",)) -> RawClient:
        # Offer permessage-deflate, as browsers do.
        ws = await http.ws_connect(f"{srv.url}{srv.ws_path}/?EIO=4&transport=websocket", compress=15)
        client = cls(ws)
        assert (await client.text()).startswith("0{")
        await ws.send_str(f"40{NS},")
        assert (await client.text()).startswith(f"40{NS},")
        await ws.send_str(f'42{NS},1["subscribe",{json.dumps({"streams": list(streams)})}]')
        ack = await client.text()
        assert ack.startswith(f"43{NS},1") and '"ok":true' in ack, ack
        return client

    async def text(self) -> str:
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), 10)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            if msg.data != "2":  # Engine.IO ping
                return msg.data
            await self.ws.send_str("3")


async def wait_members(srv, count: int, room: str = ROOM) -> None:
    sio = srv.app[SIO]
    async def loop():
        while len(list(sio.manager.get_participants(NS, room))) < count:
            await asyncio.sleep(0.02)
    await asyncio.wait_for(loop(), 15)


def test_text_frame_lengths():
    assert text_frame(b"a") == b"\x81\x01a"
    assert text_frame(b"a" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert text_frame(b"a" * 70000)[:10] == b"\x81\x7f" + (70000).to_bytes(8, "big")


async def test_fast_path_sends_exactly_the_bytes_of_the_stock_path():
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        client = await RawClient.connect(http, srv)
        assert client.ws.compress == 0  # permessage-deflate not negotiated by default
        broadcaster = srv.app[HUB].broadcaster
        envelope = {"stream": "alerts", "seq": 1, "ts": 1764028800.125, "source": "h",
                    "data": payload(1)}
        await broadcaster.emit("alerts", envelope, room=ROOM, namespace=NS)
        fast = await client.text()
        assert broadcaster.fast_deliveries == 1 and broadcaster.stock_deliveries == 0
        await srv.app[SIO].emit("alerts", envelope, room=ROOM, namespace=NS)  # python-socketio itself
        stock = await client.text()
        assert fast == stock
        assert json.loads(fast[len(f"42{NS},"):]) == ["alerts", envelope]
        await client.ws.close()


async def test_compression_on_negotiates_deflate_and_uses_the_stock_path():
    settings = make_settings({}, {**QUIET, "updates": {**QUIET["updates"], "websocket_compression": True}})
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        client = await RawClient.connect(http, srv)
        assert client.ws.compress == 15
        await srv.app[HUB].publish("alerts", payload(0))
        assert json.loads((await client.text())[len(f"42{NS},"):])[1]["data"] == payload(0)
        broadcaster = srv.app[HUB].broadcaster
        assert broadcaster.fast_deliveries == 0 and broadcaster.stock_deliveries == 1
        await client.ws.close()


async def test_many_clients_get_every_envelope_in_order_with_per_client_packets_interleaved():
    async with running_server(make_settings({}, QUIET)) as srv:
        clients = []
        for _ in range(8):
            sio = socketio.AsyncClient(reconnection=False)
            got: list[int] = []
            sio.on("alerts", lambda data, got=got: got.append(data["n"]), namespace=NS)
            await sio.connect(srv.url, socketio_path=srv.ws_path, namespaces=[NS], transports=["websocket"])
            assert (await sio.call("subscribe", {"streams": ["alerts"]}, namespace=NS))["ok"]
            clients.append((sio, got))
        await wait_members(srv, 8)
        server, broadcaster = srv.app[SIO], srv.app[HUB].broadcaster
        sids = [sid for sid, _ in server.manager.get_participants(NS, ROOM)]
        rng = random.Random(9)
        total = 400
        for n in range(total):
            if n % 5 == 0:
                # Packets of a socket's own go through its Engine.IO queue: the fast path must
                # never overtake them.
                for sid in rng.sample(sids, 3):
                    await server.emit("alerts", {"n": n}, to=sid, namespace=NS)
            else:
                await broadcaster.emit("alerts", {"n": n}, room=ROOM, namespace=NS)
            if rng.random() < 0.3:
                await asyncio.sleep(0)
        async def all_in():
            while any(not got or got[-1] < total - 1 for _, got in clients):
                await asyncio.sleep(0.02)
        await asyncio.wait_for(all_in(), 20)
        for sio, got in clients:
            assert got == sorted(got) and len(set(got)) == len(got)
            assert set(range(total)) - {n for n in range(total) if n % 5 == 0} <= set(got)
            await sio.disconnect()
        assert broadcaster.fast_deliveries > 0


async def test_client_that_stops_reading_is_bounded_on_the_fast_path():
    async with running_server(make_settings({}, QUIET)) as srv, aiohttp.ClientSession() as http:
        client = await RawClient.connect(http, srv)
        await wait_members(srv, 1)
        client.ws._response.connection.transport.pause_reading()
        broadcaster = srv.app[HUB].broadcaster
        broadcaster.max_buffered_bytes = limit = 64 * 1024
        server = srv.app[SIO]
        (eio_sid,) = [eio for _, eio in server.manager.get_participants(NS, ROOM)]
        response = broadcaster._connections[eio_sid]
        data = {"pad": "y" * 4000}
        frame = len(text_frame(f'42{NS},["alerts",{json.dumps(data)}]'.encode())) + 1
        most = 0
        for _ in range(3000):  # 12 MB: more than the kernel's socket buffers hold
            await broadcaster.emit("alerts", data, room=ROOM, namespace=NS)
            most = max(most, response._writer.transport.get_write_buffer_size())
        assert most <= limit + frame
        assert broadcaster.stock_deliveries > 0  # the rest waited on the socket's own queue
        await client.ws.close()


async def js_listen(node, srv, transports, count):
    spec = {"url": srv.url, "path": srv.ws_path, "namespace": NS, "transports": transports,
            "streams": ["alerts"], "count": count}
    proc = await asyncio.create_subprocess_exec(node, str(JS_DIR / "listen.mjs"), json.dumps(spec),
                                                stdout=asyncio.subprocess.PIPE, cwd=JS_DIR)
    return proc


@pytest.mark.parametrize("transport,batching", [("websocket", False), ("websocket", True),
                                                ("polling", False), ("polling", True)])
async def test_js_client_receives_broadcast_envelopes(node, transport, batching):
    updates = {**QUIET["updates"], "batch_updates": batching, "batch_interval_ms": 50}
    async with running_server(make_settings({}, {**QUIET, "updates": updates})) as srv:
        count = 30
        proc = await js_listen(node, srv, [transport], count)
        await wait_members(srv, 1)
        hub = srv.app[HUB]
        sent = [await hub.publish("alerts", payload(i)) for i in range(count)]
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        result = json.loads(out)
        assert result["error"] is None and result["transport"] == transport
        received = []
        for event, data in result["events"]:
            assert event == ("batch" if batching else "alerts")
            received.extend(data if batching else [data])
        assert received == sent
        if transport == "websocket":
            assert hub.broadcaster.fast_deliveries > 0 and hub.broadcaster.stock_deliveries == 0
        else:
            assert hub.broadcaster.fast_deliveries == 0 and hub.broadcaster.stock_deliveries > 0


async def test_a_client_gets_one_batch_per_window_holding_all_its_streams_in_publish_order():
    updates = {**QUIET["updates"], "batch_updates": True, "batch_interval_ms": 600000}  # flushed by hand
    async with running_server(make_settings({}, {**QUIET, "updates": updates})) as srv, \
            aiohttp.ClientSession() as http:
        await srv.app[EMITTERS].stop()  # only this test publishes from here on
        await srv.app[HUB].flush()
        both = await RawClient.connect(http, srv, streams=("alerts", "backends"))
        alerts = await RawClient.connect(http, srv, streams=("alerts",))
        backends = await RawClient.connect(http, srv, streams=("backends",))
        await wait_members(srv, 2)
        await wait_members(srv, 2, room_of("backends"))
        hub = srv.app[HUB]
        a1 = await hub.publish("alerts", payload(1))
        b1 = await hub.publish("backends", {"mcp": backend_state("up")})
        a2 = await hub.publish("alerts", payload(2))
        assert await hub.flush() == 3
        await hub.broadcaster.emit("alerts", "end", room=ROOM, namespace=NS)
        await hub.broadcaster.emit("alerts", "end", room=room_of("backends"), namespace=NS)
        sio = srv.app[SIO]
        for client, expected in ((both, [a1, b1, a2]), (alerts, [a1, a2]), (backends, [b1])):
            text = await client.text()
            assert text == "4" + sio.packet_class(2, namespace=NS, data=["batch", expected]).encode()
            assert json.loads(text[len(f"42{NS},"):]) == ["batch", expected]
            assert await client.text() == f'42{NS},["alerts","end"]'  # nothing else came first
            await client.ws.close()
        assert hub.broadcaster.stock_deliveries == 0


async def test_js_client_upgrading_from_polling_gets_every_envelope_in_order(node):
    async with running_server(make_settings({}, QUIET)) as srv:
        count = 200
        spec = {"url": srv.url, "path": srv.ws_path, "namespace": NS, "transports": ["polling", "websocket"],
                "upgrade": True, "streams": ["alerts"], "count": count}
        proc = await asyncio.create_subprocess_exec(node, str(JS_DIR / "listen.mjs"), json.dumps(spec),
                                                    stdout=asyncio.subprocess.PIPE, cwd=JS_DIR)
        await wait_members(srv, 1)
        hub = srv.app[HUB]
        sent = []
        for i in range(count):  # the upgrade may complete before or during these
            sent.append(await hub.publish("alerts", alert_payload(i)))
            await asyncio.sleep(0.002)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        result = json.loads(out)
        assert result["error"] is None and result["transport"] == "websocket"
        assert [data for _event, data in result["events"]] == sent
        assert hub.broadcaster.fast_deliveries > 0  # once upgraded, the fast path serves it


@pytest.mark.parametrize("seed,polling", [(1, 0), (2, 0), (3, 0), (4, 2)])
async def test_concurrent_publishers_keep_per_socket_order_with_stock_and_fast_recipients(seed, polling):
    """Batching off, several publishers on one stream (as the watchers feeding `alerts`), and
    recipients on both paths: WebSocket clients whose writers are kept busy by per-client packets
    (so they flip between the paths), and in one case long-polling clients too (always the stock
    path). Every client must see the envelopes in publish (`seq`) order. (Before the fix, a
    recipient whose stock send was still a task not yet run could get a later envelope written
    directly first: this failed on Python 3.11 too.)"""
    async with running_server(make_settings({}, {**QUIET, "websocket": {"ping_interval_ms": 1000}})) as srv:
        clients = []
        for transport in ["websocket"] * (8 - polling) + ["polling"] * polling:
            sio = socketio.AsyncClient(reconnection=False)
            got: list[int] = []
            sio.on("alerts", lambda env, got=got: got.append(env["seq"]), namespace=NS)
            await sio.connect(srv.url, socketio_path=srv.ws_path, namespaces=[NS], transports=[transport])
            assert (await sio.call("subscribe", {"streams": ["alerts"]}, namespace=NS))["ok"]
            clients.append((sio, got))
        await wait_members(srv, len(clients))
        server, hub = srv.app[SIO], srv.app[HUB]
        sids = [sid for sid, _ in server.manager.get_participants(NS, ROOM)]
        rng = random.Random(seed)
        per_publisher, publishers = 150, 4
        done = asyncio.Event()

        async def publisher(k: int) -> None:
            for n in range(per_publisher):
                await hub.publish("alerts", alert_payload(k * 1000 + n))
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)

        async def noise() -> None:  # per-client packets: keep the WebSocket writers busy now and then
            while not done.is_set():
                for sid in rng.sample(sids, 3):
                    await server.emit("noise", {}, to=sid, namespace=NS)
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)

        noiser = asyncio.create_task(noise())
        await asyncio.gather(*(publisher(k) for k in range(publishers)))
        done.set()
        await noiser
        total = per_publisher * publishers

        async def all_in():
            while any(len(got) < total for _, got in clients):
                await asyncio.sleep(0.05)
        await asyncio.wait_for(all_in(), 60)
        broadcaster = hub.broadcaster
        assert broadcaster.fast_deliveries > 0 and broadcaster.stock_deliveries > 0
        for sio, got in clients:
            assert len(got) == total and got == sorted(got), \
                [(a, b) for a, b in zip(got, got[1:]) if b < a][:5]
        # A polling client's disconnect waits for its pending long-poll: pings every second.
        await asyncio.gather(*(sio.disconnect() for sio, _ in clients))
