"""The history in PostgreSQL (aiopg), for `history.store: postgres`: every host of a cluster
writes its own series there (the lease holder the shared ones), so one database holds every
host's history.

Tables are created when missing. Each tier's key (series, bucket) serves time ranges of a
series; a BRIN index on `bucket` (tiny, and fit for rows that arrive in time order) serves
retention, which deletes old buckets in small batches. The pool is made on first use and
dropped after any failure, so a server that went away is reconnected on the next call.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging

import aiopg

from ..collectors.database import close_pool
from .store import TIER_NAMES, ReadRequest, ReadSeries, keys_text
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
] + [stmt for tier in TIER_NAMES for stmt in (
    f"""CREATE TABLE IF NOT EXISTS aura_history_{tier} (
        series INTEGER NOT NULL,
        bucket BIGINT NOT NULL,
        min DOUBLE PRECISION NOT NULL,
        avg DOUBLE PRECISION NOT NULL,
        max DOUBLE PRECISION NOT NULL,
        last DOUBLE PRECISION NOT NULL,
        count INTEGER NOT NULL,
        run INTEGER NOT NULL,
        PRIMARY KEY (series, bucket))""",
    f"CREATE INDEX IF NOT EXISTS aura_history_{tier}_bucket ON aura_history_{tier} USING brin (bucket)",
)]

_UPSERT = """
INSERT INTO aura_history_{tier} AS t (series, bucket, min, avg, max, last, count, run)
SELECT * FROM unnest(%s::int[], %s::bigint[], %s::float8[], %s::float8[], %s::float8[], %s::float8[],
                     %s::int[], %s::int[])
ON CONFLICT (series, bucket) DO UPDATE SET
    min = LEAST(t.min, excluded.min), max = GREATEST(t.max, excluded.max),
    avg = (t.avg * t.count + excluded.avg * excluded.count) / (t.count + excluded.count),
    last = excluded.last, count = t.count + excluded.count, run = excluded.run
WHERE t.run <> excluded.run
"""
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
            keyed = [((r.stream, r.source, r.field, keys_text(r.keys)), r) for r in rows]
            await cur.execute("BEGIN")
            try:
                await self._series_ids(cur, {key for key, _ in keyed})
                by_tier: dict[str, list[tuple]] = {}
                for key, r in keyed:
                    by_tier.setdefault(r.tier, []).append(
                        (self._ids[key], r.start, r.min, r.avg, r.max, r.last, r.count, run))
                for tier, values in by_tier.items():
                    await cur.execute(_UPSERT.format(tier=_tier(tier)), [list(c) for c in zip(*values)])
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
        step, table = int(q.step), f"aura_history_{_tier(q.tier)}"

        async def work(cur) -> list[ReadSeries]:
            await cur.execute(f"SELECT id, field, keys FROM aura_history_series WHERE {' AND '.join(where)}", args)
            groups: dict[tuple[str, str], list[int]] = {}
            for sid, field, keys in await cur.fetchall():  # several sources' same series are merged
                groups.setdefault((field, keys), []).append(sid)
            if not groups:
                return []
            names = list(groups)
            ids = [sid for key in names for sid in groups[key]]
            group_of = [g for g, key in enumerate(names) for _ in groups[key]]
            if step == q.resolution and len(ids) == len(names):
                await cur.execute(f"SELECT m.g, t.bucket, t.min, t.avg, t.max, t.count, t.bucket FROM {table} t "
                                  f"JOIN unnest(%s::int[], %s::int[]) AS m(id, g) ON t.series = m.id "
                                  f"WHERE t.bucket >= %s AND t.bucket < %s ORDER BY m.g, t.bucket",
                                  (ids, group_of, q.start, q.end))
            else:
                await cur.execute(f"SELECT m.g, (t.bucket / {step}) * {step} AS b, min(t.min), "
                                  f"sum(t.avg * t.count) / sum(t.count), max(t.max), sum(t.count)::bigint, "
                                  f"max(t.bucket) FROM {table} t "
                                  f"JOIN unnest(%s::int[], %s::int[]) AS m(id, g) ON t.series = m.id "
                                  f"WHERE t.bucket >= %s AND t.bucket < %s GROUP BY m.g, b ORDER BY m.g, b",
                                  (ids, group_of, q.start, q.end))
            rows = await cur.fetchall()
            out = []
            for g, grouped in itertools.groupby(rows, key=lambda row: row[0]):
                _, t, lo, avg, hi, n, last = zip(*grouped)
                field, keys = names[g]
                out.append(ReadSeries(field, tuple(json.loads(keys)), list(t), list(lo), list(avg), list(hi),
                                      list(n), max(last)))
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
        """Delete the tier's buckets older than `cutoff`, at most `batch` rows per statement."""
        table = f"aura_history_{_tier(tier)}"
        deleted = 0
        while True:
            async def work(cur) -> int:
                await cur.execute(f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("
                                  f"SELECT ctid FROM {table} WHERE bucket < %s LIMIT %s))", (cutoff, batch))
                return cur.rowcount
            n = await self._execute(work)
            deleted += n
            if n < batch:
                break
        if tier == TIER_NAMES[-1]:
            async def tidy(cur) -> None:
                empty = " AND ".join(f"NOT EXISTS (SELECT 1 FROM aura_history_{t} WHERE series = s.id)"
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
