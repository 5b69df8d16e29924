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

from aura_dashboard.web.keys import SIO
from tests.conftest import make_settings, running_server
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
                ws_sent, poll_sent = await asyncio.wait_for(asyncio.gather(
                    websocket_fuzz(http, url, random.Random(rng.random()), WS_PACKETS),
                    polling_fuzz(http, url, random.Random(rng.random()), POLLING_PACKETS)), 400)
                await asyncio.wait_for(connect_cycles(http, url, CYCLES), 300)
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
