"""Hostile input: 10,000 malformed Engine.IO / Socket.IO packets over real WebSocket and
polling connections, and 1,000 rapid connect/disconnect cycles, while a well-behaved client
keeps receiving its stream. The server must not crash, the good client must miss nothing,
and memory must stay bounded. A seeded generator keeps every run reproducible."""

from __future__ import annotations

import asyncio
import gc
import json
import random

import aiohttp
import psutil
import pytest

from aura_dashboard.web.keys import HUB as HUB_KEY
from aura_dashboard.web.keys import SIO
from tests.conftest import make_settings, running_server
from tests.collectors.test_database import throwaway  # noqa: F401 (fixture)
from tests.realtime.test_streams_live import Client

SEED = 20240601
WS_PACKETS = 8_000
POLLING_PACKETS = 2_000
CYCLES = 1_000
SETTINGS = {
    "updates": {"intervals": {"system_metrics": 100}, "batch_updates": False},
    "panels": {"omni_monitor": {"graph_history_points": 1}},
    "websocket": {"max_message_size_bytes": 65_536, "ping_interval_ms": 2000, "pong_timeout_ms": 2000},
    "security": {"rate_limiting": {"requests_per_minute": 10_000_000, "burst_size": 100_000}},
}
NAMESPACES = ["/omni_monitor", "/chat", "/arena", "/governance", "/ai_system", "/nope", "", "/"]
EVENTS = ["subscribe", "unsubscribe", "message", "create_debate", "add_turn", "close_debate",
          "connect", "disconnect", "__proto__", "", "x" * 300]


