"""Downsampling: every series sample lands in one bucket of each tier, which keeps its min,
average, max, last value and count; a bucket is closed (handed to the writer) once its time
is over and a grace period for late samples has passed.

The aggregator is plain in-memory work driven by an injected clock, so tests feed it
synthetic samples and check every bucket exactly. It never touches a store: `close()` returns
the closed buckets as rows, and the writer writes them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..contract import StreamContract
from .series import SeriesField, series_fields

log = logging.getLogger(__name__)

GRACE_S = 30.0            # a sample may reach the aggregator this late (a slow sample's ts is its start)
MAX_SERIES = 4096         # distinct (stream, source, field, keys) kept at once; more are dropped and counted

SeriesKey = tuple[str, str, str, tuple[str, ...]]  # stream, source, field, keys


@dataclass(frozen=True)
class TierSpec:
    """A tier: buckets of `resolution_s` seconds, kept `retention_s` seconds. `family` is the
    configured tier it belongs to (a rollup of the fine tier is of the `fine` family)."""

    name: str
    resolution_s: int
    retention_s: float
    family: str = ""

    @property
    def shown_as(self) -> str:
        return self.family or self.name

    def start_of(self, ts: float) -> int:
        return int(ts // self.resolution_s) * self.resolution_s


@dataclass(frozen=True)
class BucketRow:
    """One closed bucket of one series."""

    tier: str
    stream: str
    source: str
    field: str
    keys: tuple[str, ...]
    start: int
    min: float
    avg: float
    max: float
    last: float
    count: int


class _Bucket:
    __slots__ = ("min", "max", "sum", "count", "last", "last_ts")

    def __init__(self, value: float, ts: float):
        self.min = self.max = self.sum = self.last = value
        self.count = 1
        self.last_ts = ts

    def add(self, value: float, ts: float) -> None:
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.sum += value
        self.count += 1
        if ts >= self.last_ts:
            self.last, self.last_ts = value, ts


class Aggregator:
    """Open buckets of every series of every tier.

    :param contracts: the streams; only their series fields are kept.
    :param tiers: the tiers to fill (each sample goes into every tier).
    :param grace_s: how long after its end a bucket still takes late samples.
    :param max_series: the most series kept; samples of further ones are dropped and counted.
    :param clock: wall time, for `close()`.
    """

    def __init__(self, contracts: Iterable[StreamContract], tiers: Iterable[TierSpec], *,
                 grace_s: float = GRACE_S, max_series: int = MAX_SERIES, clock: Callable[[], float] = time.time):
        self.fields: dict[str, list[SeriesField]] = {}
        for contract in contracts:
            fields = series_fields(contract)
            if fields:
                self.fields[contract.name] = fields
        self.tiers = list(tiers)
        self.grace_s = grace_s
        self.max_series = max_series
        self._clock = clock
        self._open: dict[str, dict[tuple[SeriesKey, int], _Bucket]] = {t.name: {} for t in self.tiers}
        # Buckets starting before this were closed: a sample for one of them is too late.
        self._closed_before: dict[str, int] = {t.name: 0 for t in self.tiers}
        self._series: set[SeriesKey] = set()
        self.samples = 0
        self.late = 0
        self.dropped_series = 0

    def add(self, envelope: dict[str, Any]) -> None:
        """Put every series value of an envelope in its bucket of each tier (a Mailbox listener)."""
        fields = self.fields.get(envelope.get("stream"))
        if not fields:
            return
        stream, source, ts, data = envelope["stream"], envelope["source"], float(envelope["ts"]), envelope["data"]
        for field in fields:
            for keys, value in field.values(data):
                key = (stream, source, field.path, keys)
                if key not in self._series:
                    if len(self._series) >= self.max_series:
                        if not self.dropped_series:
                            log.warning("history: at most %d series are kept; samples of further "
                                        "series are dropped (first: %s %s)", self.max_series, stream, field.path)
                        self.dropped_series += 1
                        continue
                    self._series.add(key)
                self.samples += 1
                for tier in self.tiers:
                    start = tier.start_of(ts)
                    if start < self._closed_before[tier.name]:
                        self.late += 1
                        continue
                    buckets = self._open[tier.name]
                    bucket = buckets.get((key, start))
                    if bucket is None:
                        buckets[(key, start)] = _Bucket(value, ts)
                    else:
                        bucket.add(value, ts)

    def close(self, now: float | None = None, *, everything: bool = False) -> list[BucketRow]:
        """The buckets whose end plus the grace period is past `now` (all of them with
        `everything`, at shutdown), removed from the open set, oldest first."""
        now = self._clock() if now is None else now
        rows: list[BucketRow] = []
        for tier in self.tiers:
            buckets = self._open[tier.name]
            # A bucket [start, start + resolution) is over once start + resolution + grace <= now.
            boundary = int((now - self.grace_s) // tier.resolution_s) * tier.resolution_s
            if everything:
                boundary = max(boundary, tier.start_of(now) + tier.resolution_s)
            done = [item for item in buckets if item[1] < boundary]
            for item in sorted(done, key=lambda item: item[1]):
                (stream, source, field, keys), start = item
                b = buckets.pop(item)
                rows.append(BucketRow(tier.name, stream, source, field, keys, start,
                                      b.min, b.sum / b.count, b.max, b.last, b.count))
            self._closed_before[tier.name] = max(self._closed_before[tier.name], boundary)
        return rows

    def open_buckets(self) -> int:
        return sum(len(b) for b in self._open.values())
