"""The dashboard as the benchmark runs it: the real app, plus POST /bench/publish to drive it.

`python -m bench.dashboard_server PORT --variant fast|nodeflate|stock --profile fanout|idle
[--queue redis://... --cluster NAME --instance NAME]` (with --queue: one instance of a cluster)
- `fanout`: only the benchmark's publisher pushes (on the `alerts` stream, batching off), so
  a delivery is one envelope; `batched`: the default batched path (`batch_updates` on), the
  publisher round-robin on the streams it is given (`system`, `backends`, `alerts`), whose own
  emitters are quiet; `idle`: the shipped configuration with every emitter on.
- variants: `stock` is python-socketio's own broadcast with permessage-deflate accepted (the
  code before issue 9), `nodeflate` the same without deflate, `fast` the broadcast fast path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from aiohttp import web

from aura_dashboard.app import create_app
from aura_dashboard.cli import LISTEN_BACKLOG
from aura_dashboard.realtime.broadcast import FastBroadcaster
from aura_dashboard.web.keys import BACKLOG_WATCH, HUB, SIO
from aura_dashboard.config import load_config

FANOUT = {"updates": {"batch_updates": False},
          "monitoring": {"system": {"enabled": False}},
          "health_checks": {"enabled": False}}
# The security settings a benchmark needs, set explicitly (and printed by `python -m bench`):
# every client connects from 127.0.0.1, and the REST rate limit counts each new Engine.IO
# session as a request (burst 50), so with it on only about 57 of 1,000 clients get in.
BENCH_SECURITY = {"api_key_enabled": False, "rate_limiting": {"enabled": False}}
# And the slow-consumer cut-off: at `max` rate a long-polling client legitimately has more than
# the shipped 1,000 packets waiting between two polls (Node has no such cut-off).
BENCH_LIMITS = {"websocket": {"max_client_backlog": 1_000_000}}
# The default (batched) path: `batch_updates` on at the shipped window, several streams on (their
# own emitters quiet, so that every envelope is the benchmark's), health checks on for `backends`.
BATCHED = {"updates": {"batch_updates": True,
                       "intervals": {name: 600000 for name in ("system_metrics", "chat_status", "model_status",
                                                               "governance_data", "database_metrics")}},
           "backends": {name: {"health_check_interval_ms": 600000} for name in ("mcp", "ml", "governance")},
           "monitoring": {"system": {"enabled": True}}}
IDLE_ENV = {"ENABLE_GPU_MONITORING": "true", "ENABLE_TEMPERATURE_MONITORING": "true",
            "FEATURE_GPU_MONITORING": "true", "FEATURE_TEMPERATURE_MONITORING": "true"}


def settings_for(variant: str, profile: str, *, shipped_security: bool = False, queue: str = "",
                 cluster: str = "aura", instance: str = ""):
    extra: dict = {"logging": {"file": {"enabled": False}}, "dashboard": {"debug": False}}
    if not shipped_security:
        extra["security"] = BENCH_SECURITY
        extra.update(BENCH_LIMITS)
    if profile == "fanout":
        extra.update(FANOUT)
    elif profile == "batched":
        extra.update(BATCHED)
    extra.setdefault("updates", {})["websocket_compression"] = variant == "stock"
    env = {"LOG_FILE": "", "DATABASE_HOST": "", "LOG_LEVEL": "WARNING",
           "MESSAGE_QUEUE_URL": queue, "DASHBOARD_CLUSTER": cluster, "DASHBOARD_INSTANCE": instance,
           **(IDLE_ENV if profile == "idle" else {})}
    return load_config(None, env_file=os.devnull, environ=env, extra_yaml=extra).settings


async def publish(request: web.Request) -> web.Response:
    spec = await request.json()
    hub = request.app[HUB]
    rate, seconds, pad = float(spec["rate"]), float(spec["seconds"]), "x" * int(spec["bytes"])
    streams = spec.get("streams") or ["alerts"]  # published round-robin
    per_stream = dict.fromkeys(streams, 0)
    start = time.time()
    n = 0
    took: list[float] = []
    while time.time() - start < seconds:
        t0 = time.perf_counter()
        stream = streams[n % len(streams)]
        await hub.publish(stream, {"n": n, "pad": pad})  # ts = now, inside the envelope
        per_stream[stream] += 1
        took.append(time.perf_counter() - t0)
        n += 1
        if rate > 0:
            await asyncio.sleep(max(0.0, start + n / rate - time.time()))
        else:
            await asyncio.sleep(0)  # as fast as possible, letting the connections' writers run
    took.sort()
    if hub.batch_interval_s:
        await hub.flush()
    return web.json_response({"published": n, "per_stream": per_stream, "publish_ms_p50": round(took[len(took) // 2] * 1000, 2),
                              "publish_ms_p99": round(took[int(len(took) * 0.99)] * 1000, 2)})


async def state(request: web.Request) -> web.Response:
    """The server's view, for a refusal's message: Engine.IO sessions and packets still queued."""
    eio = request.app[SIO].eio
    sockets = list(eio.sockets.values())
    queued = [s.queue.qsize() for s in sockets]
    broadcaster = request.app[HUB].broadcaster
    return web.json_response({"broadcaster": type(broadcaster).__name__,
                              "fast_deliveries": getattr(broadcaster, "fast_deliveries", 0),
                              "stock_deliveries": getattr(broadcaster, "stock_deliveries", 0),
                              "from_queue": getattr(broadcaster, "from_queue", None),"sessions": len(sockets), "closed": sum(1 for s in sockets if s.closed),
                              "queued_packets": sum(queued), "max_queued": max(queued, default=0),
                              "polling": sum(1 for s in sockets if not s.upgraded),
                              "slow_consumers_cut_off": request.app[BACKLOG_WATCH].cut_off})


_baseline: list = []


async def memory(request: web.Request) -> web.Response:
    """With PYTHONTRACEMALLOC set: POST takes the baseline, GET ?n=CLIENTS the growth since, per
    allocation site (bytes per client), the largest first."""
    import tracemalloc
    if not tracemalloc.is_tracing():
        return web.json_response({"error": "start the server with PYTHONTRACEMALLOC=N"}, status=400)
    if request.method == "POST":
        _baseline[:] = [tracemalloc.take_snapshot()]
        return web.json_response({"ok": True})
    n = int(request.query.get("n", "1"))
    diff = tracemalloc.take_snapshot().compare_to(_baseline[0], "traceback")
    total = sum(d.size_diff for d in diff)
    rows = []
    for d in diff[:25]:
        frames = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in d.traceback][-3:]
        rows.append({"bytes_per_client": round(d.size_diff / n), "count_per_client": round(d.count_diff / n, 2),
                     "where": frames})
    # Per owner: the innermost frame outside the standard library (whose code made the allocation).
    owners: dict[str, int] = {}
    sites: dict[str, list[int]] = {}  # the innermost frame outside the stdlib, file:line
    own: list[dict] = []  # the dashboard's own sites
    for d in diff:
        owner, site = "stdlib", "stdlib"
        for frame in reversed(d.traceback):  # innermost first
            path = frame.filename
            if "site-packages/" in path:
                owner = path.split("site-packages/")[-1].split("/")[0]
            elif "/aura_dashboard/" in path or "/bench/" in path:
                owner = "aura_dashboard" if "/aura_dashboard/" in path else "bench"
            else:
                continue
            site = f"{path.split('site-packages/')[-1].split('/aura_dashboard/')[-1]}:{frame.lineno}"
            break
        owners[owner] = owners.get(owner, 0) + d.size_diff
        totals = sites.setdefault(site, [0, 0])
        totals[0] += d.size_diff
        totals[1] += d.count_diff
        if owner == "aura_dashboard" and abs(d.size_diff) >= 16 * n:
            own.append({"bytes_per_client": round(d.size_diff / n), "count_per_client": round(d.count_diff / n, 2),
                        "where": [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in d.traceback][-3:]})
    by_owner = {k: round(v / n) for k, v in sorted(owners.items(), key=lambda kv: -kv[1]) if abs(v) >= 16 * n}
    by_site = [{"site": site, "bytes_per_client": round(size / n), "count_per_client": round(count / n, 2)}
               for site, (size, count) in sorted(sites.items(), key=lambda kv: -kv[1][0]) if abs(size) >= 16 * n]
    return web.json_response({"total_bytes_per_client": round(total / n), "by_owner": by_owner, "top": rows,
                              "own": own, "by_site": by_site})


async def ping(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--variant", choices=["fast", "nodeflate", "stock"], default="fast")
    parser.add_argument("--profile", choices=["fanout", "batched", "idle"], default="fanout")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (when installed)")
    parser.add_argument("--shipped-security", action="store_true",
                        help="keep the shipped security settings (rate limit on) instead of BENCH_SECURITY")
    parser.add_argument("--queue", default="", help="MESSAGE_QUEUE_URL: one instance of a cluster on this broker")
    parser.add_argument("--cluster", default="aura", help="DASHBOARD_CLUSTER (with --queue)")
    parser.add_argument("--instance", default="", help="DASHBOARD_INSTANCE (with --queue)")
    args = parser.parse_args()
    app = create_app(settings_for(args.variant, args.profile, shipped_security=args.shipped_security,
                                  queue=args.queue, cluster=args.cluster, instance=args.instance))
    if isinstance(app[HUB].broadcaster, FastBroadcaster):
        app[HUB].broadcaster.enabled = args.variant == "fast"
    if args.profile == "batched":
        # The benchmark's envelopes are padding, not samples: the panels that follow these
        # streams (alert rules on `system` and `backends`) are not what is measured.
        for stream in ("alerts", "system", "backends"):
            signal = app[HUB].published_signal(stream)
            for listener in list(signal._listeners):
                signal.disconnect(listener)
    app.router.add_post("/bench/publish", publish)
    app.router.add_get("/bench/ping", ping)
    app.router.add_get("/bench/state", state)
    app.router.add_route("*", "/bench/tracemalloc", memory)
    loop = None
    if args.uvloop:
        import uvloop
        loop = uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=args.port, print=lambda *_: print("listening", flush=True),
                backlog=LISTEN_BACKLOG,
                access_log=None, loop=loop)


if __name__ == "__main__":
    main()
