"""What a history store does, whichever database holds it.

Tables (the same in SQLite and PostgreSQL): `series` (one row per stream, source, field and
keys), `runs` (each start of a writer, per source: restarts are drawn as gaps), and one table
per tier holding a row per series and chunk of time (`chunks.py`): every bucket of the chunk
packed as columns (min, avg, max, last, count, and the run that wrote it). The key is
(series, chunk), an index fit for time ranges of a series.

Writes are idempotent per run: a batch written again after a failure (PostgreSQL went away
with the commit's answer) changes nothing, while a bucket that a later run also fills (the
partial bucket flushed at shutdown, then filled on after the restart) is merged into one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .chunks import chunk_of, merge_steps
from .tiers import BucketRow

# Each configured tier has a rollup of 6 of its buckets, kept as long: a day at 1,500 points
# reads 1-minute buckets and a month 30-minute ones, never six times as many rows.
TIER_NAMES = ("fine", "fine_rollup", "coarse", "coarse_rollup")


def keys_text(keys: tuple[str, ...] | list[str]) -> str:
    return json.dumps(list(keys), separators=(",", ":"), ensure_ascii=False)


@dataclass
class ReadSeries:
    """One series' buckets merged by step, as columns (steps without data left out)."""

    field: str
    keys: tuple[str, ...]
    t: list[int]            # each step's start, ascending
    min: list[float]
    avg: list[float]
    max: list[float]
    count: list[int]
    last_bucket: int        # the start of the newest tier bucket merged in


@dataclass(frozen=True)
class ReadRequest:
    """One query of a tier: a stream's series (of `source`, or of every source merged)."""

    tier: str
    stream: str
    source: str | None
    fields: tuple[str, ...] | None  # None: every field
    start: int
    end: int                        # exclusive
    step: int
    resolution: int = 0             # the tier's bucket width (a step of one bucket merges nothing)


def group_rows(rows: list[BucketRow], series_id: Callable[[str, str, str, str], int]
               ) -> dict[tuple[str, int, int], list[tuple]]:
    """Rows by (tier, series id, chunk), each as (start, min, avg, max, last, count)."""
    grouped: dict[tuple[str, int, int], list[tuple]] = {}
    for r in rows:
        key = (r.tier, series_id(r.stream, r.source, r.field, keys_text(r.keys)), chunk_of(r.tier, r.start))
        grouped.setdefault(key, []).append((r.start, r.min, r.avg, r.max, r.last, r.count))
    return grouped


def as_read_series(field: str, keys: str, parts: list[tuple[list, ...]], step: int, resolution: int
                   ) -> ReadSeries | None:
    """One series (of one or several sources: `parts`) read from its chunks, merged to `step`
    unless the step is one bucket of a single source; None when it holds nothing."""
    parts = [p for p in parts if p[0]]
    if not parts:
        return None
    if len(parts) == 1 and step == resolution:
        t, lo, avg, hi, n = parts[0]
        last = t[-1]
    else:
        t, lo, avg, hi, n, newest = merge_steps(parts, step)
        last = max(newest)
    return ReadSeries(field, tuple(json.loads(keys)), t, lo, avg, hi, n, last)


class HistoryStore(Protocol):
    """A store of tiers; every method may raise when the database is unreachable."""

    name: str

    async def open(self) -> None: ...
    async def begin_run(self, source: str, started: float) -> int: ...
    async def write(self, rows: list[BucketRow], run: int) -> None: ...
    async def read(self, request: ReadRequest) -> list[ReadSeries]: ...
    async def sources(self, stream: str) -> list[str]: ...
    async def restarts(self, source: str | None, start: float, end: float) -> list[float]: ...
    async def delete_before(self, tier: str, cutoff: int, batch: int) -> int: ...
    async def close(self) -> None: ...
