"""The history in PostgreSQL (aiopg), for `history.store: postgres`: every host of a cluster
writes its own series there (the lease holder the shared ones), so one database holds every
host's history.

Tables are created when missing. Each tier's key (series, chunk) serves time ranges of a
series and retention, which deletes whole old chunks in small batches and trims the chunk that
straddles the cutoff. The pool is made on first use and
dropped after any failure, so a server that went away is reconnected on the next call.
"""

from __future__ import annotations

import asyncio
import logging

import aiopg
import psycopg2

from ..collectors.database import close_pool
from .chunks import CHUNK_SECONDS, Chunk, chunk_of, count_in, read_columns
from .store import TIER_NAMES, ReadRequest, ReadSeries, as_read_series, group_rows, keys_text
from .tiers import BucketRow

log = logging.getLogger(__name__)

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS aura_history_series (
        id SERIAL PRIMARY KEY,
        stream TEXT NOT NULL,
        source TEXT NOT NULL,
        field TEXT NOT NULL,
        keys TEXT NOT NULL,
        UNIQUE (stream, source, field, keys))""",
    """CREATE TABLE IF NOT EXISTS aura_history_runs (
        id SERIAL PRIMARY KEY,
        source TEXT NOT NULL,
        started DOUBLE PRECISION NOT NULL)""",
] + [f"""CREATE TABLE IF NOT EXISTS aura_history_{tier}_chunks (
        series INTEGER NOT NULL,
        chunk BIGINT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (series, chunk))""" for tier in TIER_NAMES]
# Writers of several instances (each its own hosts' series; two lease holders for a moment
# during a failover) read, merge and rewrite chunks: one transaction-scoped lock orders them.
_WRITE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('aura_history_write'))"
STATEMENT_TIMEOUT_MS = 20_000


class PostgresHistory:
    """Tiers in PostgreSQL.

    :param dsn: the libpq connection string (`backends.database`).
    """

    name = "postgres"

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._pool: aiopg.Pool | None = None
        self._ids: dict[tuple[str, str, str, str], int] = {}
        self._opening = asyncio.Lock()

    async def _get_pool(self) -> aiopg.Pool:
        async with self._opening:
            if self._pool is None:
                pool = await aiopg.create_pool(self.dsn, minsize=0, maxsize=2, timeout=10,
                                               options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")
                try:
                    async with pool.acquire() as conn, conn.cursor() as cur:
                        for statement in _SCHEMA:
                            await cur.execute(statement)
                except BaseException:
                    await close_pool(pool)
                    raise
                self._pool = pool
            return self._pool

    async def _execute(self, work):
        """Run `work(cursor)` on a pooled connection; any failure drops the pool."""
        try:
            pool = await self._get_pool()
            async with pool.acquire() as conn, conn.cursor() as cur:
                return await work(cur)
        except BaseException:
            await self._drop_pool()
            raise

    async def _drop_pool(self) -> None:
        pool, self._pool = self._pool, None
        self._ids.clear()
        await close_pool(pool)

    async def open(self) -> None:
        await self._get_pool()

    async def begin_run(self, source: str, started: float) -> int:
        async def insert(cur) -> int:
            await cur.execute("INSERT INTO aura_history_runs (source, started) VALUES (%s, %s) RETURNING id",
                              (source, started))
            return (await cur.fetchone())[0]
        return await self._execute(insert)

    async def _series_ids(self, cur, keys: set[tuple[str, str, str, str]]) -> None:
        missing = [key for key in keys if key not in self._ids]
        if not missing:
            return
        columns = list(zip(*missing))
        await cur.execute(
            "INSERT INTO aura_history_series (stream, source, field, keys) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING",
            [list(c) for c in columns])
        await cur.execute(
            "SELECT s.id, s.stream, s.source, s.field, s.keys FROM aura_history_series s "
            "JOIN unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS m(stream, source, field, keys) "
            "USING (stream, source, field, keys)", [list(c) for c in columns])
        for sid, *key in await cur.fetchall():
            self._ids[tuple(key)] = sid

    async def write(self, rows: list[BucketRow], run: int) -> None:
        if not rows:
            return

        async def work(cur) -> None:
            await cur.execute("BEGIN")
            try:
                await cur.execute(_WRITE_LOCK)
                await self._series_ids(cur, {(r.stream, r.source, r.field, keys_text(r.keys)) for r in rows})
                grouped = group_rows(rows, lambda *key: self._ids[key])
                by_tier: dict[str, list[tuple[int, int]]] = {}
                for tier, series, chunk in grouped:
                    by_tier.setdefault(tier, []).append((series, chunk))
                for tier, keys in by_tier.items():
                    table = f"aura_history_{_tier(tier)}_chunks"
                    series_ids, chunk_starts = [list(c) for c in zip(*keys)]
                    await cur.execute(f"SELECT t.series, t.chunk, t.data FROM {table} t "
                                      f"JOIN unnest(%s::int[], %s::bigint[]) AS m(series, chunk) "
                                      f"USING (series, chunk)", (series_ids, chunk_starts))
                    found = {(sid, chunk): data for sid, chunk, data in await cur.fetchall()}
                    changed: list[tuple[int, int, bytes]] = []
                    for key in keys:
                        packed = Chunk.decode(found[key]) if key in found else Chunk.empty()
                        if packed.merge(grouped[(tier, *key)], run):
                            changed.append((*key, packed.encode()))
                    if changed:
                        ids, starts, blobs = zip(*changed)
                        await cur.execute(
                            f"INSERT INTO {table} (series, chunk, data) "
                            f"SELECT * FROM unnest(%s::int[], %s::bigint[], %s::bytea[]) "
                            f"ON CONFLICT (series, chunk) DO UPDATE SET data = excluded.data",
                            (list(ids), list(starts), [psycopg2.Binary(b) for b in blobs]))
                await cur.execute("COMMIT")
            except BaseException:
                self._ids.clear()
                raise
        await self._execute(work)

    async def read(self, q: ReadRequest) -> list[ReadSeries]:
        where, args = ["stream = %s"], [q.stream]
        if q.source is not None:
            where.append("source = %s")
            args.append(q.source)
        if q.fields is not None:
            where.append("field = ANY(%s)")
            args.append(list(q.fields))
        step, table = int(q.step), f"aura_history_{_tier(q.tier)}_chunks"

        async def work(cur) -> list[ReadSeries]:
            await cur.execute(f"SELECT id, field, keys FROM aura_history_series WHERE {' AND '.join(where)}", args)
            groups: dict[tuple[str, str], list[int]] = {}
            for sid, field, keys in await cur.fetchall():  # several sources' same series are merged
                groups.setdefault((field, keys), []).append(sid)
            if not groups:
                return []
            ids = [sid for group in groups.values() for sid in group]
            await cur.execute(f"SELECT series, data FROM {table} WHERE series = ANY(%s) AND chunk >= %s "
                              f"AND chunk < %s ORDER BY series, chunk",
                              (ids, chunk_of(q.tier, q.start), q.end))
            chunks: dict[int, list[bytes]] = {}
            for sid, data in await cur.fetchall():
                chunks.setdefault(sid, []).append(data)
            out = []
            for (field, keys), group in groups.items():
                parts = [read_columns(chunks.get(sid, ()), q.start, q.end) for sid in group]
                series = as_read_series(field, keys, parts, step, q.resolution)
                if series is not None:
                    out.append(series)
            return out
        return await self._execute(work)

    async def sources(self, stream: str) -> list[str]:
        async def work(cur) -> list[str]:
            await cur.execute("SELECT DISTINCT source FROM aura_history_series WHERE stream = %s ORDER BY source",
                              (stream,))
            return [row[0] for row in await cur.fetchall()]
        return await self._execute(work)

    async def restarts(self, source: str | None, start: float, end: float) -> list[float]:
        sql, args = "SELECT started FROM aura_history_runs WHERE started >= %s AND started < %s", [start, end]
        if source is not None:
            sql += " AND source = %s"
            args.append(source)

        async def work(cur) -> list[float]:
            await cur.execute(sql + " ORDER BY started", args)
            return [row[0] for row in await cur.fetchall()]
        return await self._execute(work)

    async def delete_before(self, tier: str, cutoff: int, batch: int) -> int:
        """Delete the tier's buckets older than `cutoff`: whole chunks, at most `batch`
        buckets' worth per statement, then the chunks that straddle `cutoff` trimmed."""
        table = f"aura_history_{_tier(tier)}_chunks"
        old = cutoff - CHUNK_SECONDS[tier]  # a chunk starting at or before this ends by `cutoff`
        per_batch = max(1, batch // max(1, CHUNK_SECONDS[tier] // 10))
        deleted = 0
        while True:
            async def whole(cur) -> tuple[int, int]:
                await cur.execute(f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("
                                  f"SELECT ctid FROM {table} WHERE chunk <= %s LIMIT %s)) "
                                  f"RETURNING octet_length(data)", (old, per_batch))
                sizes = [row[0] for row in await cur.fetchall()]
                return len(sizes), sum(count_in(size) for size in sizes)
            chunks, buckets = await self._execute(whole)
            deleted += buckets
            if chunks < per_batch:
                break

        async def trim(cur) -> int:
            removed = 0
            await cur.execute("BEGIN")
            await cur.execute(_WRITE_LOCK)
            await cur.execute(f"SELECT series, chunk, data FROM {table} WHERE chunk > %s AND chunk < %s",
                              (old, cutoff))
            for sid, chunk, data in await cur.fetchall():
                packed = Chunk.decode(data)
                n = packed.drop_before(cutoff)
                if n and not len(packed):
                    await cur.execute(f"DELETE FROM {table} WHERE series = %s AND chunk = %s", (sid, chunk))
                elif n:
                    await cur.execute(f"UPDATE {table} SET data = %s WHERE series = %s AND chunk = %s",
                                      (psycopg2.Binary(packed.encode()), sid, chunk))
                removed += n
            await cur.execute("COMMIT")
            return removed
        deleted += await self._execute(trim)
        if tier == TIER_NAMES[-1]:
            async def tidy(cur) -> None:
                empty = " AND ".join(f"NOT EXISTS (SELECT 1 FROM aura_history_{t}_chunks WHERE series = s.id)"
                                     for t in TIER_NAMES)
                await cur.execute(f"DELETE FROM aura_history_series s WHERE {empty}")
                await cur.execute("DELETE FROM aura_history_runs WHERE started < %s AND id NOT IN "
                                  "(SELECT max(id) FROM aura_history_runs GROUP BY source)", (cutoff,))
            await self._execute(tidy)
            self._ids.clear()  # re-read: a series idle past the retention may have gone
        return deleted

    async def close(self) -> None:
        await self._drop_pool()


def _tier(name: str) -> str:
    if name not in TIER_NAMES:
        raise ValueError(f"no tier named {name!r}")
    return name
