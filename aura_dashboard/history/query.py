"""Reading a range of history: the tier that fits, merged to at most `max_points` steps, and
answered as columns.

The live replay buffer answers the last minutes at full resolution; past it, the fine tier
(10 s buckets, a day) and then the coarse one (5 min, 30 days). A tier's newest buckets are
still open in the aggregator, so the live buffer fills the steps after the last written
bucket of each series. Where a writer started (a restart) and where the data stops for more
than two steps, the columns hold a row of nulls: a chart draws a gap there, never a line.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..contract import StreamContract
from ..errors import BadRequest, DashboardError
from .series import SeriesField, concrete_name, series_fields
from .store import HistoryStore, ReadRequest, ReadSeries
from .tiers import TierSpec

Envelope = dict[str, Any]
MAX_SPAN_S = 10 * 366 * 86400.0
RETENTION_SLACK_S = 300.0


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
        wanted = max(step or 0.0, (end - start) / self.max_points)
        finest = self.tiers[0]
        now = self._clock()
        restarts: list[float] = []
        if self.store is None or (live and start >= live[0]["ts"] and wanted < finest.resolution_s):
            tier, step_s = "live", wanted
            series = self._live_series(chosen, live, start, end, step_s, raw=step is None)
        else:
            spec = self._tier_for(start, wanted, now)
            tier = spec.shown_as
            step_s = math.ceil(max(wanted, spec.resolution_s) / spec.resolution_s) * spec.resolution_s
            series = await self.store.read(ReadRequest(spec.name, stream, source, tuple(f.path for f in chosen),
                                                       int(start // step_s) * step_s, math.ceil(end), step_s,
                                                       spec.resolution_s))
            self._add_live(series, chosen, live, start, end, step_s, spec.resolution_s)
            restarts = await self.store.restarts(source, start, end)
        sources = {e["source"] for e in live} | set(await self.store.sources(stream) if self.store else ())
        return self._answer(stream, source, start, end, tier, step_s, chosen, series, restarts, sorted(sources))

    def _tier_for(self, start: float, wanted: float, now: float) -> TierSpec:
        """The family whose retention reaches back to `start` (a few minutes' slack: a client's
        "last 24 h" is a little older by the time it arrives); of its tiers, those giving the
        finest step (a whole number of their buckets, at least `wanted`), the one with the
        widest buckets: it reads the fewest rows for the same answer."""
        families: dict[str, list[TierSpec]] = {}
        for tier in self.tiers:
            families.setdefault(tier.shown_as, []).append(tier)
        ordered = sorted(families.values(), key=lambda ts: min(t.retention_s for t in ts))
        family = next((ts for ts in ordered if start >= now - min(t.retention_s for t in ts) - RETENTION_SLACK_S),
                      ordered[-1])

        def step_of(tier: TierSpec) -> int:
            return math.ceil(max(wanted, tier.resolution_s) / tier.resolution_s) * tier.resolution_s
        finest = min(step_of(t) for t in family)
        return max((t for t in family if step_of(t) == finest), key=lambda t: t.resolution_s)

    # -- series from the live buffer -------------------------------------------------------------
    def _live_series(self, fields: list[SeriesField], live: list[Envelope], start: float, end: float,
                     step: float, *, raw: bool) -> list[ReadSeries]:
        inside = [e for e in live if start <= e["ts"] < end]
        raw = raw and len(inside) <= self.max_points
        out: dict[tuple[str, tuple[str, ...]], ReadSeries] = {}
        for envelope in inside:
            t = envelope["ts"] if raw else math.floor(envelope["ts"] / step) * step
            for field in fields:
                for keys, value in field.values(envelope["data"]):
                    _merge_point(out, field.path, keys, t, value)
        return list(out.values())

    def _add_live(self, series: list[ReadSeries], fields: list[SeriesField], live: list[Envelope], start: float,
                  end: float, step: int, resolution: int) -> None:
        """Fill the steps after each series' last written bucket from the live buffer."""
        by_key = {(s.field, s.keys): s for s in series}
        written = {key: s.last_bucket + resolution for key, s in by_key.items()}
        horizon = min(written.values(), default=start)
        for envelope in live:
            ts = envelope["ts"]
            if ts < horizon or ts < start or ts >= end:
                continue
            t = int(ts // step) * step
            for field in fields:
                for keys, value in field.values(envelope["data"]):
                    if ts >= written.get((field.path, keys), start):
                        _merge_point(by_key, field.path, keys, t, value)
        series[:] = list(by_key.values())

    # -- the answer: columns --------------------------------------------------------------------
    def _answer(self, stream: str, source: str | None, start: float, end: float, tier: str, step: float,
                fields: list[SeriesField], series: list[ReadSeries], restarts: list[float],
                sources: list[str]) -> dict[str, Any]:
        order = {f.path: i for i, f in enumerate(fields)}
        series = sorted(series, key=lambda s: (order[s.field], _natural(s.keys)))
        shared = series[0].t if series and all(s.t == series[0].t for s in series) else None
        times = shared if shared is not None else sorted({t for s in series for t in s.t})
        apart = 2 * max(step, self._interval_s(stream) or 0.0)
        # Where a null row goes: before index i of `times` (a restart, or a hole in the data).
        breaks: dict[int, list[float]] = {}
        for r in restarts:
            breaks.setdefault(bisect.bisect_left(times, r), []).append(r)
        for i in range(1, len(times)):
            if times[i] - times[i - 1] > apart and i not in breaks:
                breaks[i] = [(times[i] + times[i - 1]) / 2]
        t_column = _with_breaks(times, breaks, lambda i: sorted(breaks[i]))
        columns: dict[str, Any] = {}
        for s in series:
            if s.t is times or s.t == times:
                lo, avg, hi = s.min, s.avg, s.max
            else:
                at = dict(zip(s.t, range(len(s.t))))
                index = [at.get(t) for t in times]
                lo, avg, hi = ([None if i is None else col[i] for i in index] for col in (s.min, s.avg, s.max))
            columns[concrete_name(s.field, s.keys)] = {
                "field": s.field, "keys": list(s.keys),
                "min": _with_breaks(lo, breaks), "avg": _with_breaks(avg, breaks), "max": _with_breaks(hi, breaks)}
        return {"stream": stream, "source": source, "from": start, "to": end, "tier": tier, "step": step,
                "t": t_column, "fields": columns, "restarts": sorted(restarts), "sources": sources}


def _with_breaks(column: list, breaks: dict[int, list[float]], fill=None) -> list:
    """`column` with the break rows inserted (nulls; in the time column, their times)."""
    if not breaks:
        return list(column)
    out: list = []
    last = 0
    for i in sorted(breaks):
        out += column[last:i]
        out += fill(i) if fill is not None else [None] * len(breaks[i])
        last = i
    out += column[last:]
    return out


def _merge_point(into: dict, field: str, keys: tuple[str, ...], t: float, value: float) -> None:
    s = into.get((field, keys))
    if s is None:
        into[(field, keys)] = ReadSeries(field, keys, [t], [value], [value], [value], [1], 0)
        return
    if s.t and s.t[-1] == t:
        n = s.count[-1]
        s.min[-1], s.max[-1] = min(s.min[-1], value), max(s.max[-1], value)
        s.avg[-1] = (s.avg[-1] * n + value) / (n + 1)
        s.count[-1] = n + 1
    elif not s.t or t > s.t[-1]:
        for column, v in ((s.t, t), (s.min, value), (s.avg, value), (s.max, value), (s.count, 1)):
            column.append(v)
    else:  # older than the last step: an envelope out of order
        i = bisect.bisect_left(s.t, t)
        if i < len(s.t) and s.t[i] == t:
            n = s.count[i]
            s.min[i], s.max[i] = min(s.min[i], value), max(s.max[i], value)
            s.avg[i] = (s.avg[i] * n + value) / (n + 1)
            s.count[i] = n + 1
        else:
            for column, v in ((s.t, t), (s.min, value), (s.avg, value), (s.max, value), (s.count, 1)):
                column.insert(i, v)


def _natural(keys: tuple[str, ...]) -> tuple:
    return tuple((0, int(k), "") if k.isdigit() else (1, 0, k) for k in keys)


class HistoryUnavailable(DashboardError):
    status, code = 503, "history_unavailable"
