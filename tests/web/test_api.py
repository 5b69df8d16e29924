"""REST reads of the hub, features, config, /metrics, cache and gzip, on a real server."""

from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from aura_dashboard.web.keys import EMITTERS, HUB, READ_CACHE
from tests.conftest import make_settings, running_server

FAST = {"updates": {"intervals": {"system_metrics": 200}, "batch_updates": False}}


async def get_json(http, url, status=200):
    async with http.get(url) as response:
        assert response.status == status, await response.text()
        return await response.json()


async def first_sample(srv, stream="system"):
    hub = srv.app[HUB]
    while await hub.latest(stream) is None:
        await asyncio.sleep(0.05)


async def test_latest_history_and_errors():
    # Thresholds no value passes (values must be over them), whatever the machine's load.
    calm = {**FAST, "monitoring": {"thresholds": {"cpu_percent": 100, "memory_percent": 100, "disk_percent": 100}}}
    async with running_server(make_settings({}, calm)) as srv, aiohttp.ClientSession() as http:
        await asyncio.wait_for(first_sample(srv), 10)
        latest = await get_json(http, srv.url + "/api/system/metrics")
        assert latest["stream"] == "system" and latest["data"]["cpu"]["count"] >= 1
        history = await get_json(http, srv.url + "/api/history/system?points=1")
        assert len(history["envelopes"]) == 1 and history["last_seq"] >= 1
        assert (await get_json(http, srv.url + "/api/history/nope", 404))["error"]["code"] == "unknown_stream"
        assert (await get_json(http, srv.url + "/api/history/system?points=x", 400))["error"]["code"] == "bad_request"
        assert (await get_json(http, srv.url + "/api/history/system?points=0", 400))["error"]["code"] == "bad_request"
        assert (await get_json(http, srv.url + "/api/gpu/metrics", 409))["error"]["code"] == "stream_disabled"
        assert (await get_json(http, srv.url + "/api/alerts")) == {"alerts": []}


async def test_cached_read_is_reused_until_the_stream_moves_on():
    extra = {"updates": {"intervals": {"system_metrics": 60000}}}
    async with running_server(make_settings({}, extra)) as srv, aiohttp.ClientSession() as http:
        await asyncio.wait_for(first_sample(srv), 10)
        cache = srv.app[READ_CACHE]
        a = await get_json(http, srv.url + "/api/system/metrics")
        b = await get_json(http, srv.url + "/api/system/metrics")
        assert a == b and cache.hits == 1
        data = {"cpu": {"percent": 1.0, "count": 2, "load_avg": None}}
        await srv.app[HUB].publish("system", data)
        c = await get_json(http, srv.url + "/api/system/metrics")
        assert c["seq"] == a["seq"] + 1 and c["data"] == data


async def test_features_patch_validation_and_reset():
    async with running_server(make_settings()) as srv, aiohttp.ClientSession() as http:
        features = await get_json(http, srv.url + "/api/features")
        assert features["effective"]["debug_mode"] is False and features["overrides"] == {}
        for body in ({"debug_mode": "yes"}, {"warp": True}, [], {}, "x"):
            async with http.patch(srv.url + "/api/features", json=body) as response:
                assert response.status == 400
                assert (await response.json())["error"]["code"] == "bad_request"
        async with http.patch(srv.url + "/api/features", data=b"{not json") as response:
            assert response.status == 400
        async with http.patch(srv.url + "/api/features", json={"debug_mode": True}) as response:
            body = await response.json()
            assert body["overrides"] == {"debug_mode": True}
        async with http.patch(srv.url + "/api/features", json={"debug_mode": None}) as response:
            assert (await response.json())["overrides"] == {}


async def test_config_is_redacted():
    settings = make_settings({"DATABASE_PASSWORD": "pw-123", "DASHBOARD_API_KEY": "key-456"})
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        async with http.get(srv.url + "/api/config") as response:
            text = await response.text()
        assert "pw-123" not in text and "key-456" not in text
        assert (await get_json(http, srv.url + "/api/config"))["backends"]["database"]["password"] == "<redacted>"


