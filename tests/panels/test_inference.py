"""Inference statistics: exact percentiles, the window, and the stream fed over REST."""

from __future__ import annotations

import random

import aiohttp
from hypothesis import given, settings as hsettings, strategies as st

from aura_dashboard.panels.inference import InferenceResult, InferenceStats
from aura_dashboard.stats import percentile
from tests.conftest import make_settings, running_server
from tests.panels.live import LiveClient, fast


def by_rank(values, p):
    """The definition, by counting: the smallest value with at least p % at or below it."""
    ordered = sorted(values)
    for v in ordered:
        if sum(1 for x in ordered if x <= v) * 100 >= p * len(ordered):
            return v


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=300),
       st.sampled_from([1, 25, 50, 57, 90, 95, 99, 99.9, 100]))
@hsettings(max_examples=200, deadline=None)
def test_percentile_matches_the_sorted_list(values, p):
    assert percentile(sorted(values), p) == by_rank(values, p)


def test_percentile_of_nothing_is_none():
    assert percentile([], 50) is None


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def result(model, latency, ok=True, tokens=None):
    return InferenceResult(model=model, latency_ms=latency, ok=ok, tokens=tokens)


def test_window_slides_and_models_leave():
    clock = Clock()
    stats = InferenceStats(60, clock=clock)
    stats.record([result("a", 10, ok=False, tokens=6), result("a", 30, tokens=6)])
    clock.now += 30
    stats.record([result("a", 20), result("b", 5)])
    snap = stats.snapshot()["models"]
    assert snap["a"]["count"] == 3 and snap["a"]["p50_ms"] == 20 and snap["a"]["p99_ms"] == 30
    assert abs(snap["a"]["error_rate"] - 1 / 3) < 1e-9 and snap["a"]["rps"] == 3 / 60
    assert snap["a"]["tokens_per_s"] == 12 / 60 and snap["b"]["tokens_per_s"] is None
    clock.now += 31  # the first two are older than the window now
    snap = stats.snapshot()["models"]
    assert snap["a"]["count"] == 1 and snap["a"]["error_rate"] == 0 and snap["a"]["p95_ms"] == 20
    clock.now += 60
    assert stats.snapshot()["models"] == {}


async def test_100_results_give_the_right_percentiles_on_the_stream():
    latencies = list(range(1, 101))  # 1..100 ms
    random.Random(5).shuffle(latencies)
    body = [{"model": "llama", "latency_ms": ms, "ok": ms % 10 != 0} for ms in latencies]
    async with running_server(make_settings(extra=fast())) as server:
        client = await LiveClient("/ai_system").connect(server)
        assert (await client.call("subscribe", {"streams": ["inference"]}))["ok"]
        async with aiohttp.ClientSession(server.url) as http:
            async with http.post("/api/ingest/inference", json=body[:50]) as r:
                assert r.status == 202 and (await r.json()) == {"ok": True, "accepted": 50}
            for item in body[50:60]:  # one at a time (well within the rate limit's burst)
                async with http.post("/api/ingest/inference", json=item) as r:
                    assert r.status == 202
            async with http.post("/api/ingest/inference", json=body[60:]) as r:
                assert r.status == 202

        def full():
            return [e["data"]["models"]["llama"] for e in client.of("inference")
                    if e["data"]["models"].get("llama", {}).get("count") == 100]
        await client.wait_for(lambda: bool(full()))
        llama = full()[-1]
        ordered = sorted(latencies)
        assert llama["p50_ms"] == ordered[49] == 50
        assert llama["p95_ms"] == ordered[94] == 95
        assert llama["p99_ms"] == ordered[98] == 99
        assert llama["error_rate"] == 0.1
        assert llama["rps"] == 100 / 60
        await client.close()


async def test_bad_ingest_bodies_are_bad_request():
    async with running_server(make_settings(extra=fast())) as server:
        async with aiohttp.ClientSession(server.url) as http:
            for bad in ({}, [], {"model": "m", "latency_ms": -1, "ok": True},
                        {"model": "m", "latency_ms": 1, "ok": "yes"},
                        {"model": "", "latency_ms": 1, "ok": True},
                        {"model": "m", "latency_ms": 1, "ok": True, "extra": 1},
                        [{"model": "m", "latency_ms": 1, "ok": True}, {"model": "m"}], "text", 5):
                async with http.post("/api/ingest/inference", json=bad) as r:
                    assert r.status == 400, bad
                    assert (await r.json())["error"]["code"] == "bad_request"
            async with http.post("/api/ingest/inference", data=b"{nope") as r:
                assert r.status == 400
            too_many = [{"model": "m", "latency_ms": 1, "ok": True}] * 1001
            async with http.post("/api/ingest/inference", json=too_many) as r:
                assert r.status == 400


async def test_ingest_refused_while_the_panel_is_off():
    settings = make_settings(env={"FEATURE_AI_SYSTEM_PANEL": "false"}, extra=fast())
    async with running_server(settings) as server:
        async with aiohttp.ClientSession(server.url) as http:
            async with http.post("/api/ingest/inference", json={"model": "m", "latency_ms": 1, "ok": True}) as r:
                assert r.status == 403 and (await r.json())["error"]["code"] == "panel_disabled"
