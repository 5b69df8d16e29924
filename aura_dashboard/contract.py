"""The contract of a stream, declared once beside the code that produces it.

Each producer module (a collector, a panel) declares its stream as a `StreamContract`: the
namespace whose clients may join it, whether one instance of a cluster samples it for all
(`shared`) or every host samples its own, the configuration key of its interval, the
switches that turn it on, the pydantic model of its payload and its fields with unit and
meaning (in the spirit of Glances' `fields_description`). The composition root lists them
in one table; the hub, the namespaces, `GET /api/streams` (and so the page), `/metrics`, the
history tiers, docs/protocol.md and the tests all read that table, never a copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter

from .config import RuntimeOverrides, Settings

# Units a field may declare; the page formats by unit, never by guessing from a name.
UNITS: dict[str, str] = {
    "percent": "percent, 0 to 100",
    "ratio": "a fraction, 0 to 1",
    "bytes": "bytes",
    "bytes/s": "bytes per second",
    "1/s": "events per second",
    "ms": "milliseconds",
    "s": "seconds",
    "celsius": "degrees Celsius",
    "watts": "watts",
    "cores": "CPU cores",
    "id": "an identifier (an index, a name, a port)",
    "count": "a count",
    "unix_time": "UNIX time in seconds",
    "status": "a state word (up, down, ...)",
    "text": "free text",
    "flag": "true or false",
    "object": "a structured value (shown as JSON)",
}
NUMERIC_UNITS = frozenset({"percent", "ratio", "bytes", "bytes/s", "1/s", "ms", "s", "celsius", "watts",
                           "cores", "count", "unix_time"})


class PayloadModel(BaseModel):
    """Base of every stream payload model: unknown fields are refused, so a producer that
    drifts from its contract fails the suite's envelope check instead of the page."""

    model_config = ConfigDict(extra="forbid")


class Unavailable(PayloadModel):
    """What a stream whose source is absent (no GPU, no sensors) sends instead of its data: why."""

    available: Literal[False]
    reason: str


@dataclass(frozen=True)
class FieldSpec:
    """One field of a stream's data.

    `path` is dotted from the data's root; `*` stands for every key of a mapping (a disk path,
    an interface, a backend name) and `[]` for every item of a list (a GPU). `series` marks a
    number worth a time series: charted, kept in the history tiers and exported to /metrics.
    `labels` names what each wildcard of a series stands for, in order (a disk `path`, an
    `interface`, a `gpu`): the label names of its /metrics series.
    """

    path: str
    unit: str
    meaning: str
    series: bool = False
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"{self.path}: unknown unit {self.unit!r}")
        if self.series and self.unit not in NUMERIC_UNITS:
            raise ValueError(f"{self.path}: a series must be numeric, not {self.unit!r}")
        wildcards = self.path.count("*") + self.path.count("[]")
        if self.series and len(self.labels) != wildcards:
            raise ValueError(f"{self.path}: a series names one label per wildcard ({wildcards}), "
                             f"not {len(self.labels)}")

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "unit": self.unit, "meaning": self.meaning, "series": self.series,
                "labels": list(self.labels)}


def setting(settings: Settings, key: str) -> Any:
    """The value of a dotted configuration key, e.g. `updates.intervals.system_metrics`."""
    value: Any = settings
    for part in key.split("."):
        value = getattr(value, part)
    return value