def hostile_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(12 if depth < 6 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False, 0, -1, 2 ** 63, 1e308, -0.0])
    if kind == 2:
        return "".join(chr(rng.randrange(0, 0x2FFF)) for _ in range(rng.randrange(0, 40)))
    if kind == 3:
        return "s" * rng.choice([1, 1000, 70_000])
    if kind == 4:
        return rng.choice(["system", "gpu", "nope", "../etc", "\x00", "auto", "debug"])
    if kind == 5:
        return {"_placeholder": True, "num": rng.randrange(-2, 5)}
    if kind == 6:
        return rng.randrange(-10, 10 ** 6)
    if kind in (7, 8):
        return [hostile_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    keys = ["streams", "since", "text", "mode", "id", "topic", "participants", "speaker",
            "winner", "x", "__class__"]
    return {rng.choice(keys): hostile_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def deep(n: int):
    value: object = []
    for _ in range(n):
        value = [value]
    return value


def hostile_packet(rng: random.Random) -> str | bytes:
    ns = rng.choice(NAMESPACES)
    prefix = f"{ns}," if ns not in ("", "/") else ""
    kind = rng.randrange(14)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if kind == 1:
        return "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(0, 80)))
    if kind == 2:
        return rng.choice(["", "4", "40", "41", "42", "43", "44", "45", "46", "47", "49", "7", "8",
                           "2", "3", "5", "6", "1", "0", "2probe", "3probe", "4{", "42[", "42{}"])
    if kind == 3:
        return f"40{prefix}" + json.dumps(hostile_value(rng))
    if kind == 4:
        return f"41{prefix}"
    if kind in (5, 6, 7, 8):
        ack = str(rng.randrange(0, 10 ** 6)) if rng.random() < 0.5 else ""
        args = [rng.choice(EVENTS)] + [hostile_value(rng) for _ in range(rng.randrange(0, 3))]
        return f"42{prefix}{ack}" + json.dumps(args)
    if kind == 9:
        return f"45{rng.randrange(-1, 3)}-{prefix}" + json.dumps(["subscribe", {"_placeholder": True, "num": 0}])
    if kind == 10:
        return f"42{prefix}" + json.dumps(["subscribe", deep(rng.choice([10, 200, 900]))])
    if kind == 11:
        return f"43{prefix}{rng.randrange(0, 100)}" + json.dumps([hostile_value(rng)])
    if kind == 12:
        return f"42{prefix}" + json.dumps(["message", {"text": "t" * rng.choice([10, 5000, 60_000]),
                                                         "mode": hostile_value(rng)}])
    return f"4{rng.randrange(0, 10)}{prefix}" + "[" * rng.randrange(0, 50)


async def websocket_fuzz(http: aiohttp.ClientSession, url: str, rng: random.Random, count: int) -> int:
    sent, ws = 0, None
    try:
        while sent < count:
            if ws is None or ws.closed:
                ws = await http.ws_connect(f"{url}/?EIO=4&transport=websocket", autoping=False,
                                           max_msg_size=0)
                if rng.random() < 0.7:
                    await ws.send_str(f"40{rng.choice(NAMESPACES[:5])},")
            packet = hostile_packet(rng)
            try:
                if isinstance(packet, bytes):
                    await ws.send_bytes(packet)
                else:
                    await ws.send_str(packet)
            except (ConnectionError, RuntimeError):
                ws = None
            sent += 1
            if sent % 50 == 0:
                await asyncio.sleep(0)
    finally:
        if ws is not None:
            await ws.close()
    return sent


async def polling_fuzz(http: aiohttp.ClientSession, url: str, rng: random.Random, count: int) -> int:
    sent, sid = 0, None
    while sent < count:
        if sid is None:
            async with http.get(f"{url}/?EIO=4&transport=polling") as resp:
                text = await resp.text()
            sid = json.loads(text[1:])["sid"]
            async with http.post(f"{url}/?EIO=4&transport=polling&sid={sid}", data="40/omni_monitor,") as resp:
                await resp.read()
        batch = []
        for _ in range(10):
            packet = hostile_packet(rng)
            batch.append(packet.decode("latin-1") if isinstance(packet, bytes) else packet)
        sent += len(batch)
        # Like a real polling client, a GET is in flight beside each POST (it also collects
        # the close packet of a session the server ends).
        post = http.post(f"{url}/?EIO=4&transport=polling&sid={sid}", data="\x1e".join(batch),
                         timeout=aiohttp.ClientTimeout(total=30))
        poll = http.get(f"{url}/?EIO=4&transport=polling&sid={sid}", timeout=aiohttp.ClientTimeout(total=1))

        async def status(request) -> int:
            try:
                async with request as resp:
                    await resp.read()
                    return resp.status
            except asyncio.TimeoutError:
                return 0

        post_status, poll_status = await asyncio.gather(status(post), status(poll))
        if post_status != 200 or poll_status != 200:
            sid = None
    return sent


async def connect_cycles(http: aiohttp.ClientSession, url: str, count: int) -> None:
    for i in range(count):
        ws = await http.ws_connect(f"{url}/?EIO=4&transport=websocket", max_msg_size=0)
        if i % 2:
            await ws.send_str("40/omni_monitor,")
        await ws.close()


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


@pytest.mark.timeout(900)
async def test_fuzz_never_crashes_and_the_good_client_misses_nothing():
    rng = random.Random(SEED)
    async with running_server(make_settings({}, SETTINGS)) as srv:
        sio = srv.app[SIO]
        url = srv.url + srv.ws_path
        good = await Client().connect(srv.url)
        try:
            assert (await good.call("subscribe", {"streams": ["system"]}))["ok"]
            async with aiohttp.ClientSession() as http:
                await connect_cycles(http, url, 50)  # warm up before measuring
                before = rss()
                health_waits: list[float] = []

                async def health_probe():  # /healthz keeps answering under the attack
                    loop = asyncio.get_running_loop()
                    while True:
                        started = loop.time()
                        async with http.get(srv.url + "/healthz") as resp:
                            assert resp.status == 200
                        health_waits.append(loop.time() - started)
                        await asyncio.sleep(0.2)
                prober = asyncio.create_task(health_probe())
                ws_sent, poll_sent = await asyncio.wait_for(asyncio.gather(
                    websocket_fuzz(http, url, random.Random(rng.random()), WS_PACKETS),
                    polling_fuzz(http, url, random.Random(rng.random()), POLLING_PACKETS)), 400)
                await asyncio.wait_for(connect_cycles(http, url, CYCLES), 300)
                prober.cancel()
                (outcome,) = await asyncio.gather(prober, return_exceptions=True)
                assert isinstance(outcome, asyncio.CancelledError), outcome
                # The issue's target is 1 s; on a shared test machine only a hang is asserted.
                assert health_waits and max(health_waits) < 10, max(health_waits or [0])
            assert ws_sent + poll_sent >= 10_000

            # The good client is still connected, still answered, and missed no envelope.
            assert good.sio.connected
            assert (await good.call("subscribe", {"streams": ["system"]}))["ok"]
            count = len(good.envelopes())
            await good.wait_for(lambda: len(good.envelopes()) >= count + 3, timeout=30)
            seqs = [e["seq"] for e in good.envelopes()]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "the good client missed envelopes"

            async def settle():  # every hostile session ends; only the good one is left
                while len(sio.eio.sockets) > 1:
                    await asyncio.sleep(0.2)
            try:
                await asyncio.wait_for(settle(), 60)
            except asyncio.TimeoutError:
                raise AssertionError(f"{len(sio.eio.sockets)} sessions still open") from None
            grown = rss() - before
            assert grown < 150 * 2 ** 20, f"memory grew by {grown / 2 ** 20:.0f} MiB"
        finally:
            await good.sio.disconnect()


# -- named cases: each hostile packet of issue 15 gets its defined outcome ---------------------------
# (a `bad_request` acknowledgement where the packet carries an ack id on a joined namespace, else
# the session is closed with a reason); one server answers them all, one connection per case.

NS = "/omni_monitor"
CASE_SETTINGS = {**SETTINGS, "websocket": {**SETTINGS["websocket"], "max_message_size_bytes": 1_100_000}}


class Engine:
    """A raw Engine.IO WebSocket session, joined to `NS`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.frames: list[str] = []
        self.close_message = ""

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, url: str, join: str | None = NS) -> "Engine":
        ws = await http.ws_connect(f"{url}/?EIO=4&transport=websocket", autoping=False, max_msg_size=0)
        engine = cls(ws)
        opened = await ws.receive(timeout=10)
        assert opened.type == aiohttp.WSMsgType.TEXT and opened.data.startswith("0"), opened
        if join is not None:
            await ws.send_str(f"40{join},")
            assert (await engine.next_text()).startswith(f"40{join},{{"), engine.frames
        return engine

    async def next_text(self, timeout: float = 10) -> str:
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type != aiohttp.WSMsgType.TEXT:
                self.close_message = str(msg.extra or "")
                return f"<{msg.type.name}>"
            if msg.data == "2":
                await self.ws.send_str("3")
                continue
            self.frames.append(msg.data)
            return msg.data

    async def outcome(self, timeout: float = 10) -> str:
        """'ack <code>', 'closed' (a proper close: the close packet or a close frame), 'error'
        (the stream broke: not WebSocket any more) or 'deaf' (nothing within `timeout`)."""
        try:
            while True:
                text = await self.next_text(timeout)
                if text.startswith("43"):
                    return "ack " + json.loads(text[text.index("["):])[0]["error"]["code"]
                if text in ("1", "<CLOSE>", "<CLOSED>", "<CLOSING>"):
                    return "closed"
                if text == "<ERROR>":
                    return "error"
        except asyncio.TimeoutError:
            return "deaf"


CASES = {
    # item 1: binary attachments are refused on the announcing packet, however many it announces
    "99,999,999 attachments announced": (f"4599999999-{NS}," + json.dumps(["subscribe", {"_placeholder": True, "num": 0}]), "closed"),
    "one attachment announced": (f"451-{NS},5" + json.dumps(["subscribe", {"_placeholder": True, "num": 0}]), "closed"),
    "placeholder num 99": (f"451-{NS},6" + json.dumps(["subscribe", {"_placeholder": True, "num": 99}]), "closed"),
    # item 9: malformed packets are answered or closed, never dropped silently
    "bad JSON with an ack id": (f"42{NS},7[\"subscribe\",", "ack bad_request"),
    "bad JSON without an ack id": (f"42{NS},[\"subscribe\",", "closed"),
    "a non-list event": (f"42{NS},8" + json.dumps({"streams": ["system"]}), "ack bad_request"),
    "an integer event name": (f"42{NS},9[5, {{}}]", "ack bad_request"),
    "a 5,000-digit integer": (f"42{NS},10[\"subscribe\", {'9' * 5000}]", "ack bad_request"),
    "nesting 100,000 deep": (f"42{NS},11[\"subscribe\"," + "[" * 100_000 + "]" * 100_000 + "]", "ack bad_request"),
    "an over-long ack id": (f"42{NS}," + "1" * 200 + json.dumps(["subscribe", {}]), "closed"),
    "an event to an unconnected namespace": ("42/chat,12" + json.dumps(["subscribe", {}]), "closed"),
    "an event to an unknown namespace": ("42/nope,13" + json.dumps(["subscribe", {}]), "closed"),
    "an event on the default namespace": ("4214" + json.dumps(["subscribe", {}]), "closed"),
    "a reserved event name": (f"42{NS},15" + json.dumps(["disconnect"]), "ack bad_request"),
    "an acknowledgement nobody asked for": (f"43{NS},1[]", "closed"),
    # item 14: frames that are no Engine.IO packet close the session (no HTTP 500 inside it)
    "a text frame 'abc'": ("abc", "closed"),
    "an empty text frame": ("", "closed"),
    "bad base64 of a binary message": ("b!!!", "closed"),
    # item 16: a msgpack (binary) client is closed with a reason on its first packet
    "a msgpack packet": (b"\x83\xa4type\x02\xa4data\x92\xa9subscribe\x80\xa3nsp\xad/omni_monitor", "closed"),
}


@pytest.mark.timeout(300)
async def test_each_hostile_packet_gets_its_defined_outcome(caplog):
    outcomes, reasons = {}, {}
    async with running_server(make_settings({}, CASE_SETTINGS)) as srv:
        url = srv.url + srv.ws_path
        good = await Client().connect(srv.url)
        try:
            assert (await good.call("subscribe", {"streams": ["system"]}))["ok"]
            async with aiohttp.ClientSession() as http:
                for name, (packet, _) in CASES.items():
                    engine = await Engine.open(http, url)
                    await (engine.ws.send_bytes(packet) if isinstance(packet, bytes) else engine.ws.send_str(packet))
                    outcomes[name] = await engine.outcome()
                    reasons[name] = [f for f in engine.frames if f.startswith("44")] or engine.close_message
                    if outcomes[name].startswith("ack"):  # the connection is still up and still served
                        await engine.ws.send_str(f"42{NS},99" + json.dumps(["subscribe", {"streams": ["system"]}]))
                        text = await engine.next_text()
                        while not text.startswith(f"43{NS},99"):
                            text = await engine.next_text()
                        assert '"ok":true' in text.replace(" ", ""), text
                    await engine.ws.close()
            assert good.sio.connected
            count = len(good.envelopes())
            await good.wait_for(lambda: len(good.envelopes()) >= count + 2, timeout=30)
        finally:
            await good.sio.disconnect()
    assert outcomes == {name: expected for name, (_, expected) in CASES.items()}
    closed = [name for name, (_, expected) in CASES.items() if expected == "closed"]
    assert all(reasons[name] for name in closed), {name: reasons[name] for name in closed}
    # item 7 and 14: client mistakes are logged without a traceback, and never as an HTTP 500
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
    assert "unhandled error" not in caplog.text


async def test_default_namespace_is_refused_and_binary_clients_closed():
    async with running_server(make_settings({}, CASE_SETTINGS)) as srv:
        url = srv.url + srv.ws_path
        async with aiohttp.ClientSession() as http:
            engine = await Engine.open(http, url, join=None)
            await engine.ws.send_str("40")
            answer = await engine.next_text()
            assert answer.startswith("44{") and "unknown_namespace" in answer, answer
            await engine.ws.send_str("40/")
            assert "unknown_namespace" in await engine.next_text()
            await engine.ws.close()
        # python-socketio's own client on `/` is refused too
        import socketio
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(srv.url, socketio_path=srv.ws_path, transports=["websocket"], wait_timeout=5)
        await client.disconnect()


async def test_refused_events_count_against_the_connection_bucket():
    extra = {**CASE_SETTINGS, "security": {"rate_limiting": {"socket_events_per_minute": 6, "socket_burst_size": 5}}}
    async with running_server(make_settings({}, extra)) as srv:
        async with aiohttp.ClientSession() as http:
            engine = await Engine.open(http, srv.url + srv.ws_path)
            answers = []
            for i in range(8):
                await engine.ws.send_str(f"42{NS},{i}[5]")
                answers.append(await engine.outcome())
            assert answers == ["ack bad_request"] * 5 + ["ack rate_limited"] * 3
            await engine.ws.close()


async def test_malformed_polling_post_is_answered_400_and_ends_the_session():
    async with running_server(make_settings({}, CASE_SETTINGS)) as srv:
        url = srv.url + srv.ws_path
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/?EIO=4&transport=polling") as resp:
                sid = json.loads((await resp.text())[1:])["sid"]
            async with http.post(f"{url}/?EIO=4&transport=polling&sid={sid}", data="abc") as resp:
                assert resp.status == 400
            async with http.get(f"{url}/?EIO=4&transport=polling&sid={sid}") as resp:
                assert resp.status == 400  # the session is gone
            assert sid not in srv.app[SIO].eio.sockets


def test_client_mistakes_logged_once_per_connection_and_summarised(caplog):
    from aura_dashboard.security.packets import ClientMistakes
    mistakes = ClientMistakes(interval_s=60)
    with caplog.at_level("WARNING", logger="aura_dashboard.security.packets"):
        logged = [mistakes.note("a", "bad_request", "x", "10.0.0.1") for _ in range(50)]
        logged.append(mistakes.note("b", "malformed_frame", "y"))
        assert logged == [True] + [False] * 49 + [True]
        assert len(caplog.records) == 2
        assert mistakes.summary() == {"bad_request": 50, "malformed_frame": 1}
        assert "bad_request 50" in caplog.records[-1].getMessage()
        assert mistakes.summary() == {}  # nothing new: nothing logged
        assert len(caplog.records) == 3
    assert not any(r.exc_info for r in caplog.records)


# -- secrets inside URLs (item 2): a credential in every URL variable of .env.example ----------------
SECRET = "Pw-Secret-15"


def url_variables() -> list[str]:
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    return [line.split("=", 1)[0] for line in text.splitlines()
            if "=" in line and not line.startswith("#") and line.split("=", 1)[0].endswith(("_URL", "_URLS"))]


def credentialed_env(port: int, dead: int) -> dict[str, str]:
    env = {}
    for name in url_variables():
        if name == "MESSAGE_QUEUE_URL":  # the real Redis: its default user takes any password
            env[name] = f"redis://default:{SECRET}@127.0.0.1:6379/0"
        elif name == "DASHBOARD_PUBLIC_URLS":
            env[name] = f"http://viewer:{SECRET}@localhost:{port}"
        elif "WEBSOCKET" in name:
            env[name] = f"ws://user:{SECRET}@127.0.0.1:{dead}"
        else:
            env[name] = f"http://user:{SECRET}@127.0.0.1:{dead}/?token={SECRET}"
    return env


@pytest.mark.timeout(120)
async def test_no_output_shows_a_credential_from_a_url(tmp_path, caplog):
    import logging
    import subprocess
    import sys
    from tests.conftest import free_port
    from tests.test_cli import command, cli_env
    port, dead = free_port(), free_port()
    env = {**credentialed_env(port, dead), "DASHBOARD_CLUSTER": f"fuzz-secrets-{port}",
           "DATABASE_PASSWORD": SECRET, "TRUSTED_PROXIES": ""}
    assert {"MESSAGE_QUEUE_URL", "MCP_BACKEND_URL", "ML_BACKEND_URL", "GOVERNANCE_URL"} <= set(env)
    done = subprocess.run(command() + ["check-config"], cwd=tmp_path, env=cli_env(**env),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "<redacted>@127.0.0.1" in done.stdout  # the host stays readable

    caplog.set_level(logging.DEBUG)
    seen = []
    async with running_server(make_settings(env, {"health_checks": {"interval_ms": 200, "timeout_ms": 300}}),
                              port=port) as srv:
        async with aiohttp.ClientSession() as http:
            await asyncio.sleep(1.5)  # the probes fail a few times
            for path in ("/api/config", "/metrics", "/healthz", "/health", "/api/streams",
                         "/api/backends", "/api/audit", "/api/database/health"):
                async with http.get(srv.url + path) as resp:
                    seen.append((path, resp.status, await resp.text()))
    leaks = [(path, body[max(0, body.find(SECRET) - 200):body.find(SECRET) + 20]) for path, _, body in seen if SECRET in body]
    assert not leaks, leaks
    assert [s for p, s, _ in seen if p == "/api/config"] == [200]
    logged = [r.getMessage() for r in caplog.records if SECRET in r.getMessage()]
    assert not logged, logged[:3]


def test_log_lines_never_carry_url_credentials():
    import io
    import logging
    from aura_dashboard.logs import configure_logging
    stream = io.StringIO()
    settings = make_settings({}, {"logging": {"format": "text"}}).logging
    configure_logging(settings, stream=stream, instance="t")
    try:
        logging.getLogger("aura_dashboard.test").warning("cannot reach %s", f"redis://:{SECRET}@db:6379/0")
        logging.getLogger("aura_dashboard.test").warning(f"GET http://u:{SECRET}@h/x failed")
    finally:
        configure_logging(make_settings().logging, stream=io.StringIO())
    assert SECRET not in stream.getvalue()
    assert "redis://<redacted>@db:6379/0" in stream.getvalue()


# -- key guessing (item 4): failed authentications are held to the address's rate on every path ----------

@pytest.mark.timeout(120)
async def test_key_guessing_over_one_websocket_is_held_to_the_rate():
    extra = {**CASE_SETTINGS, "security": {"api_key_enabled": True,
                                           "rate_limiting": {"requests_per_minute": 60, "burst_size": 10}}}
    async with running_server(make_settings({"DASHBOARD_API_KEY": "the-right-key"}, extra)) as srv:
        async with aiohttp.ClientSession() as http:
            engine = await Engine.open(http, srv.url + srv.ws_path, join=None)
            for i in range(200):
                await engine.ws.send_str(f"40{NS}," + json.dumps({"api_key": f"guess-{i}"}))
            codes = []
            while len(codes) < 200:
                text = await engine.next_text()
                assert text.startswith(f"44{NS},"), text
                codes.append(json.loads(text[len(NS) + 3:])["data"]["code"] if '"data"' in text
                             else json.loads(text[len(NS) + 3:])["code"])
            compared = codes.count("unauthorized")
            assert compared <= 6, codes  # five free failures, then locked out: the key is not even compared
            assert codes.count("rate_limited") == 200 - compared
            # the right key from the same address waits out the lock too
            await engine.ws.send_str(f"40{NS}," + json.dumps({"api_key": "the-right-key"}))
            assert "rate_limited" in await engine.next_text()
            await engine.ws.close()
            # and REST from that address is refused (429) without a look at its key
            async with http.get(srv.url + "/api/features", headers={"X-API-Key": "the-right-key"}) as resp:
                assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1


def test_failure_delay_grows_and_a_success_clears_it():
    from aura_dashboard.security.buckets import FailureDelay
    now = [0.0]
    delay = FailureDelay(free=2, max_delay_s=8, clock=lambda: now[0])
    assert [delay.failed("a") for _ in range(7)] == [0, 0, 1, 2, 4, 8, 8]
    assert delay.wait("a") == 8 and delay.wait("b") == 0
    now[0] += 8
    assert delay.wait("a") == 0
    assert delay.failed("a", at_least=30) == 30  # the bucket's own wait wins when longer
    delay.succeeded("a")
    assert delay.failed("a") == 0


# -- subscribe amplification (item 3): an acknowledgement is bounded in bytes ---------------------------

@pytest.mark.timeout(120)
async def test_subscribe_answer_is_bounded_in_bytes_and_says_what_it_left_out():
    limit = 65_536
    extra = {**CASE_SETTINGS, "websocket": {**CASE_SETTINGS["websocket"], "max_ack_bytes": limit}}
    async with running_server(make_settings({}, extra)) as srv:
        async with aiohttp.ClientSession() as http:
            for d in range(10):
                async with http.post(srv.url + "/api/arena/debates",
                                     json={"topic": f"t{d}", "participants": ["a", "b"]}) as resp:
                    debate = (await resp.json())["id"]
                for _ in range(10):
                    async with http.post(f"{srv.url}/api/arena/debates/{debate}/turns",
                                         json={"speaker": "a", "text": "x" * 2000}) as resp:
                        assert resp.status == 200, await resp.text()
            engine = await Engine.open(http, srv.url + srv.ws_path, join="/arena")
            request = "42/arena,1" + json.dumps(["subscribe", {"streams": ["debates"]}])
            await engine.ws.send_str(request)
            text = await engine.next_text()
            while not text.startswith("43/arena,1"):
                text = await engine.next_text()
            await engine.ws.close()
    assert len(text.encode()) <= limit + 64, len(text)  # the Socket.IO header besides
    ack = json.loads(text[len("43/arena,1"):])[0]
    assert ack["ok"] and ack["gap"]["debates"] is True
    assert ack["truncated"]["debates"] + len(ack["history"]["debates"]) == 10
    assert 0 < len(ack["history"]["debates"]) < 10


async def _debates(http: aiohttp.ClientSession, url: str, count: int, turns: int, text: int) -> None:
    for d in range(count):
        async with http.post(url + "/api/arena/debates", json={"topic": f"t{d}", "participants": ["a", "b"]}) as resp:
            debate = (await resp.json())["id"]
        for _ in range(turns):
            async with http.post(f"{url}/api/arena/debates/{debate}/turns",
                                 json={"speaker": "a", "text": "x" * text}) as resp:
                assert resp.status == 200, await resp.text()


async def _subscribe_ack(engine: "Engine", ack_id: int, payload: dict) -> str:
    await engine.ws.send_str(f"42/arena,{ack_id}" + json.dumps(["subscribe", payload]))
    text = await engine.next_text(timeout=60)
    while not text.startswith(f"43/arena,{ack_id}"):
        text = await engine.next_text(timeout=60)
    return text


@pytest.mark.timeout(120)
async def test_subscribe_answer_is_at_most_a_multiple_of_its_request():
    multiple = 500
    extra = {**CASE_SETTINGS, "websocket": {**CASE_SETTINGS["websocket"], "max_ack_multiple": multiple}}
    async with running_server(make_settings({}, extra)) as srv:
        async with aiohttp.ClientSession() as http:
            await _debates(http, srv.url, 10, 2, 2000)
            engine = await Engine.open(http, srv.url + srv.ws_path, join="/arena")
            payload = {"streams": ["debates"]}
            text = await _subscribe_ack(engine, 1, payload)
            await engine.ws.close()
    request = len(json.dumps(["subscribe", payload], separators=(",", ":")).encode())
    assert len(text.encode()) <= multiple * request + 64, (len(text), request)
    ack = json.loads(text[len("43/arena,1"):])[0]
    assert ack["ok"] and ack["gap"]["debates"] is True and ack["truncated"]["debates"] > 0


@pytest.mark.timeout(300)
async def test_twenty_clients_subscribing_to_large_debates_at_once_stay_bounded():
    """The issue's scenario: 20 clients ask for a large `debates` at once. Each answer is within
    its limit, the server's memory grows by less than 20 answers' worth several times over (the
    stated ceiling: 20 x max_ack_bytes x 4 = 80 MiB; it once went from 229 MB to 2.7 GB), and a
    client on another namespace misses no envelope meanwhile."""
    async with running_server(make_settings({}, CASE_SETTINGS)) as srv:
        async with aiohttp.ClientSession() as http:
            await _debates(http, srv.url, 60, 6, 4000)  # ~1.4 MB of turns
            good = await Client().connect(srv.url)
            try:
                assert (await good.call("subscribe", {"streams": ["system"]}))["ok"]
                engines = [await Engine.open(http, srv.url + srv.ws_path, join="/arena") for _ in range(20)]
                before = rss()
                limit = 2 ** 20
                peak = [before]

                async def sample():
                    while True:
                        peak[0] = max(peak[0], psutil.Process().memory_info().rss)
                        await asyncio.sleep(0.01)
                sampler = asyncio.create_task(sample())
                answers = await asyncio.gather(*(_subscribe_ack(e, 1, {"streams": ["debates"]}) for e in engines))
                sampler.cancel()
                for engine in engines:
                    await engine.ws.close()
                assert all(len(a.encode()) <= limit + 64 for a in answers), [len(a) for a in answers]
                assert all(json.loads(a[len("43/arena,1"):])[0]["ok"] for a in answers)
                grown = peak[0] - before
                assert grown < 20 * limit * 4, f"memory grew by {grown / 2 ** 20:.0f} MiB"
                async with http.get(srv.url + "/healthz", timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    assert resp.status == 200
                count = len(good.envelopes())
                await good.wait_for(lambda: len(good.envelopes()) >= count + 3, timeout=30)
                seqs = [e["seq"] for e in good.envelopes()]
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "the good client missed envelopes"
            finally:
                await good.sio.disconnect()


# -- backend replies (item 6): read with a limit; over it the chat fails reply_too_large --------------

@pytest.mark.timeout(120)
async def test_huge_backend_replies_are_refused_not_held():
    from aiohttp import web
    from tests.conftest import serve_app
    from tests.panels.live import LiveClient
    big = 3 * 2 ** 20

    async def streamed(request: web.Request) -> web.StreamResponse:  # no Content-Length: chunked
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(big // 65_536):
            await response.write(b'"' + b"r" * 65_534 + b'"')
        await response.write_eof()
        return response

    async def declared(request: web.Request) -> web.Response:
        return web.Response(body=b"h" * big, content_type="application/json")

    backend = web.Application()
    backend.router.add_post("/api/chat", streamed)
    backend.router.add_get("/{tail:.*}", declared)
    async with serve_app(backend, shutdown_timeout=0.5) as port:
        url = f"http://127.0.0.1:{port}"
        env = {"MCP_BACKEND_URL": url, "ML_BACKEND_URL": url}
        extra = {**CASE_SETTINGS, "backends": {"max_reply_bytes": 2 ** 20,
                                               "mcp": {"health_check_interval_ms": 200},
                                               "ml": {"health_check_interval_ms": 200}},
                 "panels": {"chat": {"retry_attempts": 0}}}
        async with running_server(make_settings(env, extra)) as srv:
            before = rss()
            client = await LiveClient("/chat").connect(srv)
            ack = await client.call("message", {"text": "hi", "mode": "auto"})
            await client.wait_for(lambda: any(u["state"] in ("done", "failed") for u in client.of("chat_update")
                                              if u["id"] == ack["id"]))
            final = [u for u in client.of("chat_update") if u["id"] == ack["id"]][-1]
            await client.close()
            assert final["state"] == "failed" and final["code"] == "reply_too_large", final
            assert "backends.max_reply_bytes" in final["reason"]

            async with aiohttp.ClientSession() as http:
                for _ in range(50):
                    async with http.get(srv.url + "/api/backends") as resp:
                        mcp = (await resp.json())["mcp"]
                    if mcp["status"] != "unknown":
                        break
                    await asyncio.sleep(0.2)
            assert mcp["status"] == "down" and "reply_too_large" in mcp["error"], mcp
            assert rss() - before < 60 * 2 ** 20


def huge_reply_backend(size: int):
    """A real HTTP backend whose every answer is `size` bytes of JSON: declared (Content-Length)
    on GET, streamed without a length (chunked) on POST."""
    from aiohttp import web

    async def declared(request: web.Request) -> web.Response:
        return web.Response(body=b'"' + b"h" * (size - 2) + b'"', content_type="application/json")

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"data": "')
        for _ in range(size // 65_536):
            await response.write(b"s" * 65_536)
        await response.write(b'"}')
        await response.write_eof()
        return response

    backend = web.Application()
    backend.router.add_get("/{tail:.*}", declared)
    backend.router.add_post("/{tail:.*}", streamed)
    return backend


async def test_the_models_probe_refuses_a_reply_over_the_limit():
    from aura_dashboard.collectors.models import ModelsProbe
    from aura_dashboard.config.schema import MlBackendSettings
    from tests.conftest import serve_app
    async with serve_app(huge_reply_backend(3 * 2 ** 20), shutdown_timeout=0.5) as port:
        ml = MlBackendSettings(url=f"http://127.0.0.1:{port}", health_check_interval_ms=1000, models_path="/models")
        async with aiohttp.ClientSession() as http:
            probe = ModelsProbe(ml, 10.0, lambda: http, lambda: {"status": "up"}, max_reply_bytes=2 ** 20)
            data = await probe.sample()
            assert data["models"] is None and data["models_note"] == "/models: ReplyTooLarge", data
            probe.max_reply_bytes = 4 * 2 ** 20  # under the limit the same reply is read (not a list)
            assert (await probe.sample())["models_note"] == "/models answered JSON without a list of models"


class _HolderElsewhere:
    """The cluster link as a non-holder sees it: the lease is another instance's, at `url`."""

    def __init__(self, url: str):
        self.lease = type("Lease", (), {"held": False})()
        self.url, self.owner, self._holder = "http://127.0.0.1:1", "me", url

    async def holder_url(self) -> str:
        return self._holder

    async def peer_secret(self) -> str:
        return "secret"


async def test_an_answer_forwarded_from_the_lease_holder_is_held_to_the_reply_limit():
    from aura_dashboard.errors import DashboardError
    from aura_dashboard.realtime.forwarding import HolderForwarder
    from tests.conftest import serve_app
    async with serve_app(huge_reply_backend(3 * 2 ** 20), shutdown_timeout=0.5) as port:
        async with aiohttp.ClientSession() as http:
            forwarder = HolderForwarder(_HolderElsewhere(f"http://127.0.0.1:{port}"), lambda: http,
                                        max_reply_bytes=2 ** 20)
            for method in ("GET", "POST"):  # declared, then streamed without a length
                with pytest.raises(DashboardError) as refused:
                    await forwarder.forward(method, "/api/arena/debates", None, {}, client="c", actor="a")
                assert refused.value.code == "reply_too_large" and refused.value.status == 502
                assert "backends.max_reply_bytes" in str(refused.value)
            forwarder.max_reply_bytes = 4 * 2 ** 20
            status, body = await forwarder.forward("POST", "/api/arena/x", b"{}", {}, client="c", actor="a")
            assert status == 200 and len(body["data"]) == 3 * 2 ** 20


# -- public health (item 12): brief without the key, details with it -----------------------------------

async def test_public_health_is_brief_and_the_key_shows_details():
    env = {"SECURITY_API_KEY_ENABLED": "true", "DASHBOARD_API_KEY": "health-key",
           "MCP_BACKEND_URL": "http://10.255.255.1:8000", "DATABASE_HOST": "127.0.0.1", "DATABASE_PORT": "1"}
    extra = {**CASE_SETTINGS, "backends": {"mcp": {"health_check_interval_ms": 200}}}
    async with running_server(make_settings(env, extra)) as srv:
        async with aiohttp.ClientSession() as http:
            await asyncio.sleep(1.0)
            async with http.get(srv.url + "/healthz") as resp:
                assert resp.status == 200
                public = await resp.json()
            async with http.get(srv.url + "/healthz", headers={"X-API-Key": "health-key"}) as resp:
                detailed = await resp.json()
    text = json.dumps(public["dependencies"])
    assert "10.255.255.1" not in text and "8000" not in text and "error" not in text and "reason" not in text
    statuses = []

    def collect(node):
        for key, value in node.items():
            if key == "status":
                statuses.append(value)
            elif isinstance(value, dict):
                collect(value)
    collect(public["dependencies"])
    assert statuses and set(statuses) <= {"ok", "degraded", "down"}, public
    assert public["dependencies"]["backends"]["mcp"]["status"] in ("down", "degraded")
    assert public["dependencies"]["database"] == {"status": "down"}
    assert "10.255.255.1" in json.dumps(detailed["dependencies"]) or "error" in json.dumps(detailed["dependencies"])


# -- the frame limit (item 13): exactly websocket.max_message_size_bytes passes, one more does not -------

@pytest.mark.parametrize("extra_bytes,expected", [(0, "ack bad_request"), (1, "closed")])
async def test_frame_limit_is_inclusive(extra_bytes, expected):
    limit = 2 ** 20
    settings = {**CASE_SETTINGS, "websocket": {**CASE_SETTINGS["websocket"], "max_message_size_bytes": limit}}
    async with running_server(make_settings({}, settings)) as srv:
        async with aiohttp.ClientSession() as http:
            engine = await Engine.open(http, srv.url + srv.ws_path)
            head = f'42{NS},5["subscribe","'
            frame = head + "x" * (limit + extra_bytes - len(head) - 2) + '"]'
            assert len(frame.encode()) == limit + extra_bytes
            await engine.ws.send_str(frame)
            assert await engine.outcome() == expected  # answered (a string over 65,536 characters) or closed
            await engine.ws.close()


# -- DNS rebinding (item 11): an Origin equal to the Host passes only for a configured public name -------

async def test_websocket_origin_equal_to_host_is_refused_unless_a_public_name():
    from tests.conftest import free_port
    port = free_port()
    env = {"DASHBOARD_PORT": str(port), "DASHBOARD_PUBLIC_URLS": f"http://dash.example:{port}"}
    async with running_server(make_settings(env, CASE_SETTINGS), port) as srv:
        async with aiohttp.ClientSession() as http:
            for host, allowed in ((f"rebound.example:{port}", False), (f"dash.example:{port}", True)):
                headers = {"Origin": f"http://{host}", "Host": host}
                try:
                    ws = await http.ws_connect(f"{srv.url}{srv.ws_path}/?EIO=4&transport=websocket", headers=headers)
                except aiohttp.WSServerHandshakeError as exc:
                    assert not allowed and exc.status == 400, (host, exc)
                else:
                    assert allowed, host
                    await ws.close()


# -- audit growth (item 10): failed authentications aggregated per address per minute; retention ---------

async def test_failed_authentications_make_one_audit_entry_per_address_per_minute():
    from aura_dashboard.panels.audit import AuditStore
    now = [1_000_000.0]
    store = AuditStore(":memory:", clock=lambda: now[0])
    for i in range(50):
        await store.record_security_event({"action": "auth_failed", "actor": "10.0.0.1", "target": f"/api/x{i % 3}",
                                           "detail": {"reason": "wrong API key"}})
    await store.record_security_event({"action": "auth_failed", "actor": "10.0.0.2", "target": "/chat",
                                       "detail": {"reason": "missing API key", "suppressed": 4}})
    entries = await store.recent(100)
    assert len(entries) == 2
    by_actor = {e["actor"]: e["detail"] for e in entries}
    assert by_actor["10.0.0.1"]["count"] == 50 and sorted(by_actor["10.0.0.1"]["targets"]) == ["/api/x0", "/api/x1", "/api/x2"]
    assert by_actor["10.0.0.2"]["count"] == 5
    now[0] += 61
    await store.record_security_event({"action": "auth_failed", "actor": "10.0.0.1", "target": "/api/x0",
                                       "detail": {"reason": "wrong API key"}})
    assert len(await store.recent(100)) == 3  # the next minute, a new entry
    await store.close()


@pytest.mark.timeout(120)
async def test_audit_retention_by_age_and_rows_in_sqlite_and_postgres(tmp_path, throwaway):  # noqa: F811
    from aura_dashboard.collectors.database import dsn_of
    from aura_dashboard.panels.audit import AuditStore
    from tests.collectors.test_database import db_settings
    now = [2_000_000_000.0]
    store = AuditStore(str(tmp_path / "audit.db"), postgres_dsn=dsn_of(db_settings(throwaway.env()), 3),
                       clock=lambda: now[0], retention_days=1, max_rows=5)
    for i in range(4):  # two days old
        await store.record("feature_toggled", "api:x", f"features.old{i}")
    now[0] += 2 * 86_400
    for i in range(8):
        await store.record("feature_toggled", "api:x", f"features.new{i}")
    assert await store.sync_once() == 12
    assert await store.prune_once() == 4 + 3
    assert [e["target"] for e in await store.recent(100)] == [f"features.new{i}" for i in range(7, 2, -1)]
    rows = throwaway.query("SELECT target FROM aura_audit ORDER BY ts DESC, uid DESC")
    assert len(rows) == 5 and not any("old" in r[0] for r in rows)
    await store.close()


# -- slow consumers in bytes (item 5): a client that does not read is cut off past its byte backlog -------

@pytest.mark.timeout(120)
async def test_slow_consumer_cut_off_by_bytes_before_its_packet_count():
    from aura_dashboard.web.keys import BACKLOG_WATCH, HUB
    from tests.conftest import alert_payload
    from tests.security.test_socket_limits import QUIET, fast_and_slow_on_alerts
    settings = make_settings({}, {**QUIET, "websocket": {"max_client_backlog": 100_000,
                                                         "max_client_backlog_bytes": 1_048_576}})
    async with running_server(settings) as srv, fast_and_slow_on_alerts(srv) as (fast, slow_sids):
        hub, sio = srv.app[HUB], srv.app[SIO]
        before = rss()
        blob = "x" * 32_768
        start = len(fast.envelopes("alerts"))

        def fast_has() -> int:
            return sum(e["data"]["id"].startswith("test:") for e in fast.envelopes("alerts")[start:])
        for i in range(400):  # about 13 MB, far below 100,000 packets
            await hub.publish("alerts", alert_payload(i, message=blob))
            # The reading client keeps within a few envelopes (~130 KB) of the stream, as a
            # reader does: on a loaded machine an unpaced loop let it fall 1 MiB behind too.
            await fast.wait_for(lambda: fast_has() >= i - 4, timeout=30)

        async def gone():
            while slow_sids & set(sio.eio.sockets):
                await asyncio.sleep(0.05)
        await asyncio.wait_for(gone(), 20)
        assert srv.app[BACKLOG_WATCH].cut_off == 1
        assert fast.sio.connected
        assert rss() - before < 100 * 2 ** 20


# -- slow uploads (item 8, in part): a body that never finishes is answered 408 and its connection closed --

async def test_a_body_that_never_arrives_is_answered_408():
    async with running_server(make_settings({}, {**CASE_SETTINGS, "dashboard": {"body_timeout_s": 0.5}})) as srv:
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.write(b"PATCH /api/features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"debug_mode\":")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # the server closes the connection
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"dashboard.body_timeout_s" in answer


async def test_a_half_sent_request_head_is_closed_after_the_header_timeout():
    async with running_server(make_settings({}, {**CASE_SETTINGS, "dashboard": {"header_timeout_s": 0.5}})) as srv:
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.write(b"GET /api/features HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # closed by the server, nothing answered
        writer.close()
        assert answer == b""
        async with aiohttp.ClientSession() as http:  # and the server answers everyone else
            async with http.get(srv.url + "/healthz") as resp:
                assert resp.status == 200


async def test_debate_envelopes_carry_the_last_turns_and_rest_pages_them_all():
    extra = {**CASE_SETTINGS, "panels": {**CASE_SETTINGS["panels"], "intelligence_arena": {"turns_in_envelope": 3}}}
    async with running_server(make_settings({}, extra)) as srv:
        async with aiohttp.ClientSession() as http:
            async with http.post(srv.url + "/api/arena/debates", json={"topic": "t", "participants": ["a", "b"]}) as resp:
                debate = (await resp.json())["id"]
            for i in range(10):
                async with http.post(f"{srv.url}/api/arena/debates/{debate}/turns",
                                     json={"speaker": "a", "text": f"turn {i}"}) as resp:
                    assert resp.status == 200
            async with http.get(f"{srv.url}/api/arena/debates/{debate}") as resp:
                state = await resp.json()
            pages = []
            for offset in (0, 4, 8):
                async with http.get(f"{srv.url}/api/arena/debates/{debate}/turns",
                                    params={"offset": offset, "limit": 4}) as resp:
                    pages += (await resp.json())["turns"]
            async with http.get(f"{srv.url}/api/arena/debates/{debate}/turns", params={"limit": 500}) as resp:
                assert resp.status == 400
        envelope = (await srv.app[HUB_KEY].latest("debates"))["data"]
    assert state["turn_count"] == 10 and [t["text"] for t in state["turns"]] == ["turn 7", "turn 8", "turn 9"]
    assert envelope["turn_count"] == 10 and len(envelope["turns"]) == 3
    assert [t["text"] for t in pages] == [f"turn {i}" for i in range(10)]
