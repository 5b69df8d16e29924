"""GET /api/history/{stream} in its range form, on a real server: the live buffer for the last
moments, the tiers past it, coded errors, the API key, and the data from before a restart
with the restart drawn as a gap."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import aiohttp
import pytest

from aura_dashboard.web.keys import HISTORY, HUB
from tests.conftest import make_settings, running_server

FAST = {"updates": {"intervals": {"system_metrics": 100}, "batch_updates": False},
        "history": {"fine": {"resolution_s": 1}, "coarse": {"resolution_s": 2}}}


async def get(http, url, **params):
    async with http.get(url, params=params) as response:
        return response.status, await response.json()


async def until(predicate, timeout=20.0):
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.1)


async def test_range_form_answers_columns_from_the_live_buffer_then_the_tiers(tmp_path):
    # A small buffer (20 envelopes, 2 s) so that a 10 s range reaches into the fine tier.
    extra = {**FAST, "websocket": {"message_buffer_size": 20}}
    settings = make_settings({"HISTORY_STORE_PATH": str(tmp_path / "h.db")}, extra)
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        hub, writer = srv.app[HUB], srv.app[HISTORY].writer
        writer.aggregator.grace_s = 0.2  # buckets are written within about a second

        async def written():  # about 6 s of samples, most of them in written buckets
            return await hub.last_seq("system") >= 60 and writer.written > 0
        await until(written)
        now = time.time()
        status, live = await get(http, f"{srv.url}/api/history/system", **{"from": now - 1.0, "to": now})
        assert status == 200, live
        assert live["tier"] == "live" and live["source"] == hub.source
        assert len(live["t"]) >= 3 and live["t"] == sorted(live["t"])
        cpu = live["fields"]["cpu.percent"]
        assert cpu["field"] == "cpu.percent" and cpu["keys"] == []
        assert all(lo == avg == hi for lo, avg, hi in zip(cpu["min"], cpu["avg"], cpu["max"]) if lo is not None)

        status, fine = await get(http, f"{srv.url}/api/history/system", **{
            "from": datetime.fromtimestamp(now - 10, timezone.utc).isoformat(), "to": str(now),
            "fields": "cpu.percent,network.*.bytes_recv_per_s"})
        assert status == 200, fine
        assert fine["tier"] == "fine" and fine["step"] == 1
        assert set(fine["fields"]) >= {"cpu.percent"}
        assert {c["field"] for c in fine["fields"].values()} <= {"cpu.percent", "network.*.bytes_recv_per_s"}
        points = [i for i, v in enumerate(fine["fields"]["cpu.percent"]["avg"]) if v is not None]
        assert len(points) >= 3
        for i in points:
            c = fine["fields"]["cpu.percent"]
            assert c["min"][i] <= c["avg"][i] <= c["max"][i]
        assert fine["sources"] == [hub.source]
        # At most max_points, merging buckets (a step of a whole number of fine buckets).
        status, merged = await get(http, f"{srv.url}/api/history/system", **{"from": now - 10, "to": now,
                                                                                "step": "4"})
        assert merged["step"] == 4 and len([t for t in merged["t"]]) <= 5
        # The buffer form is unchanged.
        status, body = await get(http, f"{srv.url}/api/history/system", points="5")
        assert status == 200 and len(body["envelopes"]) == 5 and "last_seq" in body


@pytest.mark.parametrize("params,code", [
    ({"from": "yesterday"}, "bad_range"),
    ({"from": "100", "to": "50"}, "bad_range"),
    ({"from": "100", "to": "100"}, "bad_range"),
    ({"from": "nan"}, "bad_range"),
    ({"from": "-5"}, "bad_range"),
    ({"to": "100"}, "bad_range"),
    ({"from": "0", "to": "100", "step": "-1"}, "bad_range"),
    ({"from": "0", "to": "100", "step": "x"}, "bad_range"),
    ({"from": "0", "points": "5"}, "bad_range"),
    ({"from": "0", "fields": "cpu.percent,cpu.count"}, "unknown_field"),
    ({"from": "0", "fields": "no.such"}, "unknown_field"),
])
async def test_bad_ranges_and_fields_are_400_with_a_code(params, code):
    async with running_server(make_settings({}, FAST)) as srv, aiohttp.ClientSession() as http:
        status, body = await get(http, f"{srv.url}/api/history/system", **params)
        assert status == 400 and body["error"]["code"] == code, body
        status, body = await get(http, f"{srv.url}/api/history/nope", **{"from": "0"})
        assert status == 400 and body["error"]["code"] == "unknown_stream"
        status, body = await get(http, f"{srv.url}/api/history/alerts", **{"from": "0"})
        assert status == 400 and body["error"]["code"] == "no_series"
        async with http.get(f"{srv.url}/healthz") as response:
            assert response.status == 200  # the server is fine


async def test_range_form_needs_the_api_key():
    settings = make_settings({"SECURITY_API_KEY_ENABLED": "true", "DASHBOARD_API_KEY": "k1"}, FAST)
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        status, body = await get(http, f"{srv.url}/api/history/system", **{"from": "0"})
        assert status == 401 and body["error"]["code"] == "unauthorized"
        async with http.get(f"{srv.url}/api/history/system", params={"from": str(time.time() - 3600)},
                            headers={"Authorization": "Bearer k1"}) as response:
            assert response.status == 200


async def test_history_from_before_a_restart_is_kept_and_the_restart_is_a_gap(tmp_path):
    settings = make_settings({"HISTORY_STORE_PATH": str(tmp_path / "h.db"), "DASHBOARD_INSTANCE": "host-r"}, FAST)
    async with running_server(settings) as first:
        first.app[HISTORY].writer.aggregator.grace_s = 0.2
        hub = first.app[HUB]

        async def some():
            return await hub.last_seq("system") >= 15
        await until(some)
        first_start = first.app[HISTORY].writer.started
    # The shutdown flushed the partial buckets; the live buffer went with the process.
    await asyncio.sleep(1.5)
    async with running_server(settings) as second, aiohttp.ClientSession() as http:
        second.app[HISTORY].writer.aggregator.grace_s = 0.2
        restarted = second.app[HISTORY].writer.started

        async def after():
            return second.app[HISTORY].writer.written >= 5
        await until(after)
        now = time.time()
        status, body = await get(http, f"{second.url}/api/history/system",
                                 **{"from": first_start - 60, "to": now, "fields": "cpu.percent", "step": "1"})
        assert status == 200, body
        assert body["tier"] == "fine"
        t, avg = body["t"], body["fields"]["cpu.percent"]["avg"]
        before = [v for x, v in zip(t, avg) if x < restarted - 1 and v is not None]
        after_ = [v for x, v in zip(t, avg) if x > restarted and v is not None]
        assert len(before) >= 1 and len(after_) >= 1, body
        assert body["restarts"] == [first_start, restarted]
        i = t.index(restarted)
        assert avg[i] is None, "the restart is drawn as a gap"


async def test_history_off_answers_ranges_from_the_live_buffer_only():
    async with running_server(make_settings({"HISTORY_ENABLED": "false"}, FAST)) as srv, \
            aiohttp.ClientSession() as http:
        assert srv.app[HISTORY].writer is None

        async def some():
            return await srv.app[HUB].last_seq("system") >= 5
        await until(some)
        status, body = await get(http, f"{srv.url}/api/history/system", **{"from": time.time() - 3600})
        assert status == 200 and body["tier"] == "live" and len(body["t"]) >= 5
        async with http.get(f"{srv.url}/healthz") as response:
            assert (await response.json())["dependencies"]["history"] == {"status": "disabled"}


async def test_postgres_history_down_is_a_503_and_the_server_stays_up(throwaway):
    settings = make_settings({**throwaway.env(), "HISTORY_STORE": "postgres",
                              "FEATURE_DATABASE_MONITORING": "false"}, FAST)
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        writer = srv.app[HISTORY].writer
        writer.aggregator.grace_s = 0.2

        async def written():
            return writer.written > 0
        await until(written)
        span = {"from": time.time() - 3600, "fields": "cpu.percent"}
        status, body = await get(http, f"{srv.url}/api/history/system", **span)
        assert status == 200 and body["tier"] == "fine"
        throwaway.stop()
        status, body = await get(http, f"{srv.url}/api/history/system", **span)
        assert status == 503 and body["error"]["code"] == "history_unavailable"

        async def down():
            async with http.get(f"{srv.url}/healthz") as response:
                return response.status == 200 and (await response.json())["dependencies"]["history"]["status"] == "down"
        await until(down)
        throwaway.start()

        async def back():
            return writer.status == "up" and not writer.pending
        await until(back, 40)
        status, body = await get(http, f"{srv.url}/api/history/system", **span)
        assert status == 200