async def test_gzip_above_the_minimum_only():
    async with running_server(make_settings({}, FAST)) as srv, aiohttp.ClientSession(auto_decompress=False) as http:
        await asyncio.wait_for(first_sample(srv), 10)
        headers = {"Accept-Encoding": "gzip"}
        async with http.get(srv.url + "/api/config", headers=headers) as response:
            assert response.headers.get("Content-Encoding") == "gzip"
        async with http.get(srv.url + "/api/alerts", headers=headers) as response:
            assert "Content-Encoding" not in response.headers  # 13 bytes: under the minimum


async def test_metrics_parse_with_prometheus_parser():
    async with running_server(make_settings({}, FAST)) as srv, aiohttp.ClientSession() as http:
        await asyncio.wait_for(first_sample(srv), 10)
        async with http.get(srv.url + "/metrics") as response:
            assert response.status == 200 and response.content_type == "text/plain"
            text = await response.text()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        for name in ("aura_clients_connected", "aura_envelopes_published", "aura_emitter_lag_seconds",
                     "aura_host_cpu_percent", "aura_host_memory_percent", "aura_host_disk_percent",
                     "aura_publish_seconds", "aura_mailbox_pending", "aura_mailbox_dropped"):
            assert name in families, name
        (p99,) = [s for s in families["aura_publish_seconds"].samples if s.name == "aura_publish_seconds"]
        assert p99.labels == {"quantile": "0.99"} and 0 < p99.value < 60
        assert {s.labels["mailbox"] for s in families["aura_mailbox_pending"].samples} >= {"audit of flags"}
        published = {s.labels["stream"]: s.value for s in families["aura_envelopes_published"].samples
                     if s.name.endswith("_total")}
        assert published["system"] >= 1
        namespaces = {s.labels["namespace"] for s in families["aura_clients_connected"].samples}
        assert namespaces == {"/omni_monitor", "/governance", "/ai_system", "/arena", "/chat"}


async def test_a_flag_whose_configuration_switch_is_off_is_refused_409_naming_it():
    """PATCH gpu_monitoring/temperature_monitoring on while ENABLE_* is off: the stream cannot
    run, so the answer is 409 naming the switch and `effective` stays false."""
    async with running_server(make_settings({}, FAST)) as srv, aiohttp.ClientSession() as http:
        for flag, switch, variable in (("gpu_monitoring", "monitoring.gpu.enabled", "ENABLE_GPU_MONITORING"),
                                       ("temperature_monitoring", "monitoring.temperature.enabled",
                                        "ENABLE_TEMPERATURE_MONITORING")):
            async with http.patch(srv.url + "/api/features", json={flag: True}) as response:
                body = await response.json()
                assert response.status == 409, body
                assert body["error"]["code"] == "switched_off_in_configuration"
                assert switch in body["error"]["message"] and variable in body["error"]["message"]
            features = await get_json(http, srv.url + "/api/features")
            assert features["effective"][flag] is False and flag not in features["overrides"]
        # Off is always accepted; a flag without a blocking switch still flips.
        async with http.patch(srv.url + "/api/features", json={"gpu_monitoring": False}) as response:
            assert response.status == 200


async def test_effective_never_claims_a_stream_that_cannot_run():
    # The flag is on, but the switch is off (and DATABASE_HOST is empty): effective says false.
    settings = make_settings({"FEATURE_GPU_MONITORING": "true"}, FAST)
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        features = await get_json(http, srv.url + "/api/features")
        assert features["configured"]["gpu_monitoring"] is True
        assert features["effective"]["gpu_monitoring"] is False
        assert features["effective"]["database_monitoring"] is False
        assert features["blocked"]["gpu_monitoring"] == ["monitoring.gpu.enabled"]
        assert features["effective"]["system_monitoring"] is True


async def test_with_the_switch_on_the_flag_starts_the_stream():
    settings = make_settings({"ENABLE_TEMPERATURE_MONITORING": "true"}, FAST)
    async with running_server(settings) as srv, aiohttp.ClientSession() as http:
        async with http.patch(srv.url + "/api/features", json={"temperature_monitoring": True}) as response:
            body = await response.json()
            assert response.status == 200 and body["effective"]["temperature_monitoring"] is True
        assert "temperature" in srv.app[EMITTERS].running()
