"""Alerts: debounce and hysteresis on synthetic series with an injected clock; end to end."""

from __future__ import annotations

import asyncio

import aiohttp
import socketio

from aura_dashboard.panels.alerts import AlertEngine
from tests.conftest import make_settings, running_server


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def engine(consecutive=2, margin=5.0):
    published = []
    clock = Clock()
    return AlertEngine(published.append, consecutive=consecutive, margin=margin, clock=clock), published, clock


async def feed(eng, clock, values, threshold=80.0):
    states = []
    for value in values:
        clock.now += 1
        change = await eng.observe("cpu_percent", "cpu_percent", value, threshold)
        states.append(change["state"] if change else None)
    return states


async def test_one_spike_does_not_fire_two_in_a_row_do():
    eng, published, clock = engine()
    assert await feed(eng, clock, [50, 95, 50, 95, 96]) == [None, None, None, None, "firing"]
    assert [a["state"] for a in published] == ["firing"]
    alert = eng.firing()[0]
    assert (alert["id"], alert["kind"], alert["value"], alert["threshold"]) == ("cpu_percent", "cpu_percent", 96, 80.0)
    assert alert["since"] == 1005.0


async def test_wobbling_around_the_threshold_does_not_flap():
    eng, published, clock = engine()
    series = [85, 85, 79, 81, 78, 82, 76, 81]  # fires, then wobbles within the margin
    states = await feed(eng, clock, series)
    assert states == [None, "firing", None, None, None, None, None, None]
    assert len(published) == 1 and eng.firing()


async def test_resolves_only_below_the_margin_and_can_fire_again():
    eng, published, clock = engine(margin=5)
    states = await feed(eng, clock, [90, 90, 76, 75.5, 74.9, 90, 90])
    assert states == [None, "firing", None, None, "resolved", None, "firing"]
    assert [a["state"] for a in published] == ["firing", "resolved", "firing"]
    assert published[1]["value"] == 74.9


async def test_consecutive_is_configurable_and_conditions_debounce():
    eng, published, clock = engine(consecutive=3)
    assert await feed(eng, clock, [90, 90, 90]) == [None, None, "firing"]
    results = [await eng.condition("backend_down:ml", "backend_down", active) for active in (True, True, True, False)]
    assert [r and r["state"] for r in results] == [None, None, "firing", "resolved"]


async def test_listeners_and_failing_sinks():
    eng, published, clock = engine(consecutive=1)
    heard = []
    eng.changed.connect(lambda alert: 1 / 0)
    eng.changed.connect(heard.append)
    await feed(eng, clock, [99])
    assert len(published) == 1 and len(heard) == 1


async def test_threshold_zero_fires_on_the_alerts_stream_end_to_end():
    extra = {"updates": {"intervals": {"system_metrics": 200}, "batch_updates": False},
             "monitoring": {"thresholds": {"cpu_percent": 0, "memory_percent": 0}}}
    async with running_server(make_settings({}, extra)) as srv:
        client = socketio.AsyncClient(reconnection=False)
        alerts = []
        got = asyncio.Event()

        @client.on("alerts", namespace="/omni_monitor")
        async def on_alert(envelope):
            alerts.append(envelope)
            got.set()

        await client.connect(srv.url, socketio_path="/ws", namespaces=["/omni_monitor"],
                             transports=["websocket"])
        try:
            ack = await client.call("subscribe", {"streams": ["alerts"]}, namespace="/omni_monitor")
            assert ack["ok"]
            history = ack["history"]["alerts"]
            async def memory_alert_seen():
                while not any(e["data"]["kind"] == "memory_percent" for e in history + alerts):
                    got.clear()
                    await got.wait()

            await asyncio.wait_for(memory_alert_seen(), 15)
            kinds = {e["data"]["kind"] for e in history + alerts}
            assert "memory_percent" in kinds
            memory = next(e["data"] for e in history + alerts if e["data"]["kind"] == "memory_percent")
            assert memory["state"] == "firing" and memory["threshold"] == 0
            async with aiohttp.ClientSession() as http, http.get(srv.url + "/api/alerts") as response:
                firing = (await response.json())["alerts"]
                assert "memory_percent" in {a["id"] for a in firing}
        finally:
            await client.disconnect()
