"""Live streams through a real server and real python-socketio clients."""

from __future__ import annotations

import asyncio

import aiohttp
import socketio

from aura_dashboard.web.keys import HUB
from tests.conftest import make_settings, running_server

FAST = {"updates": {"intervals": {"system_metrics": 200}, "batch_updates": False},
        "panels": {"omni_monitor": {"graph_history_points": 5}}}


def fast(**over):
    merged = {**FAST}
    for key, value in over.items():
        merged[key] = {**merged.get(key, {}), **value}
    return merged


class Client:
    """A python-socketio client on /omni_monitor collecting what it receives."""

    def __init__(self):
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, object]] = []
        self.arrived = asyncio.Event()

        @self.sio.on("*", namespace="/omni_monitor")
        async def any_event(event, data):
            self.events.append((event, data))
            self.arrived.set()

    async def connect(self, url, transport="websocket"):
        await self.sio.connect(url, socketio_path="/ws", namespaces=["/omni_monitor"],
                               transports=[transport])
        return self

    async def call(self, event, data):
        return await self.sio.call(event, data, namespace="/omni_monitor", timeout=10)

    def envelopes(self, stream="system"):
        out = []
        for event, data in self.events:
            if event == stream:
                out.append(data)
            elif event == "batch":
                out.extend(e for e in data if e["stream"] == stream)
        return out

    async def wait_for(self, predicate, timeout=15):
        async def loop():
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(loop(), timeout)


async def wait_seq(srv, stream, seq, timeout=15):
    hub = srv.app[HUB]
    async def loop():
        while await hub.last_seq(stream) < seq:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(loop(), timeout)


async def test_subscriber_gets_history_then_live_envelopes_with_contiguous_seq():
    async with running_server(make_settings({}, fast())) as srv:
        await wait_seq(srv, "system", 7)
        client = await Client().connect(srv.url)
        try:
            ack = await client.call("subscribe", {"streams": ["system"]})
            assert ack["ok"] and ack["gap"] == {"system": False}
            history = ack["history"]["system"]
            assert len(history) == 5  # graph_history_points
            await client.wait_for(lambda: len(client.envelopes()) >= 3)
            seqs = [e["seq"] for e in history + client.envelopes()]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            live = client.envelopes()
            assert all(b["ts"] > a["ts"] for a, b in zip(live, live[1:]))
            data = live[-1]["data"]
            assert 0 <= data["cpu"]["percent"] <= 100 and data["memory"]["total"] > 0
            assert "/" in data["disk"] and live[-1]["source"]
        finally:
            await client.sio.disconnect()


async def test_reconnect_with_since_replays_exactly_the_missed_envelopes():
    async with running_server(make_settings({}, fast())) as srv:
        client = await Client().connect(srv.url)
        await client.call("subscribe", {"streams": ["system"]})
        await client.wait_for(lambda: len(client.envelopes()) >= 2)
        await client.sio.disconnect()
        last = client.envelopes()[-1]["seq"]
        await wait_seq(srv, "system", last + 4)  # it misses at least four
        again = await Client().connect(srv.url)
        try:
            ack = await again.call("subscribe", {"streams": ["system"], "since": {"system": last}})
            missed = ack["history"]["system"]
            assert ack["gap"] == {"system": False}
            assert [e["seq"] for e in missed] == list(range(last + 1, last + 1 + len(missed)))
            assert len(missed) >= 4
            await again.wait_for(lambda: len(again.envelopes()) >= 1)
            assert again.envelopes()[0]["seq"] == missed[-1]["seq"] + 1
        finally:
            await again.sio.disconnect()


async def test_tiny_buffer_reports_gap():
    settings = make_settings({}, fast(websocket={"message_buffer_size": 2}))
    async with running_server(settings) as srv:
        await wait_seq(srv, "system", 6)
        client = await Client().connect(srv.url)
        try:
            ack = await client.call("subscribe", {"streams": ["system"], "since": {"system": 1}})
            assert ack["gap"] == {"system": True}
            assert len(ack["history"]["system"]) <= 2
        finally:
            await client.sio.disconnect()


async def test_batching_on_gives_batch_events_in_order_over_polling_too():
    settings = make_settings({}, fast(updates={"batch_updates": True, "batch_interval_ms": 500}))
    async with running_server(settings) as srv:
        client = await Client().connect(srv.url, transport="polling")
        try:
            await client.call("subscribe", {"streams": ["system"]})
            await client.wait_for(lambda: len(client.envelopes()) >= 6)
            names = {event for event, _ in client.events}
            assert names == {"batch"}
            assert any(len(data) > 1 for _, data in client.events)
            seqs = [e["seq"] for e in client.envelopes()]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        finally:
            await client.sio.disconnect()


async def test_batching_off_gives_named_events():
    async with running_server(make_settings({}, fast())) as srv:
        client = await Client().connect(srv.url)
        try:
            await client.call("subscribe", {"streams": ["system"]})
            await client.wait_for(lambda: len(client.envelopes()) >= 2)
            assert {event for event, _ in client.events} == {"system"}
        finally:
            await client.sio.disconnect()


async def test_flag_flipped_through_patch_stops_and_restarts_the_stream():
    async with running_server(make_settings({}, fast())) as srv, aiohttp.ClientSession() as http:
        client = await Client().connect(srv.url)
        try:
            await client.call("subscribe", {"streams": ["system"]})
            await client.wait_for(lambda: len(client.envelopes()) >= 1)
            async with http.patch(srv.url + "/api/features", json={"system_monitoring": False}) as r:
                body = await r.json()
                assert r.status == 200 and body["effective"]["system_monitoring"] is False
                assert body["changed"] == [{"flag": "system_monitoring", "old": True, "new": False}]
            refused = await client.call("subscribe", {"streams": ["system"]})
            assert refused["error"]["code"] == "stream_disabled"
            hub_seq = client.envelopes()[-1]["seq"]
            await asyncio.sleep(0.6)  # three intervals: nothing may arrive
            assert all(e["seq"] <= hub_seq + 1 for e in client.envelopes())
            async with http.patch(srv.url + "/api/features", json={"system_monitoring": None}) as r:
                assert (await r.json())["effective"]["system_monitoring"] is True
            count = len(client.envelopes())
            await client.wait_for(lambda: len(client.envelopes()) >= count + 2)
        finally:
            await client.sio.disconnect()


async def test_bad_payloads_are_answered_and_the_connection_stays():
    async with running_server(make_settings({}, fast())) as srv:
        client = await Client().connect(srv.url)
        try:
            cases = [
                ("subscribe", "system", "bad_request"),
                ("subscribe", {"streams": []}, "bad_request"),
                ("subscribe", {"streams": ["system"], "since": {"system": -1}}, "bad_request"),
                ("subscribe", {"streams": ["system"], "since": {"gpu": 1}}, "bad_request"),
                ("subscribe", {"streams": [1]}, "bad_request"),
                ("subscribe", {"streams": ["system"], "extra": 1}, "bad_request"),
                ("subscribe", {"streams": ["debates"]}, "unknown_stream"),
                ("subscribe", {"streams": ["gpu"]}, "stream_disabled"),
                ("unsubscribe", {"streams": "system"}, "bad_request"),
                ("launch", {}, "unknown_event"),
            ]
            for event, payload, code in cases:
                ack = await client.call(event, payload)
                assert ack["ok"] is False and ack["error"]["code"] == code, (payload, ack)
            ack = await client.call("subscribe", {"streams": ["system"]})
            assert ack["ok"] is True
            assert (await client.call("unsubscribe", {"streams": ["system"]}))["ok"] is True
        finally:
            await client.sio.disconnect()
