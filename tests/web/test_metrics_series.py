"""/metrics exports every field the stream contract marks as a series, with its labels, in
Prometheus' base units, bounded; `promtool check metrics` finds nothing to say."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from aura_dashboard.app import STREAMS
from aura_dashboard.web.keys import HUB
from aura_dashboard.web.metrics import series_metrics
from tests.conftest import make_settings, need_service, running_server
from tests.test_contract import FAST, backends_and_database

# Series whose data this machine or this test does not produce (no GPU, sensors, cgroup limit,
# per-core CPU; swap may be absent; chat latencies before a first message).
ABSENT_HERE = {"gpu", "temperature"}
MAYBE = ("aura_status_latency_", "aura_system_cgroup_", "aura_system_cpu_per_cpu", "aura_system_memory_swap", "aura_system_disk_")


def promtool_check(text: str) -> str:
    """promtool's complaints about an exposition ('' when clean)."""
    promtool = shutil.which("promtool")
    need_service(promtool is not None, "promtool is not installed (Debian package prometheus)")
    done = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    return (done.stdout + done.stderr).decode().strip() if done.returncode else ""


async def test_every_series_field_is_exported_with_labels_and_promtool_is_clean():
    async with backends_and_database() as services, aiohttp.ClientSession() as http:
        env = {**services, "DASHBOARD_INSTANCE": "host-m", "SECURITY_API_KEY_ENABLED": "true",
               "DASHBOARD_API_KEY": "k"}
        extra = {**FAST, "monitoring": {"thresholds": {"cpu_percent": 0, "consecutive_samples": 1}}}
        async with running_server(make_settings(env, extra)) as srv:
            bearer = {"Authorization": "Bearer k"}
            async with http.post(srv.url + "/api/ingest/inference", headers=bearer,
                                 json={"model": "llama", "latency_ms": 250, "ok": True, "tokens": 3}) as r:
                assert r.status == 202
            hub = srv.app[HUB]

            async def sampled():
                while not all(hub.published()[c.name] for c in STREAMS if c.series() and c.name
                              not in ABSENT_HERE) or not hub.published()["alerts"]:
                    await asyncio.sleep(0.1)
            await asyncio.wait_for(sampled(), 30)
            await asyncio.sleep(0.5)
            async with http.get(srv.url + "/metrics", headers=bearer) as response:
                assert response.status == 200
                text = await response.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    expected = series_metrics(STREAMS)
    assert len(expected) == sum(len(c.series()) for c in STREAMS)
    missing, empty = [], []
    for metric in expected:
        family = families.get(metric.name)
        if family is None:
            missing.append(metric.name)
        elif not family.samples and metric.stream not in ABSENT_HERE and not metric.name.startswith(MAYBE):
            empty.append(metric.name)
        elif family.samples:
            assert set(family.samples[0].labels) == set(metric.labels), metric.name
    assert not missing, f"series fields not in /metrics: {missing}"
    assert not empty, f"series fields exported without a sample: {empty}"
    (latency,) = families["aura_database_latency_seconds"].samples
    assert latency.labels == {"source": "host-m"} and 0 < latency.value < 5  # milliseconds made seconds
    backends = {s.labels["backend"] for s in families["aura_backends_latency_seconds"].samples}
    assert backends == {"mcp", "ml", "governance"}
    (p50,) = families["aura_inference_models_p50_seconds"].samples
    assert p50.labels == {"source": "host-m", "model": "llama"} and p50.value == 0.25
    assert {s.labels["interface"] for s in families["aura_system_network_bytes_recv_per_second"].samples}
    assert any(s.value >= 1 for s in families["aura_alerts_firing"].samples)
    assert families["aura_status_queue_depth"].samples
    # Series names today's dashboards know are kept.
    for name in ("aura_host_cpu_percent", "aura_host_memory_percent", "aura_host_disk_percent"):
        assert name in families
    assert promtool_check(text) == ""


def test_promtool_catches_a_bad_name():
    """The check above can fail: promtool flags an abbreviated unit."""
    assert "unit" in promtool_check("# HELP aura_x_ms bad\n# TYPE aura_x_ms gauge\naura_x_ms 1\n")


def test_names_are_unique_and_in_base_units():
    names = [m.name for m in series_metrics(STREAMS)]
    assert len(names) == len(set(names))
    for name in names:
        assert not name.endswith(("_ms", "_s", "_count", "_total")) and "_per_s_" not in name + "_", name