@dataclass(frozen=True)
class StreamContract:
    """A stream: who may join it, when it runs, at what interval, and what its data holds.

    :param name: the stream's name (the event name, the room `stream:<name>`).
    :param namespace: the Socket.IO namespace whose clients may subscribe to it.
    :param summary: one sentence for the docs and the page.
    :param payload: the type every envelope's `data` validates against (a pydantic model, or a
        union or list of them).
    :param fields: the fields, with unit and meaning.
    :param switches: configuration keys that must all be true (non-empty) for the stream to run.
    :param feature: the `features.*` flag that must be on too (None: no flag).
    :param interval: the configuration key(s) of its interval in milliseconds (several: the
        shortest); None for a stream published when something happens.
    :param shared: sampled by one instance of a cluster (the lease holder) for every instance,
        instead of by every host for itself.
    """

    name: str
    namespace: str
    summary: str = ""
    payload: Any = Any
    fields: tuple[FieldSpec, ...] = ()
    switches: tuple[str, ...] = ()
    feature: str | None = None
    interval: tuple[str, ...] = ()
    shared: bool = False

    @cached_property
    def _adapter(self) -> TypeAdapter:
        return TypeAdapter(self.payload)

    def validate(self, data: Any) -> Any:
        """`data` parsed by the payload type; raises pydantic's ValidationError when it does not fit."""
        return self._adapter.validate_python(data)

    def is_on(self, settings: Settings, overrides: RuntimeOverrides) -> bool:
        return (all(setting(settings, key) for key in self.switches)
                and (self.feature is None or overrides.is_on(self.feature)))

    def interval_ms(self, settings: Settings) -> int | None:
        return min(setting(settings, key) for key in self.interval) if self.interval else None

    def series(self) -> list[FieldSpec]:
        return [f for f in self.fields if f.series]

    def describe(self, settings: Settings, overrides: RuntimeOverrides) -> dict[str, Any]:
        """The contract as `GET /api/streams` serves it (with this server's values)."""
        return {"name": self.name, "namespace": self.namespace, "summary": self.summary,
                "shared": self.shared, "feature": self.feature, "switches": list(self.switches),
                "interval_keys": list(self.interval), "interval_ms": self.interval_ms(settings),
                "on": self.is_on(settings, overrides),
                "fields": [f.describe() for f in self.fields]}


@dataclass(frozen=True)
class PanelContract:
    """A panel: its namespace, its feature flag and its `panels.*` section. Its streams are
    the streams whose contract names its namespace."""

    name: str
    namespace: str
    feature: str
    config_section: str
    title: str

    def is_on(self, settings: Settings, overrides: RuntimeOverrides) -> bool:
        return getattr(settings.panels, self.config_section).enabled and overrides.is_on(self.feature)

    def describe(self, settings: Settings, overrides: RuntimeOverrides,
                 streams: list[StreamContract]) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace, "title": self.title,
                "feature": self.feature, "config_section": self.config_section,
                "on": self.is_on(settings, overrides),
                "streams": [s.name for s in streams if s.namespace == self.namespace]}


def blocking_switches(flag: str, settings: Settings, streams: list[StreamContract],
                      panels: list[PanelContract]) -> list[str]:
    """The configuration switches that are off and keep everything `flag` governs from running
    (empty when the flag governs nothing, or something it governs can run when it is on).

    A feature flag adds to the configuration, it cannot overrule it: `features.gpu_monitoring`
    on while `monitoring.gpu.enabled` is off would start nothing, so `effective` must not claim it.
    """
    governed = [(s.switches, None) for s in streams if s.feature == flag]
    governed += [((), f"panels.{p.config_section}.enabled") for p in panels if p.feature == flag]
    if not governed:
        return []
    blocked: list[str] = []
    for switches, panel_switch in governed:
        keys = [*switches, *([panel_switch] if panel_switch else [])]
        off = [key for key in keys if not setting(settings, key)]
        if not off:
            return []
        blocked += [key for key in off if key not in blocked]
    return blocked


def describe_features(overrides: RuntimeOverrides, settings: Settings, streams: list[StreamContract],
                      panels: list[PanelContract]) -> dict[str, Any]:
    """The flags as GET /api/features and the `features` event give them. `effective`: what
    runs (a flag on whose switches are off reads false, its switches under `blocked`);
    `configured` and `overrides`: what was asked."""
    blocked = {}
    for flag in overrides.flags():
        switches = blocking_switches(flag, settings, streams, panels)
        if switches:
            blocked[flag] = switches
    effective = {flag: on and flag not in blocked for flag, on in overrides.effective().items()}
    return {"effective": effective, "configured": overrides.configured(),
            "overrides": overrides.overridden(), "blocked": blocked}
