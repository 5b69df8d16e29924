"""PostgreSQL through aiopg: reachability, connections, size, transactions per second,
cache hit ratio and the oldest running query.

The pool is created on the first sample and dropped after any failure, so a database that
went away and came back is reconnected on the next sample. `status` is `up`, `down` (with
the reason, never the password) or `disabled` when no host is configured.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

import aiopg
import psycopg2

from ..config.schema import DatabaseSettings
from ..contract import FieldSpec, PayloadModel, StreamContract

log = logging.getLogger(__name__)

_STATS = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname IS NOT NULL),
       current_setting('max_connections')::int,
       pg_database_size(current_database()),
       xact_commit + xact_rollback, blks_hit, blks_read,
       (SELECT coalesce(max(extract(epoch FROM now() - query_start)), 0)
          FROM pg_stat_activity
         WHERE state = 'active' AND pid <> pg_backend_pid())
  FROM pg_stat_database WHERE datname = current_database()
"""


def dsn_of(settings: DatabaseSettings, connect_timeout_s: float) -> str:
    return psycopg2.extensions.make_dsn(
        host=settings.host, port=settings.port, dbname=settings.database, user=settings.username,
        password=settings.password.get_secret_value() or None,
        connect_timeout=max(1, int(connect_timeout_s)), application_name="aura-dashboard")


async def close_pool(pool: aiopg.Pool | None) -> None:
    """Terminate a pool without waiting on a database that may be gone (at most 2 s)."""
    if pool is None:
        return
    pool.terminate()
    try:
        async with asyncio.timeout(2):
            await pool.wait_closed()
    except Exception:
        pass


class DatabaseCollector:
    """`await sample()`: the `database` stream's data; never raises for a database problem."""

    def __init__(self, settings: DatabaseSettings, *, query_timeout_s: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.connect_timeout_s = settings.connection_timeout_ms / 1000
        self.query_timeout_s = query_timeout_s
        self._monotonic = monotonic
        self._pool: aiopg.Pool | None = None
        self._previous: tuple[float, int] | None = None
        self.last: dict[str, Any] = {"status": "disabled" if not settings.host else "unknown"}

    @property
    def enabled(self) -> bool:
        return bool(self.settings.host)

    def _reason(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        secret = self.settings.password.get_secret_value()
        return text.replace(secret, "<redacted>") if secret else text

    async def _get_pool(self) -> aiopg.Pool:
        if self._pool is None:
            self._pool = await aiopg.create_pool(
                dsn_of(self.settings, self.connect_timeout_s), minsize=0,
                maxsize=self.settings.pool_size, timeout=self.connect_timeout_s + self.query_timeout_s)
        return self._pool

    async def _drop_pool(self) -> None:
        pool, self._pool = self._pool, None
        await close_pool(pool)

    async def sample(self) -> dict[str, Any]:
        if not self.enabled:
            self.last = {"status": "disabled", "reason": "backends.database.host is empty"}
            return self.last
        try:
            async with asyncio.timeout(self.connect_timeout_s + self.query_timeout_s):
                self.last = await self._measure()
        except Exception as exc:  # any failure: down, with the reason, and a fresh pool next time
            self.last = {"status": "down", "reason": self._reason(exc) or "timeout",
                         "host": self.settings.host, "port": self.settings.port}
            self._previous = None
            await self._drop_pool()
        return self.last

    async def _measure(self) -> dict[str, Any]:
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.cursor() as cur:
            started = time.perf_counter()
            await cur.execute("SELECT 1")
            await cur.fetchone()
            latency_ms = (time.perf_counter() - started) * 1000
            await cur.execute(_STATS)
            connections, max_connections, size, xacts, hits, reads, longest = await cur.fetchone()
        now = self._monotonic()
        tps = None
        if self._previous is not None and now > self._previous[0]:
            tps = round(max(0.0, (xacts - self._previous[1]) / (now - self._previous[0])), 2)
        self._previous = (now, int(xacts))
        total = (hits or 0) + (reads or 0)
        return {
            "status": "up", "host": self.settings.host, "port": self.settings.port,
            "database": self.settings.database, "latency_ms": round(latency_ms, 3),
            "connections": int(connections), "max_connections": int(max_connections),
            "size_bytes": int(size), "transactions_per_s": tps,
            "cache_hit_ratio": round(hits / total, 4) if total else None,
            "longest_query_s": round(float(longest), 3),
        }

    async def close(self) -> None:
        await self._drop_pool()


# -- the `database` stream's contract --------------------------------------------------------
class DatabaseData(PayloadModel):
    status: Literal["up", "down", "disabled", "unknown"]
    reason: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    latency_ms: float | None = None
    connections: int | None = None
    max_connections: int | None = None
    size_bytes: int | None = None
    transactions_per_s: float | None = None
    cache_hit_ratio: float | None = None
    longest_query_s: float | None = None


DATABASE = StreamContract(
    name="database", namespace="/omni_monitor", payload=DatabaseData, shared=True,
    summary="PostgreSQL: reachable or not, connections, size, transactions and cache hits.",
    switches=("backends.database.host",), feature="database_monitoring",
    interval=("updates.intervals.database_metrics",),
    fields=(
        FieldSpec("status", "status", "up, down, or disabled (no host configured)"),
        FieldSpec("reason", "text", "why it is down or disabled (never the password)"),
        FieldSpec("host", "text", "the server's host"),
        FieldSpec("port", "id", "the server's port"),
        FieldSpec("database", "text", "the database sampled"),
        FieldSpec("latency_ms", "ms", "round trip of SELECT 1", series=True),
        FieldSpec("connections", "count", "open connections to the server", series=True),
        FieldSpec("max_connections", "count", "the server's max_connections"),
        FieldSpec("size_bytes", "bytes", "size of the database", series=True),
        FieldSpec("transactions_per_s", "1/s", "commits and rollbacks per second", series=True),
        FieldSpec("cache_hit_ratio", "ratio", "blocks found in the buffer cache", series=True),
        FieldSpec("longest_query_s", "s", "age of the oldest running query", series=True),
    ),
)
