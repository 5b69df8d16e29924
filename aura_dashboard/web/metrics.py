"""`GET /metrics`: Prometheus exposition through prometheus-client, one registry per app.

Collected at scrape time from what the app already holds: the latest host metrics (read from
the hub's store just before the registry is collected, since collection cannot await),
clients per namespace, envelopes published per stream, each emitter's lag, how long a publish
takes, and each mailbox's backlog and drops.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .keys import EMITTERS, HUB, MAILBOXES, NAMESPACES

PROM_REGISTRY = web.AppKey("prom_registry", CollectorRegistry)


class DashboardCollector(Collector):
    def __init__(self, app: web.Application):
        self.app = app
        self.latest: dict[str, dict | None] = {}  # read from the store before each collection

    async def refresh(self) -> None:
        hub = self.app[HUB]
        self.latest = {stream: await hub.latest(stream) for stream in ("system", "gpu")}

    def collect(self) -> Iterator[Metric]:
        hub = self.app[HUB]
        clients = GaugeMetricFamily("aura_clients_connected", "Socket.IO clients connected",
                                    labels=["namespace"])
        for handler in self.app[NAMESPACES].values():
            clients.add_metric([handler.namespace], handler.clients())
        yield clients
        published = CounterMetricFamily("aura_envelopes_published", "Envelopes published",
                                        labels=["stream"])
        for stream, count in hub.published().items():
            published.add_metric([stream], count)
        yield published
        lag = GaugeMetricFamily("aura_emitter_lag_seconds", "How late the last tick of an emitter started",
                                labels=["stream"])
        duration = GaugeMetricFamily("aura_sample_duration_seconds", "Duration of the last sample",
                                     labels=["stream"])
        failures = CounterMetricFamily("aura_sample_failures", "Samples that failed or timed out",
                                       labels=["stream"])
        for stream, emitter in self.app[EMITTERS].emitters.items():
            lag.add_metric([stream], emitter.stats.last_lag_s)
            duration.add_metric([stream], emitter.stats.last_duration_s)
            failures.add_metric([stream], emitter.stats.failures + emitter.stats.timeouts)
        yield from (lag, duration, failures)
        p99 = hub.publish_p99_s()
        publish = GaugeMetricFamily("aura_publish_seconds", "Time StreamHub.publish took, over the last publishes",
                                    labels=["quantile"])
        if p99 is not None:
            publish.add_metric(["0.99"], p99)
        yield publish
        pending = GaugeMetricFamily("aura_mailbox_pending", "Values waiting for a slow listener", labels=["mailbox"])
        dropped = CounterMetricFamily("aura_mailbox_dropped", "Values a full mailbox dropped", labels=["mailbox"])
        for mailbox in self.app[MAILBOXES]:
            pending.add_metric([mailbox.name], mailbox.pending())
            dropped.add_metric([mailbox.name], mailbox.dropped)
        yield from (pending, dropped)
        yield from _host_metrics(self.latest.get("system"))
        yield from _gpu_metrics(self.latest.get("gpu"))


def _host_metrics(envelope) -> Iterator[Metric]:
    if envelope is None:
        return
    data = envelope["data"]
    if data.get("cpu"):
        yield GaugeMetricFamily("aura_host_cpu_percent", "Host CPU utilisation", value=data["cpu"]["percent"])
    if data.get("memory"):
        yield GaugeMetricFamily("aura_host_memory_percent", "Host memory in use",
                                value=data["memory"]["percent"])
        yield GaugeMetricFamily("aura_host_memory_used_bytes", "Host memory used", value=data["memory"]["used"])
    if data.get("disk"):
        disk = GaugeMetricFamily("aura_host_disk_percent", "Disk usage", labels=["path"])
        for path, usage in data["disk"].items():
            disk.add_metric([path], usage["percent"])
        yield disk
    if data.get("network"):
        sent = GaugeMetricFamily("aura_host_network_sent_bytes_per_second", "Network send rate",
                                 labels=["interface"])
        recv = GaugeMetricFamily("aura_host_network_received_bytes_per_second", "Network receive rate",
                                 labels=["interface"])
        for name, rates in data["network"].items():
            sent.add_metric([name], rates["bytes_sent_per_s"])
            recv.add_metric([name], rates["bytes_recv_per_s"])
        yield from (sent, recv)


def _gpu_metrics(envelope) -> Iterator[Metric]:
    if envelope is None or not isinstance(envelope["data"], list):
        return
    util = GaugeMetricFamily("aura_gpu_utilization_percent", "GPU utilisation", labels=["gpu"])
    memory = GaugeMetricFamily("aura_gpu_memory_percent", "GPU memory in use", labels=["gpu"])
    for gpu in envelope["data"]:
        util.add_metric([str(gpu["index"])], gpu["utilization_percent"])
        memory.add_metric([str(gpu["index"])], gpu["memory_percent"])
    yield from (util, memory)


COLLECTOR = web.AppKey("prom_collector", DashboardCollector)


def setup_metrics(app: web.Application) -> None:
    """One registry and collector per app (never the process-wide default registry)."""
    registry = CollectorRegistry(auto_describe=False)
    app[COLLECTOR] = DashboardCollector(app)
    registry.register(app[COLLECTOR])
    app[PROM_REGISTRY] = registry


async def metrics(request: web.Request) -> web.Response:
    await request.app[COLLECTOR].refresh()
    # No suspension from here: the collection reads what refresh() just read.
    body = generate_latest(request.app[PROM_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
