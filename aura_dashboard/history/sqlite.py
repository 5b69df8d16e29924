"""The embedded history store: one SQLite file (WAL) next to the audit store, no setup.

One connection behind a lock; every call runs in a worker thread, so the event loop never
waits on the disk. Rows are written by the one writer task, in one transaction per batch.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from .chunks import CHUNK_SECONDS, Chunk, chunk_of, count_in, read_columns
from .store import TIER_NAMES, ReadRequest, ReadSeries, as_read_series, group_rows
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
CREATE TABLE IF NOT EXISTS chunks_{tier} (
    series INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (series, chunk)
) WITHOUT ROWID;
""" for tier in TIER_NAMES)


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
            for (tier, series, chunk), values in group_rows(rows, self._series_id).items():
                table = f"chunks_{_tier(tier)}"
                found = conn.execute(f"SELECT data FROM {table} WHERE series = ? AND chunk = ?",
                                     (series, chunk)).fetchone()
                packed = Chunk.decode(found[0]) if found else Chunk.empty()
                if packed.merge(values, run):
                    conn.execute(f"INSERT OR REPLACE INTO {table} (series, chunk, data) VALUES (?, ?, ?)",
                                 (series, chunk, packed.encode()))
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
        step, table = int(q.step), f"chunks_{_tier(q.tier)}"
        first = chunk_of(q.tier, q.start)
        out = []
        for (field, keys), ids in groups.items():
            parts = []
            for sid in ids:
                chunks = [row[0] for row in self._conn.execute(
                    f"SELECT data FROM {table} WHERE series = ? AND chunk >= ? AND chunk < ? ORDER BY chunk",
                    (sid, first, q.end))]
                parts.append(read_columns(chunks, q.start, q.end))
            series = as_read_series(field, keys, parts, step, q.resolution)
            if series is not None:
                out.append(series)
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
        """Delete the tier's buckets older than `cutoff`: whole chunks at most `batch` buckets'
        worth per transaction (the event loop is free between them), then the chunk that
        straddles `cutoff` trimmed; then the series that have no bucket left anywhere."""
        table = f"chunks_{_tier(tier)}"
        old = cutoff - CHUNK_SECONDS[tier]  # a chunk starting at or before this ends by `cutoff`
        per_batch = max(1, batch // max(1, CHUNK_SECONDS[tier] // 10))

        def drop_whole() -> int:
            rows = self._conn.execute(f"SELECT series, chunk, length(data) FROM {table} WHERE chunk <= ? LIMIT ?",
                                      (old, per_batch)).fetchall()
            if rows:
                with self._conn:  # one transaction
                    self._conn.execute("BEGIN")
                    self._conn.executemany(f"DELETE FROM {table} WHERE series = ? AND chunk = ?",
                                           [(sid, chunk) for sid, chunk, _ in rows])
            return len(rows), sum(count_in(size) for _, _, size in rows)

        def trim() -> int:
            removed = 0
            self._conn.execute("BEGIN")
            try:
                for sid, chunk, data in self._conn.execute(
                        f"SELECT series, chunk, data FROM {table} WHERE chunk > ? AND chunk < ?",
                        (old, cutoff)).fetchall():
                    packed = Chunk.decode(data)
                    n = packed.drop_before(cutoff)
                    if n and not len(packed):
                        self._conn.execute(f"DELETE FROM {table} WHERE series = ? AND chunk = ?", (sid, chunk))
                    elif n:
                        self._conn.execute(f"UPDATE {table} SET data = ? WHERE series = ? AND chunk = ?",
                                           (packed.encode(), sid, chunk))
                    removed += n
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            return removed

        deleted = 0
        while True:
            chunks, buckets = await self._call(drop_whole)
            deleted += buckets
            if chunks < per_batch:
                break
        deleted += await self._call(trim)
        await self._call(self._drop_empty_series, cutoff if tier == TIER_NAMES[-1] else None)
        return deleted

    def _drop_empty_series(self, runs_before: int | None) -> None:
        empty = " AND ".join(f"NOT EXISTS (SELECT 1 FROM chunks_{t} WHERE series = series.id)" for t in TIER_NAMES)
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
