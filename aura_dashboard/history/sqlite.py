"""The embedded history store: one SQLite file (WAL) next to the audit store, no setup.

One connection behind a lock; every call runs in a worker thread, so the event loop never
waits on the disk. Rows are written by the one writer task, in one transaction per batch.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path

from .store import TIER_NAMES, ReadRequest, ReadSeries, keys_text
from .tiers import BucketRow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    source TEXT NOT NULL,
    field TEXT NOT NULL,
    keys TEXT NOT NULL,
    UNIQUE (stream, source, field, keys)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    started REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started);
""" + "".join(f"""
CREATE TABLE IF NOT EXISTS tier_{tier} (
    series INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    min REAL NOT NULL,
    avg REAL NOT NULL,
    max REAL NOT NULL,
    last REAL NOT NULL,
    count INTEGER NOT NULL,
    run INTEGER NOT NULL,
    PRIMARY KEY (series, bucket)
) WITHOUT ROWID;
""" for tier in TIER_NAMES)

# A bucket a later run also filled is merged; the same run writing it again changes nothing.
_UPSERT = """
INSERT INTO tier_{tier} AS t (series, bucket, min, avg, max, last, count, run) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series, bucket) DO UPDATE SET
    min = min(t.min, excluded.min), max = max(t.max, excluded.max),
    avg = (t.avg * t.count + excluded.avg * excluded.count) / (t.count + excluded.count),
    last = excluded.last, count = t.count + excluded.count, run = excluded.run
WHERE t.run <> excluded.run
"""


