"""The durable audit log: every entry lands in an embedded SQLite file first, then in
PostgreSQL when it is configured and reachable.

Writing to SQLite first means nothing audited is lost while PostgreSQL is down: entries wait
there (`synced = 0`) and are copied in order when it returns. Each entry has a unique `uid`
and PostgreSQL ignores a `uid` it already holds, so a copy interrupted half-way and retried
never doubles an entry. SQLite calls run in a worker thread (one at a time, behind a lock).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiopg

from ..collectors.database import close_pool
from ..config import FeatureChange
from ..contract import FieldSpec, PayloadModel, StreamContract
from ..tasks import stop_if_cancelled

log = logging.getLogger(__name__)

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL UNIQUE,
    ts REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS audit_unsynced ON audit (synced, id);
CREATE INDEX IF NOT EXISTS audit_newest ON audit (ts, uid);
"""
_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS aura_audit (
    uid TEXT PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail JSONB NOT NULL,
    written_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS aura_audit_newest ON aura_audit (ts DESC, uid DESC)
"""
SYNC_BATCH = 500
READ_TIMEOUT_S = 3.0
_CURSOR_SEPARATOR = "~"


def make_cursor(entry: dict[str, Any]) -> str:
    """The paging cursor after `entry`: its time and id (opaque to clients)."""
    return f"{entry['ts']!r}{_CURSOR_SEPARATOR}{entry['id']}"


def parse_cursor(cursor: str | None) -> tuple[float, str] | None:
    if cursor is None:
        return None
    ts, sep, uid = cursor.partition(_CURSOR_SEPARATOR)
    try:
        value = float(ts)
    except ValueError:
        value = None
    if not sep or value is None or not uid.isalnum() or len(uid) > 64:
        raise ValueError(f"before: {cursor[:80]!r} is not a cursor this API gave (next_before)")
    return value, uid
RETENTION_INTERVAL_S = 3600.0
AUTH_WINDOW_S = 60.0
MAX_AUTH_WINDOWS = 10_000
MAX_TARGETS = 10


class SqliteAudit:
    """The embedded store (blocking calls; used from a worker thread)."""

    def __init__(self, path: str):
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SQLITE_SCHEMA)
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> int:
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO audit (uid, ts, actor, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (entry["uid"], entry["ts"], entry["actor"], entry["action"], entry["target"],
                 json.dumps(entry["detail"])))
            return cur.lastrowid

    def unsynced(self, limit: int) -> list[tuple]:
        with self._lock:
            return self._conn.execute(
                "SELECT id, uid, ts, actor, action, target, detail FROM audit WHERE synced = 0 "
                "ORDER BY id LIMIT ?", (limit,)).fetchall()

    def mark_synced(self, ids: list[int]) -> None:
        with self._lock:
            self._conn.executemany("UPDATE audit SET synced = 1 WHERE id = ?", [(i,) for i in ids])

    def update_detail(self, uid: str, detail: dict[str, Any]) -> None:
        """A new detail for an entry (an aggregate that grew); copied to PostgreSQL again."""
        with self._lock:
            self._conn.execute("UPDATE audit SET detail = ?, synced = 0 WHERE uid = ?", (json.dumps(detail), uid))

    def prune(self, before_ts: float, max_rows: int) -> int:
        """Delete entries older than `before_ts` and all but the newest `max_rows`; how many."""
        with self._lock:
            old = self._conn.execute("DELETE FROM audit WHERE ts < ?", (before_ts,)).rowcount
            over = self._conn.execute(
                "DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (max_rows,)).rowcount
        return old + over

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM audit").fetchone()[0]

    def pending(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM audit WHERE synced = 0").fetchone()[0]

    def recent(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, uid, ts, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?",
                (limit,)).fetchall()
        return [_row(row) for row in rows]

    def page(self, limit: int, before: tuple[float, str] | None, *, unsynced_only: bool = False
             ) -> list[dict[str, Any]]:
        """Up to `limit` entries older than `before` (ts, uid), newest first."""
        where, args = [], []
        if before is not None:
            where.append("(ts < ? OR (ts = ? AND uid < ?))")
            args += [before[0], before[0], before[1]]
        if unsynced_only:
            where.append("synced = 0")
        sql = ("SELECT id, uid, ts, actor, action, target, detail FROM audit"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY ts DESC, uid DESC LIMIT ?")
        with self._lock:
            rows = self._conn.execute(sql, (*args, limit)).fetchall()
        return [_row(row) for row in rows]

    def summary(self, since_ts: float) -> dict[str, Any]:
        with self._lock:
            counts = dict(self._conn.execute(
                "SELECT action, count(*) FROM audit WHERE ts >= ? GROUP BY action", (since_ts,)).fetchall())
            last = self._conn.execute(
                "SELECT id, uid, ts, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        return {"last_hour": counts, "last": _row(last) if last else None}

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _row(row: tuple) -> dict[str, Any]:
    _, uid, ts, actor, action, target, detail = row
    return {"id": uid, "ts": ts, "actor": actor, "action": action, "target": target,
            "detail": json.loads(detail) if isinstance(detail, str) else detail}


class AuditStore:
    """`await record(action, actor, target, detail)`; `recent(limit)`; copies to PostgreSQL."""

    def __init__(self, sqlite_path: str, *, postgres_dsn: str | None = None,
                 publish: Callable[[dict[str, Any]], Awaitable[Any]] | None = None,
                 clock: Callable[[], float] = time.time, sync_interval_s: float = 2.0,
                 retention_days: float = 90, max_rows: int = 1_000_000,
                 retention_interval_s: float = RETENTION_INTERVAL_S):
        self.local = SqliteAudit(sqlite_path)
        self.retention_s = retention_days * 86_400
        self.max_rows = max_rows
        self.retention_interval_s = retention_interval_s
        # Failed authentications of the current minute, per address: one entry each, its count growing.
        self._auth_windows: OrderedDict[str, tuple[float, str, dict[str, Any]]] = OrderedDict()
        self.postgres_dsn = postgres_dsn
        self.publish = publish
        self.sync_interval_s = sync_interval_s
        self._clock = clock
        self._wake = asyncio.Event()
        self._pool: aiopg.Pool | None = None
        self._read_pool: aiopg.Pool | None = None
        self.postgres_status = "disabled" if not postgres_dsn else "unknown"

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def record(self, action: str, actor: str, target: str, detail: dict | None = None) -> dict[str, Any]:
        entry = {"uid": uuid.uuid4().hex, "ts": self._clock(), "actor": actor, "action": action,
                 "target": target, "detail": detail or {}}
        await self._run(self.local.add, entry)
        public = {"id": entry["uid"], **{k: entry[k] for k in ("ts", "actor", "action", "target", "detail")}}
        if self.publish is not None:
            try:
                await self.publish(public)
            except Exception:
                log.exception("audit entry not published")
        self._wake.set()
        return public

    # -- what is audited (each connected by the composition root, through a mailbox) -------
    async def record_flag_change(self, change: FeatureChange) -> None:
        if not change.remote:  # a change synced from another instance was audited there
            await self.record("feature_toggled", change.actor, f"features.{change.flag}",
                              {"old": change.old, "new": change.new, "reset": change.reset})

    async def record_alert(self, alert: dict[str, Any]) -> None:
        await self.record(f"alert_{alert['state']}", "system", alert["id"],
                          {"kind": alert["kind"], "value": alert.get("value"), "message": alert.get("message")})

    async def record_security_event(self, event: dict[str, Any]) -> None:
        """Failed authentications (already rate-limited per address) become one entry per
        address per minute: the first one is written at once, later ones of that minute add to
        its `count` (and `targets`, at most 10) instead of adding rows."""
        if event["action"] != "auth_failed":
            await self.record(event["action"], event["actor"], event["target"], event.get("detail"))
            return
        actor, now = event["actor"], self._clock()
        detail = dict(event.get("detail") or {})
        count = 1 + int(detail.pop("suppressed", 0) or 0)
        window = self._auth_windows.get(actor)
        if window is not None and now - window[0] < AUTH_WINDOW_S:
            _, uid, aggregate = window
            aggregate["count"] += count
            if event["target"] not in aggregate["targets"] and len(aggregate["targets"]) < MAX_TARGETS:
                aggregate["targets"].append(event["target"])
            await self._run(self.local.update_detail, uid, aggregate)
            self._wake.set()
            return
        aggregate = {**detail, "count": count, "window_s": AUTH_WINDOW_S, "targets": [event["target"]]}
        entry = await self.record("auth_failed", actor, event["target"], aggregate)
        self._auth_windows.pop(actor, None)
        self._auth_windows[actor] = (now, entry["id"], aggregate)
        while len(self._auth_windows) > MAX_AUTH_WINDOWS:
            self._auth_windows.popitem(last=False)

    # -- retention: age and row count, in SQLite and PostgreSQL ------------------------------
    async def prune_once(self) -> int:
        """Delete entries older than the retention and past the row cap; how many (SQLite)."""
        cutoff = self._clock() - self.retention_s
        removed = await self._run(self.local.prune, cutoff, self.max_rows)
        if self.postgres_dsn and self._pool is not None:
            async with self._pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("DELETE FROM aura_audit WHERE ts < %s", (cutoff,))
                await cur.execute("DELETE FROM aura_audit WHERE uid IN (SELECT uid FROM aura_audit "
                                  "ORDER BY ts DESC, uid DESC OFFSET %s)", (self.max_rows,))
        if removed:
            log.info("audit log: %d entries past the retention removed", removed)
        return removed

    async def run_retention(self) -> None:
        while True:
            stop_if_cancelled()
            try:
                async with asyncio.timeout(300):
                    await self.prune_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("audit retention failed: %s", exc)
            await asyncio.sleep(self.retention_interval_s)

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        return await self._run(self.local.recent, limit)

    async def page(self, limit: int, before: str | None) -> dict[str, Any]:
        """One page of the log, newest first: `{"entries", "limit", "more", "next_before",
        "source"}`. From PostgreSQL (every instance's entries, plus this one's not yet copied)
        when it is configured and answers, else from the local file (`source: "local"`).

        The cursor is the last entry's (ts, id), so a page never repeats or skips an entry
        written meanwhile; raises ValueError for a cursor this method did not make.
        """
        after = parse_cursor(before)
        source, rows = "local", None
        if self.postgres_dsn and self.postgres_status != "down":
            try:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    rows = await self._postgres_page(limit + 1, after)
                source = "postgres"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("audit log: reading PostgreSQL failed, answering from %s: %s",
                            self.local.path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                await self._drop_read_pool()
                rows = None
        if rows is None:
            rows = await self._run(lambda: self.local.page(limit + 1, after))
        more = len(rows) > limit
        rows = rows[:limit]
        return {"entries": rows, "limit": limit, "more": more,
                "next_before": make_cursor(rows[-1]) if more else None, "source": source}

    async def _postgres_page(self, limit: int, after: tuple[float, str] | None) -> list[dict[str, Any]]:
        if self._read_pool is None:
            self._read_pool = await aiopg.create_pool(self.postgres_dsn, minsize=0, maxsize=2,
                                                      timeout=READ_TIMEOUT_S)
            async with self._read_pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute(_PG_SCHEMA)
        where, args = "", []
        if after is not None:
            where, args = "WHERE (ts, uid) < (%s, %s)", [after[0], after[1]]
        async with self._read_pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT 0, uid, ts, actor, action, target, detail FROM aura_audit "
                              f"{where} ORDER BY ts DESC, uid DESC LIMIT %s", (*args, limit))
            shared = [_row(row) for row in await cur.fetchall()]
        pending = await self._run(lambda: self.local.page(limit, after, unsynced_only=True))
        merged = {e["id"]: e for e in shared + pending}
        return sorted(merged.values(), key=lambda e: (e["ts"], e["id"]), reverse=True)[:limit]

    async def _drop_read_pool(self) -> None:
        pool, self._read_pool = self._read_pool, None
        await close_pool(pool)

    async def summary(self, window_s: float = 3600) -> dict[str, Any]:
        data = await self._run(self.local.summary, self._clock() - window_s)
        data["pending_to_postgres"] = await self._run(self.local.pending)
        data["postgres"] = self.postgres_status
        return data

    # -- copying to PostgreSQL -----------------------------------------------------------
    async def sync_once(self) -> int:
        """Copy waiting entries to PostgreSQL in order; returns how many. Raises when it is down."""
        if not self.postgres_dsn:
            return 0
        if self._pool is None:
            self._pool = await aiopg.create_pool(self.postgres_dsn, minsize=0, maxsize=1, timeout=10)
            async with self._pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute(_PG_SCHEMA)
        copied = 0
        while rows := await self._run(self.local.unsynced, SYNC_BATCH):
            async with self._pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("BEGIN")
                for _, uid, ts, actor, action, target, detail in rows:
                    await cur.execute(
                        "INSERT INTO aura_audit (uid, ts, actor, action, target, detail) "
                        "VALUES (%s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (uid) DO UPDATE SET detail = EXCLUDED.detail",
                        (uid, ts, actor, action, target, detail))
                await cur.execute("COMMIT")
            await self._run(self.local.mark_synced, [row[0] for row in rows])
            copied += len(rows)
        return copied

    async def run_sync(self) -> None:
        """Copy to PostgreSQL whenever entries are written (and every interval), until cancelled."""
        while True:
            stop_if_cancelled()
            try:
                async with asyncio.timeout(30):
                    copied = await self.sync_once()
                if self.postgres_status != "up" and self.postgres_dsn:
                    log.info("audit log: PostgreSQL reachable again")
                self.postgres_status = "up" if self.postgres_dsn else "disabled"
                if copied:
                    log.debug("audit log: %d entries copied to PostgreSQL", copied)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.postgres_status != "down":
                    log.warning("audit log: PostgreSQL unavailable, entries wait in %s: %s",
                                self.local.path, str(exc).splitlines()[0] if str(exc) else exc)
                self.postgres_status = "down"
                await self._drop_pool()
            self._wake.clear()
            try:
                async with asyncio.timeout(self.sync_interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _drop_pool(self) -> None:
        pool, self._pool = self._pool, None
        await close_pool(pool)

    async def close(self) -> None:
        await self._drop_pool()
        await self._drop_read_pool()
        await self._run(self.local.close)


# -- the `audit` stream's contract -----------------------------------------------------------
class AuditEntry(PayloadModel):
    id: str
    ts: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


AUDIT = StreamContract(
    name="audit", namespace="/governance", payload=AuditEntry,
    summary="One entry per audited action: flags toggled, alerts fired and resolved, failed authentications.",
    switches=("panels.governance.enabled", "panels.governance.show_audit_logs"), feature="governance_panel",
    fields=(
        FieldSpec("id", "id", "the entry's unique id"),
        FieldSpec("ts", "unix_time", "when it happened"),
        FieldSpec("actor", "text", "who did it: an API key's id, a client address, or system"),
        FieldSpec("action", "status", "feature_toggled, alert_firing, alert_resolved, auth_failed"),
        FieldSpec("target", "text", "what it was done to"),
        FieldSpec("detail", "object", "the action's particulars"),
    ),
)
