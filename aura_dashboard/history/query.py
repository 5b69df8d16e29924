"""Reading a range of history: the tier that fits, merged to at most `max_points` steps, and
answered as columns.

The live replay buffer answers the last minutes at full resolution; past it, the fine tier
(10 s buckets, a day) and then the coarse one (5 min, 30 days). A tier's newest buckets are
still open in the aggregator, so the live buffer fills the steps after the last written
bucket of each series. Where a writer started (a restart) and where the data stops for more
than two steps, the columns hold a row of nulls: a chart draws a gap there, never a line.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..contract import StreamContract
from ..errors import BadRequest, DashboardError
from .series import SeriesField, concrete_name, series_fields
from .store import HistoryStore, ReadRequest
from .tiers import TierSpec

Envelope = dict[str, Any]
MAX_SPAN_S = 10 * 366 * 86400.0


@dataclass
class _Bin:
    min: float
    sum: float
    max: float
    count: int

    def merge(self, lo: float, total: float, hi: float, count: int) -> None:
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        self.sum += total
        self.count += count


class HistoryReader:
    """Answers `GET /api/history/{stream}` in its range form.

    :param contracts: the streams, by name.
    :param store: the tiers (None when `history.enabled` is off: the live buffer only).
    :param tiers: the fine tier, then the coarse one.
    :param max_points: the most steps an answer holds.
    :param live: the live replay buffer of a stream (oldest first).
    :param own_source: this instance's name, the default `source` of a per-host stream.
    :param interval_s: a stream's sampling interval (None: when something happens).
    :param clock: wall time.
    """

    def __init__(self, contracts: dict[str, StreamContract], store: HistoryStore | None, tiers: list[TierSpec], *,
                 max_points: int, live: Callable[[str], Awaitable[list[Envelope]]], own_source: str,
                 interval_s: Callable[[str], float | None] = lambda stream: None,
                 clock: Callable[[], float] = time.time):
        self.contracts = contracts
        self.store = store
        self.tiers = tiers
        self.max_points = max_points
        self._live = live
        self.own_source = own_source
        self._interval_s = interval_s
        self._clock = clock
        self._fields = {name: series_fields(c) for name, c in contracts.items()}

    def now(self) -> float:
        return self._clock()

    def fields_of(self, stream: str, wanted: list[str] | None) -> list[SeriesField]:
        """The series fields asked for (all when None); a 400 for a stream or field that has none."""
        if stream not in self.contracts:
            raise BadRequest(f"no stream named {stream!r}", code="unknown_stream")
        fields = self._fields[stream]
        if not fields:
            raise BadRequest(f"the {stream} stream has no series fields", code="no_series")
        if wanted is None:
            return fields
        known = {f.path: f for f in fields}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise BadRequest(f"{stream} has no series field {', '.join(map(repr, unknown))}; its series fields: "
                             + ", ".join(known), code="unknown_field")
        return [known[name] for name in dict.fromkeys(wanted)]

    async def read(self, stream: str, start: float, end: float, *, fields: list[str] | None = None,
                   source: str | None = None, step: float | None = None) -> dict[str, Any]:
        chosen = self.fields_of(stream, fields)
        if not (math.isfinite(start) and math.isfinite(end)) or start >= end:
            raise BadRequest("from must be before to", code="bad_range")
        if end - start > MAX_SPAN_S:
            raise BadRequest("the range may span at most ten years", code="bad_range")
        if step is not None and (not math.isfinite(step) or step <= 0 or step > end - start):
            raise BadRequest("step must be a positive number of seconds, at most the range", code="bad_range")
        contract = self.contracts[stream]
        if source is None and not contract.shared:
            source = self.own_source
        live = [e for e in await self._live(stream) if source is None or e.get("source") == source]
        min_step = (end - start) / self.max_points
        wanted = max(step or 0.0, min_step)
        fine = self.tiers[0]
        now = self._clock()
        if self.store is None or (live and start >= live[0]["ts"] and wanted < fine.resolution_s):
            tier, step_s = "live", wanted
            bins = self._live_bins(chosen, live, start, end, step_s, raw=step is None)
            restarts: list[float] = []
        else:
            spec = fine if start >= now - fine.retention_s else self.tiers[-1]
            tier = spec.name
            step_s = math.ceil(max(wanted, spec.resolution_s) / spec.resolution_s) * spec.resolution_s
            first = int(start // step_s) * step_s
            rows = await self.store.read(ReadRequest(spec.name, stream, source, tuple(f.path for f in chosen),
                                                     first, math.ceil(end), step_s))
            bins: dict[tuple[str, tuple[str, ...]], dict[float, _Bin]] = {}
            written_until: dict[tuple[str, tuple[str, ...]], int] = {}
            for r in rows:
                key = (r.field, r.keys)
                bins.setdefault(key, {})[r.t] = _Bin(r.min, r.avg * r.count, r.max, r.count)
                written_until[key] = max(written_until.get(key, 0), r.last_bucket + spec.resolution_s)
            self._add_live(bins, chosen, live, start, end, step_s, written_until)
            restarts = await self.store.restarts(source, start, end)
        return self._answer(stream, source, start, end, tier, step_s, chosen, bins, restarts,
                            sources=sorted({e["source"] for e in live}
                                           | set(await self.store.sources(stream) if self.store else ())))

    # -- binning ----------------------------------------------------------------------------
    def _live_bins(self, fields: list[SeriesField], live: list[Envelope], start: float, end: float,
                   step: float, *, raw: bool) -> dict:
        inside = [e for e in live if start <= e["ts"] < end]
        raw = raw and len(inside) <= self.max_points
        bins: dict[tuple[str, tuple[str, ...]], dict[float, _Bin]] = {}
        for envelope in inside:
            t = envelope["ts"] if raw else math.floor(envelope["ts"] / step) * step
            for field in fields:
                for keys, value in field.values(envelope["data"]):
                    per = bins.setdefault((field.path, keys), {})
                    b = per.get(t)
                    if b is None:
                        per[t] = _Bin(value, value, value, 1)
                    else:
                        b.merge(value, value, value, 1)
        return bins

    def _add_live(self, bins: dict, fields: list[SeriesField], live: list[Envelope], start: float, end: float,
                  step: int, written_until: dict) -> None:
        """Fill the steps after each series' last written bucket from the live buffer."""
        horizon = min(written_until.values(), default=start)
        for envelope in live:
            ts = envelope["ts"]
            if ts < horizon or ts < start or ts >= end:
                continue
            t = int(ts // step) * step
            for field in fields:
                for keys, value in field.values(envelope["data"]):
                    key = (field.path, keys)
                    if ts < written_until.get(key, start):
                        continue
                    per = bins.setdefault(key, {})
                    b = per.get(t)
                    if b is None:
                        per[t] = _Bin(value, value, value, 1)
                    else:
                        b.merge(value, value, value, 1)

    # -- the answer: columns --------------------------------------------------------------------
    def _answer(self, stream: str, source: str | None, start: float, end: float, tier: str, step: float,
                fields: list[SeriesField], bins: dict, restarts: list[float], *, sources: list[str]) -> dict[str, Any]:
        times = sorted({t for per in bins.values() for t in per})
        interval = self._interval_s(stream) or 0.0
        apart = 2 * max(step, interval)
        marks = set(restarts)
        for a, b in zip(times, times[1:]):
            if b - a > apart:
                marks.add((a + b) / 2)
        index = {t: i for i, t in enumerate(times)}
        rows = sorted([(t, True) for t in times] + [(t, False) for t in marks if t not in index])
        order = {f.path: i for i, f in enumerate(fields)}
        columns: dict[str, Any] = {}
        for (path, keys) in sorted(bins, key=lambda k: (order[k[0]], _natural(k[1]))):
            per = bins[(path, keys)]
            lo, avg, hi = [], [], []
            for t, real in rows:
                b = per.get(t) if real else None
                lo.append(b.min if b else None)
                avg.append(b.sum / b.count if b else None)
                hi.append(b.max if b else None)
            columns[concrete_name(path, keys)] = {"field": path, "keys": list(keys), "min": lo, "avg": avg, "max": hi}
        return {"stream": stream, "source": source, "from": start, "to": end, "tier": tier, "step": step,
                "t": [t for t, _ in rows], "fields": columns, "restarts": sorted(restarts), "sources": sources}


def _natural(keys: tuple[str, ...]) -> tuple:
    return tuple((0, int(k), "") if k.isdigit() else (1, 0, k) for k in keys)


class HistoryUnavailable(DashboardError):
    status, code = 503, "history_unavailable"