class SqliteHistory:
    """Tiers in an SQLite file (`:memory:` for tests)."""

    name = "sqlite"

    def __init__(self, path: str):
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str, str, str], int] = {}

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, self._locked, fn, args)

    def _locked(self, fn, args):
        with self._lock:
            return fn(*args)

    def _open(self) -> None:
        if self._conn is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        self._conn = conn

    async def open(self) -> None:
        await self._call(self._open)

    async def begin_run(self, source: str, started: float) -> int:
        def insert() -> int:
            return self._conn.execute("INSERT INTO runs (source, started) VALUES (?, ?)",
                                      (source, started)).lastrowid
        return await self._call(insert)

    def _series_id(self, stream: str, source: str, field: str, keys: str) -> int:
        key = (stream, source, field, keys)
        found = self._ids.get(key)
        if found is None:
            self._conn.execute("INSERT OR IGNORE INTO series (stream, source, field, keys) VALUES (?, ?, ?, ?)", key)
            found = self._conn.execute("SELECT id FROM series WHERE stream = ? AND source = ? AND field = ? "
                                       "AND keys = ?", key).fetchone()[0]
            self._ids[key] = found
        return found

    def _write(self, rows: list[BucketRow], run: int) -> None:
        conn = self._conn
        conn.execute("BEGIN")
        try:
            by_tier: dict[str, list[tuple]] = {}
            for r in rows:
                series = self._series_id(r.stream, r.source, r.field, keys_text(r.keys))
                by_tier.setdefault(r.tier, []).append(
                    (series, r.start, r.min, r.avg, r.max, r.last, r.count, run))
            for tier, values in by_tier.items():
                conn.executemany(_UPSERT.format(tier=_tier(tier)), values)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._ids.clear()  # series rows of the failed transaction are gone too
            raise

    async def write(self, rows: list[BucketRow], run: int) -> None:
        if rows:
            await self._call(self._write, rows, run)

    def _read(self, q: ReadRequest) -> list[ReadSeries]:
        where, args = ["stream = ?"], [q.stream]
        if q.source is not None:
            where.append("source = ?")
            args.append(q.source)
        if q.fields is not None:
            where.append(f"field IN ({', '.join('?' * len(q.fields))})")
            args += list(q.fields)
        found = self._conn.execute(f"SELECT id, field, keys FROM series WHERE {' AND '.join(where)}", args).fetchall()
        if not found:
            return []
        groups: dict[tuple[str, str], list[int]] = {}
        for sid, field, keys in found:  # the same field and keys of several sources are merged
            groups.setdefault((field, keys), []).append(sid)
        step, table = int(q.step), f"tier_{_tier(q.tier)}"
        # One indexed range per series; rows come back as columns through zip (in C), and a
        # step of several buckets is merged in SQL.
        plain = (f"SELECT bucket, min, avg, max, count FROM {table} "
                 f"WHERE series = ? AND bucket >= ? AND bucket < ? ORDER BY bucket")
        out = []
        for (field, keys), ids in groups.items():
            if step == q.resolution and len(ids) == 1:
                rows = self._conn.execute(plain, (ids[0], q.start, q.end)).fetchall()
            else:
                rows = self._conn.execute(
                    f"SELECT (bucket / {step}) * {step} AS b, min(min), sum(avg * count) / sum(count), max(max), "
                    f"sum(count), max(bucket) FROM {table} WHERE series IN ({', '.join('?' * len(ids))}) "
                    f"AND bucket >= ? AND bucket < ? GROUP BY b ORDER BY b", (*ids, q.start, q.end)).fetchall()
            if not rows:
                continue
            columns = list(zip(*rows))
            last = max(columns[5]) if len(columns) > 5 else columns[0][-1]
            out.append(ReadSeries(field, tuple(json.loads(keys)), list(columns[0]), list(columns[1]),
                                  list(columns[2]), list(columns[3]), list(columns[4]), last))
        return out

    async def read(self, request: ReadRequest) -> list[ReadSeries]:
        return await self._call(self._read, request)

    async def sources(self, stream: str) -> list[str]:
        def query() -> list[str]:
            return [row[0] for row in self._conn.execute(
                "SELECT DISTINCT source FROM series WHERE stream = ? ORDER BY source", (stream,))]
        return await self._call(query)

    async def restarts(self, source: str | None, start: float, end: float) -> list[float]:
        def query() -> list[float]:
            sql, args = "SELECT started FROM runs WHERE started >= ? AND started < ?", [start, end]
            if source is not None:
                sql += " AND source = ?"
                args.append(source)
            return [row[0] for row in self._conn.execute(sql + " ORDER BY started", args)]
        return await self._call(query)

    async def delete_before(self, tier: str, cutoff: int, batch: int) -> int:
        """Delete the tier's buckets older than `cutoff`, series by series, at most `batch`
        rows per transaction (the event loop is free between batches); then the series
        that have no bucket left anywhere."""
        table = f"tier_{_tier(tier)}"
        series = await self._call(lambda: [row[0] for row in self._conn.execute("SELECT id FROM series")])
        deleted = 0
        for sid in series:
            while True:
                n = await self._call(lambda: self._conn.execute(
                    f"DELETE FROM {table} WHERE series = ? AND bucket IN "
                    f"(SELECT bucket FROM {table} WHERE series = ? AND bucket < ? LIMIT ?)",
                    (sid, sid, cutoff, batch)).rowcount)
                deleted += n
                if n < batch:
                    break
        await self._call(self._drop_empty_series, cutoff if tier == TIER_NAMES[-1] else None)
        return deleted

    def _drop_empty_series(self, runs_before: int | None) -> None:
        empty = " AND ".join(f"NOT EXISTS (SELECT 1 FROM tier_{t} WHERE series = series.id)" for t in TIER_NAMES)
        if self._conn.execute(f"DELETE FROM series WHERE {empty}").rowcount:
            self._ids.clear()
        if runs_before is not None:
            # Starts older than the longest tier's retention mark nothing any more (each source's last stays).
            self._conn.execute("DELETE FROM runs WHERE started < ? AND id NOT IN "
                               "(SELECT max(id) FROM runs GROUP BY source)", (runs_before,))

    async def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        await self._call(close)


def _tier(name: str) -> str:
    if name not in TIER_NAMES:
        raise ValueError(f"no tier named {name!r}")
    return name
