"""The history's benchmark: `python -m bench.history` (after `bash bench/run.sh --help` has
made ./.venv), three measurements, printed and written to bench/results/history-*.json.

1. write cost: the real app with every emitter on at the default intervals (fake backends on
   a local port, the machine's PostgreSQL as the database), history on and off in turns; the
   server's CPU % of a core, and the CPU the history's own work took (aggregator, writer).
2. query: 30 days of one host at the defaults seeded into SQLite and PostgreSQL, then
   `GET /api/history`'s reader for 24 h and for 30 days of the `system` stream at 1,500
   points (every series field, and the page's six): p50/p95 in ms.
3. storage: the bytes those 30 days take per host (SQLite file; PostgreSQL relations).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2

from aura_dashboard.app import STREAMS, create_app
from aura_dashboard.collectors.database import dsn_of
from aura_dashboard.config import load_config
from aura_dashboard.history import (BucketRow, HistoryReader, PostgresHistory, SqliteHistory, series_fields,
                                    tiers_of)
from aura_dashboard.web.keys import HISTORY, HUB, MAILBOXES

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PAGE_FIELDS = ["cpu.percent", "memory.percent", "network.*.bytes_recv_per_s", "network.*.bytes_sent_per_s",
               "disk_io.read_bytes_per_s", "disk_io.write_bytes_per_s"]


def settings_for(env: dict, extra: dict | None = None):
    environ = {"LOG_FILE": "", "AUDIT_STORE_PATH": ":memory:", **env}
    base = {"logging": {"file": {"enabled": False}, "level": "WARNING"}}
    return load_config(None, env_file=os.devnull, environ=environ,
                       extra_yaml={**base, **(extra or {})}).settings


def pg_database() -> str | None:
    name = f"aura_bench_{uuid.uuid4().hex[:8]}"
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3)
    except psycopg2.OperationalError:
        return None
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    conn.close()
    return name


def drop_database(name: str) -> None:
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True
    conn.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- 1. write cost ----------------------------------------------------------------------------
async def write_cost(seconds: float, rounds: int, database: str | None) -> dict:
    from aiohttp import web

    async def ok(request):
        return web.json_response({"ok": True, "models": [{"id": "llama", "status": "ready"}]})
    backend = web.Application()
    for path in ("/healthz", "/health", "/models"):
        backend.router.add_get(path, ok)
    backend_runner = web.AppRunner(backend)
    await backend_runner.setup()
    site = web.TCPSite(backend_runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]

    results: dict[str, list[float]] = {"on": [], "off": []}
    own: list[float] = []
    if True:
        url = f"http://127.0.0.1:{port}"
        env = {"MCP_BACKEND_URL": url, "ML_BACKEND_URL": url, "GOVERNANCE_URL": url, "COLLECT_METRICS": "true",
               "FEATURE_PERFORMANCE_METRICS": "true", "ENABLE_GPU_MONITORING": "true",
               "FEATURE_GPU_MONITORING": "true", "ENABLE_TEMPERATURE_MONITORING": "true",
               "FEATURE_TEMPERATURE_MONITORING": "true", "DATABASE_HOST": "127.0.0.1" if database else "",
               "DATABASE_NAME": database or "", "DATABASE_USER": "postgres"}
        for _ in range(rounds):
            for mode in ("off", "on"):
                with tempfile.TemporaryDirectory() as folder:
                    settings = settings_for({**env, "HISTORY_ENABLED": "true" if mode == "on" else "false",
                                             "HISTORY_STORE_PATH": f"{folder}/h.db"})
                    app = create_app(settings)
                    spent = [0.0]
                    if mode == "on":
                        writer = app[HISTORY].writer
                        box = next(b for b in app[MAILBOXES] if b.name == "history")
                        add, flush = box.listener, writer.flush

                        def timed_add(envelope, add=add):
                            started = time.thread_time()
                            add(envelope)
                            spent[0] += time.thread_time() - started
                        box.listener = timed_add

                        async def timed_flush(flush=flush):
                            started = cpu_s()
                            try:
                                return await flush()
                            finally:
                                spent[0] += cpu_s() - started
                        writer.flush = timed_flush
                    runner = web.AppRunner(app)
                    await runner.setup()
                    await web.TCPSite(runner, "127.0.0.1", 0).start()
                    await asyncio.sleep(5)  # warm up: every emitter's first samples
                    before, wall = cpu_s(), time.perf_counter()
                    spent[0] = 0.0
                    await asyncio.sleep(seconds)
                    used = (cpu_s() - before) / (time.perf_counter() - wall) * 100
                    results[mode].append(used)
                    if mode == "on":
                        own.append(spent[0] / seconds * 100)
                        published = app[HUB].published()
                    await runner.cleanup()
                    print(f"  write cost, history {mode}: {used:.2f} % of a core", flush=True)
    await backend_runner.cleanup()
    return {"seconds": seconds, "rounds": rounds, "cpu_percent_off": results["off"], "cpu_percent_on": results["on"],
            "median_off": statistics.median(results["off"]), "median_on": statistics.median(results["on"]),
            "added_percent": statistics.median(results["on"]) - statistics.median(results["off"]),
            "history_own_percent": statistics.median(own), "published_last_round": published}


# -- 2. and 3. query and storage ----------------------------------------------------------------
# A typical host at the defaults: the `system` stream with one disk path, three network
# interfaces and no cgroup limit, and the chat queue's status; what one host writes.
TYPICAL_SYSTEM = {
    "cpu": {"percent": 12.5, "count": 8, "load_avg": [0.5, 0.6, 0.7]},
    "memory": {"total": 16e9, "available": 8e9, "used": 7e9, "percent": 45.0, "swap_total": 2e9,
               "swap_used": 1e8, "swap_percent": 5.0},
    "disk": {"/": {"total": 5e11, "used": 2e11, "free": 3e11, "percent": 40.0}},
    "disk_io": {"read_bytes_per_s": 1.0, "write_bytes_per_s": 2.0, "read_count_per_s": 3.0, "write_count_per_s": 4.0},
    "network": {name: {"bytes_sent_per_s": 1.0, "bytes_recv_per_s": 2.0, "packets_sent_per_s": 3.0,
                       "packets_recv_per_s": 4.0} for name in ("lo", "eth0", "docker0")},
}
TYPICAL_STATUS = {"queue_depth": 0, "in_flight": 0, "completed": 0, "failed": 0, "dropped": 0,
                  "latency_p50_ms": 1.0, "latency_p95_ms": 2.0}


async def host_series() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """The series one typical host writes at the defaults."""
    out = []
    for contract in STREAMS:
        data = {"system": TYPICAL_SYSTEM, "status": TYPICAL_STATUS}.get(contract.name)
        if data is None:
            continue
        for field in series_fields(contract):
            for keys, _ in field.values(data):
                out.append((contract.name, "bench-host", field.path, keys))
    return out


async def seed(store, series, now: float, tiers, batch: int = 20_000) -> int:
    run = await store.begin_run("bench-host", now - 31 * 86400)
    rows: list[BucketRow] = []
    written = 0
    for tier in tiers:
        first = tier.start_of(now - tier.retention_s)
        for start in range(first, int(now), tier.resolution_s):
            for i, (stream, source, field, keys) in enumerate(series):
                value = 50 + 40 * ((start // tier.resolution_s + i) % 17) / 17 + (start % 7) * 0.123
                rows.append(BucketRow(tier.name, stream, source, field, keys, start,
                                      value - 3.5, value, value + 4.25, value + 0.5, 10 if tier.name == "fine" else 300))
            if len(rows) >= batch:
                await store.write(rows, run)
                written += len(rows)
                rows = []
    await store.write(rows, run)
    return written + len(rows)


async def query_and_storage(queries: int, database: str | None, only: set[str] | None = None) -> dict:
    settings = settings_for({})
    tiers = tiers_of(settings.history)
    series = await host_series()
    now = time.time()
    out: dict = {"series_per_host": len(series)}
    stores = {}
    folder = tempfile.mkdtemp(prefix="aura-bench-history-")
    stores["sqlite"] = SqliteHistory(f"{folder}/history.db")
    if database:
        db = settings_for({"DATABASE_HOST": "127.0.0.1", "DATABASE_NAME": database,
                           "DATABASE_USER": "postgres"}).backends.database
        stores["postgres"] = PostgresHistory(dsn_of(db, 5))
    for name, store in stores.items():
        if only and name not in only:
            continue
        await store.open()
        started = time.perf_counter()
        rows = await seed(store, series, now, tiers)
        seeded_s = time.perf_counter() - started
        if name == "sqlite":  # as in steady state, where the WAL is checkpointed every 1,000 pages
            await store.close()
            checkpoint = __import__("sqlite3").connect(f"{folder}/history.db")
            checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            checkpoint.close()
            await store.open()
        now = time.time()  # the reader's clock: the range ends now

        async def live(stream):
            return []
        reader = HistoryReader({c.name: c for c in STREAMS}, store, tiers, max_points=1500, live=live,
                               own_source="bench-host")
        result = {"rows": rows, "seed_s": round(seeded_s, 1)}
        for label, span in (("24h", 86400), ("30d", 30 * 86400)):
            for fields_label, fields in (("all", None), ("page", PAGE_FIELDS)):
                timings = []
                for _ in range(queries):
                    t0 = time.perf_counter()
                    answer = await reader.read("system", now - span, now, fields=fields)
                    timings.append((time.perf_counter() - t0) * 1000)
                timings.sort()
                result[f"{label}_{fields_label}"] = {
                    "tier": answer["tier"], "step": answer["step"], "points": len(answer["t"]),
                    "series": len(answer["fields"]), "p50_ms": round(timings[len(timings) // 2], 2),
                    "p95_ms": round(timings[int(len(timings) * 0.95) - 1], 2)}
                print(f"  {name} {label} {fields_label}: {result[f'{label}_{fields_label}']}", flush=True)
        if name == "sqlite":
            await store.close()
            conn = __import__("sqlite3").connect(f"{folder}/history.db")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
            conn.close()
            result["bytes"] = sum(p.stat().st_size for p in Path(folder).glob("history.db*"))
        else:
            conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=database)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("VACUUM ANALYZE")
                cur.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                            "WHERE c.relname LIKE 'aura_history_%' AND c.relkind = 'r'")
                result["bytes"] = int(cur.fetchone()[0])
            conn.close()
            await store.close()
        result["mb"] = round(result["bytes"] / 1e6, 1)
        print(f"  {name}: {rows} buckets, {result['mb']} MB for 30 days of one host", flush=True)
        out[name] = result
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.split("\n")[0])
    p.add_argument("--write-seconds", type=float, default=60.0, help="each write-cost window")
    p.add_argument("--rounds", type=int, default=2, help="write-cost windows, history on and off in turns")
    p.add_argument("--queries", type=int, default=40, help="queries per measurement")
    p.add_argument("--skip-write", action="store_true")
    p.add_argument("--stores", default="sqlite,postgres", help="stores for the query and storage measurements")
    args = p.parse_args()
    database = pg_database()
    if database is None:
        print("the machine's PostgreSQL (127.0.0.1:5432) is not reachable: SQLite only")
    results = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "load_before": os.getloadavg(), "cpus": os.cpu_count()}
    try:
        print("query and storage", flush=True)
        results["query"] = asyncio.run(query_and_storage(args.queries, database, set(args.stores.split(","))))
        if not args.skip_write:
            print("write cost", flush=True)
            results["write"] = asyncio.run(write_cost(args.write_seconds, args.rounds, database))
    finally:
        if database:
            drop_database(database)
    results["load_after"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"history-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
