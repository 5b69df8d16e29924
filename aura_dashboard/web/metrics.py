"""`GET /metrics`: Prometheus exposition through prometheus-client, one registry per app.

Collected at scrape time from what the app already holds: every field the stream contract
marks as a series, from the latest envelope of each stream that is on (read from the hub's
store just before the registry is collected, since collection cannot await), with `source`
and the field's wildcard labels (`path`, `interface`, `gpu`, `backend`, `model`, ...); the
alerts firing; clients per namespace, envelopes published per stream, each emitter's lag,
how long a publish takes, and each mailbox's backlog and drops.

A series field's metric name is `aura_<stream>_<path>` in Prometheus' base units (`ms`
becomes `_seconds`, divided by 1000; `_per_s` becomes `_per_second`); docs/protocol.md lists
each one. Each family holds at most `MAX_LABEL_SETS` series and label values are cut at
`MAX_LABEL_LENGTH` characters, so a producer cannot blow up a scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..contract import StreamContract
from ..history import series_fields
from ..history.series import SeriesField
from .keys import ALERTS, EMITTERS, HUB, MAILBOXES, NAMESPACES

PROM_REGISTRY = web.AppKey("prom_registry", CollectorRegistry)
MAX_LABEL_SETS = 512
MAX_LABEL_LENGTH = 128
_RESERVED_SUFFIXES = ("_count", "_sum", "_bucket", "_total", "_created", "_info")


def _suffixed(base: str, unit: str) -> tuple[str, float]:
    """The name in base units, and the factor that converts a value to them."""
    def swap(old: str, new: str) -> str:
        return base[: -len(old)] + new if base.endswith(old) else f"{base}{new}" if new not in base else base
    if unit == "ms":
        return swap("_ms", "_seconds"), 0.001
    if unit == "s":
        return swap("_s", "_seconds"), 1.0
    if unit == "bytes/s":
        name = swap("_per_s", "_per_second")
        return (name if "bytes" in name else name.replace("_per_second", "_bytes_per_second")), 1.0
    if unit == "1/s":
        return swap("_per_s", "_per_second"), 1.0
    if unit == "celsius":
        return swap("_c", "_celsius"), 1.0
    if unit == "watts":
        return swap("_w", "_watts"), 1.0
    if unit == "unix_time":
        return swap("_ts", "_timestamp_seconds"), 1.0
    suffix = {"percent": "_percent", "ratio": "_ratio", "bytes": "_bytes", "cores": "_cores"}.get(unit)
    return (swap(suffix, suffix) if suffix else base), 1.0


@dataclass(frozen=True)
class SeriesMetric:
    """One series field of the contract as a Prometheus gauge."""

    stream: str
    field: SeriesField
    name: str
    scale: float

    @property
    def labels(self) -> list[str]:
        return ["source", *self.field.spec.labels]


def series_metric(contract: StreamContract, field: SeriesField) -> SeriesMetric:
    words = [t for t in field.tokens if t not in ("*", "[]")]
    name, scale = _suffixed("_".join([contract.name, *words]), field.spec.unit)
    if name.endswith(_RESERVED_SUFFIXES):  # kept for histograms, summaries and counters
        name += "_value"
    return SeriesMetric(contract.name, field, f"aura_{name}", scale)


def series_metrics(contracts: Iterable[StreamContract]) -> list[SeriesMetric]:
    return [series_metric(c, f) for c in contracts for f in series_fields(c)]


class DashboardCollector(Collector):
    def __init__(self, app: web.Application):
        self.app = app
        self.series = series_metrics(app[HUB].contracts())
        self.latest: dict[str, dict | None] = {}  # read from the store before each collection

    async def refresh(self) -> None:
        hub = self.app[HUB]
        streams = {m.stream for m in self.series} | {"system"}
        self.latest = {stream: await hub.latest(stream) if hub.is_on(stream) else None for stream in streams}

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
        # A summary (the p99 over the last publishes, count and sum since the start): promtool
        # accepts a `quantile` label on nothing else.
        publish = Metric("aura_publish_seconds", "Time StreamHub.publish took (p99 over the last publishes)",
                         "summary")
        p99 = hub.publish_p99_s()
        if p99 is not None:
            publish.add_sample("aura_publish_seconds", {"quantile": "0.99"}, p99)
        publish.add_sample("aura_publish_seconds_count", {}, hub.publish_count)
        publish.add_sample("aura_publish_seconds_sum", {}, hub.publish_seconds)
        yield publish
        pending = GaugeMetricFamily("aura_mailbox_pending", "Values waiting for a slow listener", labels=["mailbox"])
        dropped = CounterMetricFamily("aura_mailbox_dropped", "Values a full mailbox dropped", labels=["mailbox"])
        for mailbox in self.app[MAILBOXES]:
            pending.add_metric([mailbox.name], mailbox.pending())
            dropped.add_metric([mailbox.name], mailbox.dropped)
        yield from (pending, dropped)
        yield from _host_metrics(self.latest.get("system"))
        yield from self._series()
        yield from _alert_metrics(self.app[ALERTS].firing())

    def _series(self) -> Iterator[Metric]:
        for metric in self.series:
            envelope = self.latest.get(metric.stream)
            family = GaugeMetricFamily(metric.name, f"{metric.field.spec.meaning} ({metric.stream} "
                                       f"{metric.field.path}, {metric.field.spec.unit})", labels=metric.labels)
            if envelope is not None:
                source = str(envelope.get("source", ""))[:MAX_LABEL_LENGTH]
                for n, (keys, value) in enumerate(metric.field.values(envelope["data"])):
                    if n >= MAX_LABEL_SETS:
                        break
                    family.add_metric([source, *(k[:MAX_LABEL_LENGTH] for k in keys)], value * metric.scale)
            yield family


def _alert_metrics(firing: list[dict]) -> Iterator[Metric]:
    counts: dict[tuple[str, str], int] = {}
    for alert in firing:
        key = (str(alert.get("kind", ""))[:MAX_LABEL_LENGTH], str(alert.get("severity", ""))[:MAX_LABEL_LENGTH])
        counts[key] = counts.get(key, 0) + 1
    family = GaugeMetricFamily("aura_alerts_firing", "Alerts firing now, by kind and severity",
                               labels=["kind", "severity"])
    for (kind, severity), count in sorted(counts.items())[:MAX_LABEL_SETS]:
        family.add_metric([kind, severity], count)
    yield family


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
