"""The benchmark: `python -m bench` (or `bash bench/run.sh`), each scenario beside its baseline.

1. fan-out over WebSocket, 2. the same over long-polling: the dashboard (each `--variants`)
   and a minimal Node socket.io 4 server, driven by the same Node client processes (official
   socket.io-client); deliveries/s, server CPU-seconds per 10,000 deliveries, latency p50/p99.
3. idle cost: the dashboard with every emitter on and one subscribed client, against Glances
   in web mode at the same refresh fetched at 1 Hz: CPU % of a core and RSS.
4. collection cost: microseconds per `system` sample against the bare psutil calls it makes.
5. memory per client: RSS growth per 1,000 idle connected clients, WebSocket and polling.
6. the default (batched) path: `batch_updates` on, envelopes round-robin on 3 streams, clients
   split across 3 subscription sets; against Node sending each envelope as its own event.
7. a cluster: two dashboard instances on one Redis (`--redis`), clients split between them, the
   publisher on the first; CPU per delivery per instance against one fast dashboard process
   with every client, and against two Node socket.io instances joined by `@socket.io/redis-adapter`.
Ratios are against the baseline measured in the same run. Results also go to bench/results/.

The benchmark refuses to report on a failed setup: every client must connect (and subscribe,
where the scenario subscribes), and after draining every client must have received every
envelope published (deliveries == published x clients); otherwise it exits with status 1 and
says what failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bench" / "node"
RESULTS = ROOT / "bench" / "results"
OMNI = "/omni_monitor"
IDLE_STREAMS = ["system", "gpu", "temperature", "backends", "alerts"]
DRAIN_QUIET_S = float(os.environ.get("BENCH_DRAIN_QUIET_S", "15"))  # no progress this long: refused


class SetupFailed(RuntimeError):
    """The scenario's setup failed (clients refused, deliveries lost): no numbers are reported."""


def sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--scenarios", default="1,2,3,4,5,6,7", help="which scenarios to run (default: all)")
    p.add_argument("--cluster-clients", type=sizes, default=[1000],
                   help="scenario 7 sizes (split between the two instances)")
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
                   help="scenario 7's Redis (the instances' message queue)")
    p.add_argument("--cluster-variants", default="fast",
                   help="scenario 7's dashboard variants (nodeflate: python-socketio's own pub/sub delivery, "
                        "the code before the fast path behind a queue)")
    p.add_argument("--clients", type=sizes, default=[100, 1000], help="WebSocket fan-out sizes")
    p.add_argument("--polling-clients", type=sizes, default=[100], help="long-polling fan-out sizes")
    p.add_argument("--batched-clients", type=sizes, default=[1000],
                   help="scenario 6 sizes (batched default path, 3 subscription sets)")
    p.add_argument("--batched-high-rate", type=float, default=200.0,
                   help="scenario 6's second rate, envelopes/s (instead of `max`)")
    p.add_argument("--rate", type=float, default=10.0, help="fixed publish rate, envelopes/s")
    p.add_argument("--seconds", type=float, default=5.0, help="publishing time per measurement")
    p.add_argument("--bytes", type=int, default=900, help="padding, making a ~1 KB envelope")
    p.add_argument("--idle-seconds", type=float, default=60.0, help="idle-cost window")
    p.add_argument("--idle-clients", type=sizes, default=[1000, 10000], help="scenario 5 WebSocket sizes")
    p.add_argument("--idle-polling-clients", type=sizes, default=[1000], help="scenario 5 polling sizes")
    p.add_argument("--variants", default="stock,fast",
                   help="dashboard variants: stock (python-socketio broadcast, deflate accepted; "
                        "the code before issue 9), nodeflate, fast")
    p.add_argument("--client-procs", type=int, default=2, help="Node client processes")
    p.add_argument("--uvloop", action="store_true",
                   help="run the dashboard's non-stock variants on uvloop (as `aura-dashboard` does when installed)")
    p.add_argument("--profile", action="store_true",
                   help="py-spy the fast dashboard during max-rate fan-out at the largest size")
    p.add_argument("--no-npm", action="store_true", help="skip `npm ci` in bench/node")
    p.add_argument("--results", type=Path, default=RESULTS, help="where the results file goes")
    p.add_argument("--shipped-security", action="store_true",
                   help="keep the dashboard's shipped security settings (REST rate limit on: most clients "
                        "are refused, and the benchmark says so and exits 1)")
    args = p.parse_args(argv)
    args.scenarios = {int(s) for s in args.scenarios.split(",")}
    args.variants = [v for v in args.variants.split(",") if v]
    return args


# -- the machine --------------------------------------------------------------------------
def machine() -> dict:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": model, "cores": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "node": node, "os": platform.platform(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- servers and clients --------------------------------------------------------------------
class Server:
    def __init__(self, name: str, argv: list[str], port: int):
        self.name, self.argv, self.port = name, argv, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.log = None
        self.ps: psutil.Process | None = None

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def log_tail(self, size: int = 2000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-size:]


@asynccontextmanager
async def server(kind: str, variant: str = "fast", profile: str = "fanout", uvloop: bool = False,
                 shipped_security: bool = False, cluster: tuple[str, str, str] | None = None,
                 start_timeout_s: float = 20.0):
    """`cluster`: (Redis URL, cluster name, instance name), one instance of a cluster.
    `start_timeout_s`: how long it may take to answer (a server under tracemalloc takes longer)."""
    port = free_port()
    if kind == "node":
        argv = ["node", str(NODE_DIR / "server.mjs"), str(port)] + (list(cluster[:2]) if cluster else [])
    else:
        argv = [sys.executable, "-m", "bench.dashboard_server", str(port), "--variant", variant,
                "--profile", profile] + (["--uvloop"] if uvloop and variant != "stock" else []) \
            + (["--shipped-security"] if shipped_security else []) \
            + (["--queue", cluster[0], "--cluster", cluster[1], "--instance", cluster[2]] if cluster else [])
    name = kind if kind == "node" else f"dashboard[{variant}]"
    srv = Server(f"{name}@{cluster[2]}" if cluster else name, argv, port)
    # The server's log goes to a file: a pipe nobody reads fills at 64 KiB and then blocks the
    # server on its next log line (a stall the bench then reported as lost deliveries).
    log_file = tempfile.TemporaryFile()
    srv.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log_file,
                                preexec_fn=raise_fd_limit)
    srv.log = log_file
    srv.ps = psutil.Process(srv.proc.pid)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(int(start_timeout_s * 10)):
                try:
                    async with http.get(srv.url + "/bench/ping") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if srv.proc.poll() is not None:
                    raise RuntimeError(f"{srv.name} exited: {srv.log_tail()}")
                await asyncio.sleep(0.1)
        try:
            yield srv
        except SetupFailed as exc:
            raise SetupFailed(f"{exc}\n  {srv.name}'s log ends with:\n{srv.log_tail()}") from None
    finally:
        srv.proc.terminate()
        try:
            srv.proc.wait(10)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            srv.proc.wait()
        log_file.close()


class Clients:
    """Node processes running bench/node/clients.mjs, the same driver for every server."""

    def __init__(self, procs: list[asyncio.subprocess.Process], count: int):
        self.procs = procs
        self.count = count  # the clients, every one connected (and subscribed) or the run stopped

    async def command(self, cmd: str) -> list[dict]:
        for p in self.procs:
            p.stdin.write(cmd.encode() + b"\n")
            await p.stdin.drain()
        if cmd != "report":
            return []
        return [json.loads(await asyncio.wait_for(p.stdout.readline(), 60)) for p in self.procs]

    async def report(self) -> dict:
        parts = await self.command("report")
        hist: dict[int, int] = {}
        for part in parts:
            for k, v in part["hist"].items():
                hist[int(k)] = hist.get(int(k), 0) + v
        bucket = parts[0]["bucket_ms"] if parts else 0.1
        return {"deliveries": sum(p["deliveries"] for p in parts),
                "connected": sum(p["connected"] for p in parts), "hist": hist, "bucket_ms": bucket,
                "p50_ms": percentile(hist, 0.5, bucket), "p99_ms": percentile(hist, 0.99, bucket)}


def percentile(hist: dict[int, int], p: float, bucket_ms: float) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    seen = 0
    for i in sorted(hist):
        seen += hist[i]
        if seen >= total * p:
            return round((i + 1) * bucket_ms, 1)
    return None


@asynccontextmanager
async def clients(srv: Server, n: int, transports: list[str], procs: int, subscribe=("alerts",)):
    namespace = "" if srv.name.startswith("node") else OMNI
    per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    started = []
    try:
        for count in per:
            if not count:
                continue
            spec = {"url": srv.url, "path": "/ws", "namespace": namespace, "transports": transports,
                    "clients": count, "subscribe": list(subscribe) if subscribe else None}
            started.append(await asyncio.create_subprocess_exec(
                "node", str(NODE_DIR / "clients.mjs"), json.dumps(spec), cwd=NODE_DIR,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                preexec_fn=raise_fd_limit, limit=2**24))
        ready = []
        for p in started:
            line = await asyncio.wait_for(p.stdout.readline(), 300)
            if not line:
                raise SetupFailed(f"a client driver exited before it was ready (status {await p.wait()})")
            ready.append(json.loads(line))
        failed = sum(r["failed"] for r in ready)
        connected = sum(r["connected"] for r in ready)
        subscribed = sum(r.get("subscribed", 0) for r in ready)
        refused = next((r["refused"] for r in ready if r.get("refused")), None)
        print(f"  {srv.name}: {connected} of {n} clients connected"
              + (f", {subscribed} subscribed to {list(subscribe)}" if subscribe else "")
              + (f" (first refusal: {refused})" if refused else ""), flush=True)
        if connected != n or (subscribe and subscribed != n):
            raise SetupFailed(f"{srv.name}: {connected} of {n} clients connected"
                              + (f", {subscribed} subscribed" if subscribe else "")
                              + f"; first refusal: {refused}")
        yield Clients(started, n), connected, failed
    finally:
        for p in started:
            if p.returncode is None:
                try:
                    p.stdin.write(b"exit\n")
                    await asyncio.wait_for(p.wait(), 10)
                except (asyncio.TimeoutError, ConnectionError):
                    p.kill()
                    await p.wait()


# -- scenarios 1 and 2: fan-out -----------------------------------------------------------
class Group:
    """Clients of one driver group and the streams they subscribed to."""

    def __init__(self, cl: "Clients", streams: tuple[str, ...]):
        self.cl, self.streams = cl, streams


async def measure_fanout(srv: Server, cl, rate: float, seconds: float, nbytes: int,
                         streams: tuple[str, ...] = ("alerts",)) -> dict:
    """One publishing run (round-robin on `streams`) to `cl`: a `Clients` subscribed to
    `alerts`, or a list of `Group`s each subscribed to its own set of streams."""
    groups = cl if isinstance(cl, list) else [Group(cl, ("alerts",))]
    for g in groups:
        await g.cl.command("reset")
    await asyncio.sleep(0.3)
    cpu0, t0 = srv.cpu(), time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds + 120)) as http:
        async with http.post(srv.url + "/bench/publish",
                             json={"rate": rate, "seconds": seconds, "bytes": nbytes,
                                   "streams": list(streams)}) as r:
            answer = await r.json()
            published = answer["published"]
    per_stream = answer.get("per_stream") or {"alerts": published}
    # Every client gets every envelope of each stream it subscribed to.
    expected = sum(g.cl.count * sum(per_stream.get(s, 0) for s in g.streams) for g in groups)
    count = sum(g.cl.count for g in groups)

    async def report() -> dict:
        parts = [await g.cl.report() for g in groups]
        hist: dict[int, int] = {}
        for part in parts:
            for k, v in part["hist"].items():
                hist[k] = hist.get(k, 0) + v
        return {"deliveries": sum(p["deliveries"] for p in parts),
                "connected": sum(p["connected"] for p in parts),
                "p50_ms": percentile(hist, 0.5, parts[0]["bucket_ms"]),
                "p99_ms": percentile(hist, 0.99, parts[0]["bucket_ms"])}

    # Then wait until the last envelope has drained to the clients: every one delivered, or no
    # progress for DRAIN_QUIET_S (then the check below refuses the run; 15 s, since long-polling
    # clients at 500 were seen to wait over 10 s for a poll).
    last, last_change = -1, time.monotonic()
    while True:
        rep = await report()
        if rep["deliveries"] != last:
            last, last_change = rep["deliveries"], time.monotonic()
        if (last >= expected or time.monotonic() - last_change > DRAIN_QUIET_S
                or time.monotonic() - t0 > seconds + 120):
            break
        await asyncio.sleep(0.1)
    elapsed = last_change - t0
    cpu = srv.cpu() - cpu0
    d = rep["deliveries"]
    if d != expected or rep["connected"] != count:
        state = ""
        if not srv.name.startswith("node"):
            async with aiohttp.ClientSession() as http, http.get(srv.url + "/bench/state") as r:
                state = f"; the server's view: {await r.text()}"
        raise SetupFailed(f"{srv.name}: {d} deliveries after draining, expected {expected} "
                          f"({per_stream} published to {count} clients by their subscriptions); "
                          f"{rep['connected']} clients still connected{state}")
    return {"published": published, "deliveries": d,
            # the server's own time to hand one envelope to every client (to the kernel)
            "publish_ms_p50": answer.get("publish_ms_p50"), "publish_ms_p99": answer.get("publish_ms_p99"),
            "deliveries_per_s": round(d / elapsed) if elapsed > 0 else None,
            "cpu_s_per_10k": round(cpu / d * 10000, 3) if d else None,
            "p50_ms": rep["p50_ms"], "p99_ms": rep["p99_ms"],
            "connected": rep["connected"]}


async def fanout(args, transport: str, sizes_: list[int], title: str) -> list[dict]:
    rows = []
    for n in sizes_:
        for kind, variant in [("node", "")] + [("dashboard", v) for v in args.variants]:
            async with server(kind, variant or "fast", uvloop=args.uvloop,
                              shipped_security=args.shipped_security) as srv:
                async with clients(srv, n, [transport], args.client_procs) as (cl, connected, failed):
                    row = {"scenario": title, "server": srv.name, "clients": n, "connected": connected,
                           "subscribed": n, "failed": failed}
                    for mode, rate in (("rate", args.rate), ("max", 0.0)):
                        spy = None
                        if (args.profile and mode == "max" and variant == "fast"
                                and n == max(sizes_) and transport == "websocket"):
                            spy = start_profile(srv, args.seconds)
                        m = await measure_fanout(srv, cl, rate, args.seconds, args.bytes)
                        if spy:
                            row["profile"] = await finish_profile(*spy)
                        row[mode] = m
                    rows.append(row)
                    print_row(row)
    return rows


# -- scenario 6: the default (batched) path ----------------------------------------------------
BATCH_STREAMS = ("alerts", "system", "backends")
BATCH_SETS = (("alerts",), ("alerts", "system"), ("system", "backends"))


async def batched(args) -> list[dict]:
    """Batching on (the shipped default), envelopes round-robin on three streams, clients split
    across three subscription sets (one driver process each). Node's clients get the same
    envelopes as individual events; a delivery is one envelope either way."""
    rows = []
    for n in args.batched_clients:
        for kind in ("node", "dashboard"):
            async with server(kind, "fast", profile="batched", uvloop=args.uvloop,
                              shipped_security=args.shipped_security) as srv, AsyncExitStack() as stack:
                groups = []
                for i, streams in enumerate(BATCH_SETS):
                    count = n // len(BATCH_SETS) + (1 if i < n % len(BATCH_SETS) else 0)
                    cl, _, _ = await stack.enter_async_context(
                        clients(srv, count, ["websocket"], 1, subscribe=streams))
                    groups.append(Group(cl, streams))
                row = {"scenario": "batched", "server": srv.name, "clients": n, "connected": n, "subscribed": n,
                       "sets": [list(x) for x in BATCH_SETS], "streams": list(BATCH_STREAMS)}
                # No `max` here: with batching a publish is an append, so an unpaced publisher
                # queues thousands of envelopes per window (3 MB batches to every client, which
                # then miss their pings); a fixed higher rate instead.
                row["modes"] = ["rate", "high"]
                for mode, rate in (("rate", args.rate), ("high", args.batched_high_rate)):
                    row[mode] = await measure_fanout(srv, groups, rate, args.seconds, args.bytes,
                                                     streams=BATCH_STREAMS)
                rows.append(row)
                print_row(row)
    return rows


# -- scenario 7: two instances on one Redis ------------------------------------------------------
async def server_state(srv: Server) -> dict:
    async with aiohttp.ClientSession() as http, http.get(srv.url + "/bench/state") as r:
        return await r.json()


async def measure_cluster(instances: list[tuple[Server, Clients]], rate: float, seconds: float,
                          nbytes: int) -> dict:
    """One publishing run on the first instance; every instance's clients subscribed to `alerts`.
    CPU per delivery per instance: its CPU over the deliveries to its own clients."""
    for _, cl in instances:
        await cl.command("reset")
    await asyncio.sleep(0.3)
    cpu0 = [srv.cpu() for srv, _ in instances]
    t0 = time.monotonic()
    publisher = instances[0][0]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds + 120)) as http:
        async with http.post(publisher.url + "/bench/publish",
                             json={"rate": rate, "seconds": seconds, "bytes": nbytes, "streams": ["alerts"]}) as r:
            answer = await r.json()
    published = answer["published"]
    last, last_change = -1, time.monotonic()
    while True:
        reps = [await cl.report() for _, cl in instances]
        total = sum(rep["deliveries"] for rep in reps)
        if total != last:
            last, last_change = total, time.monotonic()
        if (total >= published * sum(cl.count for _, cl in instances)
                or time.monotonic() - last_change > DRAIN_QUIET_S or time.monotonic() - t0 > seconds + 120):
            break
        await asyncio.sleep(0.1)
    elapsed = last_change - t0
    per_instance = []
    for (srv, cl), rep, c0 in zip(instances, reps, cpu0):
        cpu = srv.cpu() - c0
        expected = published * cl.count
        if rep["deliveries"] != expected or rep["connected"] != cl.count:
            state = "" if srv.name.startswith("node") else f"; the server's view: {await server_state(srv)}"
            raise SetupFailed(f"{srv.name}: {rep['deliveries']} deliveries after draining, expected {expected} "
                              f"({published} published to its {cl.count} clients); {rep['connected']} "
                              f"clients still connected{state}")
        row = {"server": srv.name, "clients": cl.count, "deliveries": rep["deliveries"],
               "cpu_s_per_10k": round(cpu / rep["deliveries"] * 10000, 3) if rep["deliveries"] else None,
               "p50_ms": rep["p50_ms"], "p99_ms": rep["p99_ms"]}
        if not srv.name.startswith("node"):
            row["state"] = {k: v for k, v in (await server_state(srv)).items()
                            if k in ("broadcaster", "fast_deliveries", "stock_deliveries", "from_queue")}
        per_instance.append(row)
    hist: dict[int, int] = {}
    for rep in reps:
        for k, v in rep["hist"].items():
            hist[k] = hist.get(k, 0) + v
    d = sum(rep["deliveries"] for rep in reps)
    return {"published": published, "deliveries": d,
            "publish_ms_p50": answer.get("publish_ms_p50"), "publish_ms_p99": answer.get("publish_ms_p99"),
            "deliveries_per_s": round(d / elapsed) if elapsed > 0 else None,
            # the worst instance's CPU per delivery (the target is per instance)
            "cpu_s_per_10k": max(i["cpu_s_per_10k"] or 0 for i in per_instance),
            "p50_ms": percentile(hist, 0.5, reps[0]["bucket_ms"]), "p99_ms": percentile(hist, 0.99, reps[0]["bucket_ms"]),
            "instances": per_instance}


def redis_reachable(url: str) -> bool:
    import socket
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2):
            return True
    except OSError:
        return False


async def cluster(args) -> list[dict]:
    """One fast dashboard with every client (the single-process fast path), then two dashboard
    instances on one Redis and two Node instances with `@socket.io/redis-adapter`, clients split
    between the two, the publisher on the first. A cluster row's cpu_s_per_10k is its worst
    instance's."""
    if not redis_reachable(args.redis):
        raise SetupFailed(f"scenario 7 needs Redis at {args.redis} (--redis or BENCH_REDIS_URL)")
    rows = []
    for n in args.cluster_clients:
        async with server("dashboard", "fast", uvloop=args.uvloop, shipped_security=args.shipped_security) as srv:
            async with clients(srv, n, ["websocket"], args.client_procs) as (cl, connected, _):
                row = {"scenario": "cluster", "server": "dashboard[fast] x1", "clients": n, "connected": connected,
                       "subscribed": n}
                for mode, rate in (("rate", args.rate), ("max", 0.0)):
                    row[mode] = await measure_fanout(srv, cl, rate, args.seconds, args.bytes)
                rows.append(row)
                print_row(row)
        for kind, variant in [("node", "fast")] + [("dashboard", v) for v in args.cluster_variants.split(",") if v]:
            name = f"bench-{os.getpid()}-{time.monotonic_ns()}"
            async with AsyncExitStack() as stack:
                instances = []
                for i in range(2):
                    srv = await stack.enter_async_context(server(
                        kind, variant, uvloop=args.uvloop, shipped_security=args.shipped_security,
                        cluster=(args.redis, name, f"i{i}")))
                    count = n // 2 + (1 if i < n % 2 else 0)
                    cl, _, _ = await stack.enter_async_context(
                        clients(srv, count, ["websocket"], max(1, args.client_procs // 2)))
                    instances.append((srv, cl))
                await asyncio.sleep(1)  # every instance listening on the queue
                label = "node+redis-adapter x2" if kind == "node" else f"dashboard[{variant}]+redis x2"
                row = {"scenario": "cluster", "server": label, "clients": n, "connected": n, "subscribed": n}
                for mode, rate in (("rate", args.rate), ("max", 0.0)):
                    row[mode] = await measure_cluster(instances, rate, args.seconds, args.bytes)
                rows.append(row)
                print_row(row)
                for mode in ("rate", "max"):
                    for inst in row[mode]["instances"]:
                        print(f"    {mode:<4} {inst['server']:<24} clients={inst['clients']} "
                              f"cpu-s/10k={inst['cpu_s_per_10k']} p99={inst['p99_ms']}ms"
                              + (f" since start: {json.dumps(inst['state'])}" if "state" in inst else ""), flush=True)
            if kind == "dashboard":
                await clear_redis(args.redis, name)
    return rows


async def clear_redis(url: str, cluster_name: str) -> None:
    """The dashboard cluster's keys (`aura:NAME:*`), so the bench leaves Redis as it was."""
    import redis.asyncio as aioredis
    client = aioredis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(f"aura:{cluster_name}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def cluster_ratios(rows: list[dict]) -> list[str]:
    out = []
    for n in sorted({r["clients"] for r in rows}):
        by = {r["server"]: r for r in rows if r["clients"] == n}
        single, node = by.get("dashboard[fast] x1"), by.get("node+redis-adapter x2")
        for label, ours in by.items():
            if not (single and node) or not label.endswith("+redis x2"):
                continue
            for mode in ("rate", "max"):
                ratio = lambda a, c: round(a / c, 2) if a and c else None  # noqa: E731
                worst = ours[mode]["cpu_s_per_10k"]
                out.append(f"  {label:<26} clients={n:<6} {mode:<4} cpu/10k per instance (worst) "
                           f"x{ratio(worst, single[mode]['cpu_s_per_10k'])} of the single process (target <= 1.3), "
                           f"x{ratio(worst, node[mode]['cpu_s_per_10k'])} of node+redis-adapter (target <= 1); "
                           f"p99 x{ratio(ours[mode]['p99_ms'], node[mode]['p99_ms'])} of node's")
    return out


def start_profile(srv: Server, seconds: float):
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        print("  (py-spy is not installed: no profile)")
        return None
    out = RESULTS / f"profile-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    RESULTS.mkdir(exist_ok=True)
    proc = subprocess.Popen([spy, "record", "-p", str(srv.proc.pid), "-d", str(max(1, int(seconds))),
                             "-r", "200", "-f", "raw", "-o", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, out


async def finish_profile(proc: subprocess.Popen, out: Path) -> dict:
    while proc.poll() is None:
        await asyncio.sleep(0.2)
    if not out.exists():
        return {"error": proc.stderr.read().decode()[-500:]}
    leaf: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        total += int(count)
        top = stack.split(";")[-1]
        leaf[top] = leaf.get(top, 0) + int(count)
    top = sorted(leaf.items(), key=lambda kv: -kv[1])[:12]
    print(f"  py-spy, {total} samples, self time by function ({out.relative_to(ROOT)}):")
    for name, count in top:
        print(f"    {count / total * 100:5.1f}%  {name}")
    return {"samples": total, "file": str(out.relative_to(ROOT)),
            "self_percent": {name: round(count / total * 100, 1) for name, count in top}}


def print_row(row: dict) -> None:
    for mode in row.get("modes", ("rate", "max")):
        m = row[mode]
        print(f"  {row['scenario']:<10} {row['server']:<20} clients={row['clients']:<6} {mode:<4} "
              f"deliveries/s={m['deliveries_per_s']} cpu-s/10k={m['cpu_s_per_10k']} "
              f"p50={m['p50_ms']}ms p99={m['p99_ms']}ms "
              f"(server fan-out per envelope p50={m['publish_ms_p50']}ms p99={m['publish_ms_p99']}ms)", flush=True)


def fanout_ratios(rows: list[dict]) -> list[str]:
    out = []
    base = {(r["scenario"], r["clients"]): r for r in rows if r["server"] == "node"}
    for r in rows:
        b = base.get((r["scenario"], r["clients"]))
        if r["server"] == "node" or not b:
            continue
        for mode in r.get("modes", ("rate", "max")):
            m, bm = r[mode], b[mode]
            ratio = lambda a, c: round(a / c, 2) if a and c else None  # noqa: E731
            out.append(f"  {r['scenario']:<10} {r['server']:<20} clients={r['clients']:<6} {mode:<4} "
                       f"deliveries/s x{ratio(m['deliveries_per_s'], bm['deliveries_per_s'])} of node, "
                       f"cpu/10k x{ratio(m['cpu_s_per_10k'], bm['cpu_s_per_10k'])}, "
                       f"p99 x{ratio(m['p99_ms'], bm['p99_ms'])}")
    return out


# -- scenario 3: idle cost -------------------------------------------------------------------
def ensure_glances() -> str | None:
    exe = Path(sys.executable).parent / "glances"
    if exe.exists():
        return str(exe)
    found = shutil.which("glances")
    return found


async def sample_process(srv_ps: psutil.Process, seconds: float) -> dict:
    cpu0 = sum(srv_ps.cpu_times()[:2])
    await asyncio.sleep(seconds)
    cpu = sum(srv_ps.cpu_times()[:2]) - cpu0
    return {"cpu_percent": round(cpu / seconds * 100, 2), "rss_mib": round(srv_ps.memory_info().rss / 2**20, 1)}


async def idle(args) -> dict:
    result: dict = {}
    async with server("dashboard", "fast", profile="idle", uvloop=args.uvloop,
                      shipped_security=args.shipped_security) as srv:
        async with clients(srv, 1, ["websocket"], 1, subscribe=IDLE_STREAMS) as (cl, connected, _):
            await asyncio.sleep(3)
            result["dashboard"] = await sample_process(srv.ps, args.idle_seconds)
            result["dashboard"]["deliveries"] = (await cl.report())["deliveries"]
    exe = ensure_glances()
    if exe is None:
        result["glances"] = {"error": "glances is not installed (bench/run.sh installs glances[web])"}
        return result
    port = free_port()
    proc = subprocess.Popen([exe, "-w", "--disable-webui", "-t", "1", "--port", str(port),
                             "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ps = psutil.Process(proc.pid)
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/api/4/all"
            for _ in range(300):
                try:
                    async with http.get(url) as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"glances exited: {proc.stderr.read().decode()[-2000:]}")
                await asyncio.sleep(0.2)

            async def fetch_every_second():
                while True:
                    async with http.get(url) as r:
                        await r.read()
                    await asyncio.sleep(1)

            fetcher = asyncio.create_task(fetch_every_second())
            await asyncio.sleep(3)
            try:
                result["glances"] = await sample_process(ps, args.idle_seconds)
            finally:
                fetcher.cancel()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return result


# -- scenario 4: collection cost ----------------------------------------------------------------
def collection(rounds: int = 7, per_round: int = 300) -> dict:
    from aura_dashboard.collectors.system import SystemCollector
    from bench.dashboard_server import settings_for

    settings = settings_for("fast", "idle").monitoring.system
    collector = SystemCollector(settings)
    paths = [p for p in settings.disk.monitor_paths if os.path.exists(p)]

    def bare():
        psutil.cpu_percent(interval=None)
        psutil.cpu_count()
        psutil.getloadavg()
        psutil.virtual_memory()
        psutil.swap_memory()
        for path in paths:
            psutil.disk_usage(path)
        psutil.disk_io_counters()
        psutil.net_io_counters(pernic=True)

    def timed(fn) -> float:
        start = time.perf_counter()
        for _ in range(per_round):
            fn()
        return (time.perf_counter() - start) / per_round * 1e6

    ours, floor = [], []
    for _ in range(rounds):  # interleaved, so both see the same machine load
        ours.append(timed(collector.sample_now))
        floor.append(timed(bare))
    o, f = statistics.median(ours), statistics.median(floor)
    return {"sample_us": round(o, 1), "psutil_floor_us": round(f, 1), "ratio": round(o / f, 3)}


# -- scenario 5: memory per client ------------------------------------------------------------
async def memory(args) -> list[dict]:
    rows = []
    plan = [("websocket", n) for n in args.idle_clients] + [("polling", n) for n in args.idle_polling_clients]
    for transport, n in plan:
        for kind in ("node", "dashboard"):
            async with server(kind, "fast", uvloop=args.uvloop,
                              shipped_security=args.shipped_security) as srv:
                await asyncio.sleep(1)
                before = srv.rss()
                start = time.monotonic()
                async with clients(srv, n, [transport], args.client_procs, subscribe=None) as (cl, connected, failed):
                    took = time.monotonic() - start
                    await asyncio.sleep(2)
                    after = srv.rss()
                    held = (await cl.report())["connected"]
                    if held != n:
                        raise SetupFailed(f"{srv.name}: {held} of {n} idle {transport} clients still "
                                          "connected 2 s after connecting")
            row = {"server": srv.name, "transport": transport, "clients": n, "connected": connected,
                   "held_after_2s": held, "failed": failed, "connect_s": round(took, 1),
                   "rss_before_mib": round(before / 2**20, 1), "rss_after_mib": round(after / 2**20, 1),
                   "mib_per_1000": round((after - before) / 2**20 / n * 1000, 2)}
            rows.append(row)
            print(f"  memory    {row['server']:<20} {transport:<9} clients={n:<6} held={held} "
                  f"RSS {row['rss_before_mib']} -> {row['rss_after_mib']} MiB, "
                  f"{row['mib_per_1000']} MiB per 1000", flush=True)
    return rows


# -- the run ----------------------------------------------------------------------------------
async def run(args) -> dict:
    results: dict = {"machine": machine(), "args": {k: (sorted(v) if isinstance(v, set) else v)
                                                    for k, v in vars(args).items()}}
    print("machine:", json.dumps(results["machine"]), flush=True)
    from bench.dashboard_server import BENCH_LIMITS, BENCH_SECURITY
    results["security"] = "shipped" if args.shipped_security else {"security": BENCH_SECURITY, **BENCH_LIMITS}
    print("dashboard security settings for the benchmark (all clients connect from 127.0.0.1): "
          + ("the shipped ones (--shipped-security)" if args.shipped_security
             else f"security: {json.dumps(BENCH_SECURITY)}, {json.dumps(BENCH_LIMITS)}"), flush=True)
    if 4 in args.scenarios:
        print("4. collection cost", flush=True)
        results["collection"] = c = collection()
        print(f"  system sample {c['sample_us']} us, psutil floor {c['psutil_floor_us']} us: x{c['ratio']} "
              f"(target <= 1.2)", flush=True)
    if 1 in args.scenarios:
        print("1. fan-out over WebSocket", flush=True)
        results["fanout"] = await fanout(args, "websocket", args.clients, "websocket")
    if 2 in args.scenarios:
        print("2. fan-out over long-polling", flush=True)
        results["polling"] = await fanout(args, "polling", args.polling_clients, "polling")
    if 6 in args.scenarios:
        print("6. the default (batched) path: 3 streams, 3 subscription sets", flush=True)
        results["batched"] = await batched(args)
    rows = results.get("fanout", []) + results.get("polling", []) + results.get("batched", [])
    if rows:
        print("fan-out ratios against Node socket.io (same run, same clients):")
        print("\n".join(fanout_ratios(rows)), flush=True)
    if 7 in args.scenarios:
        print(f"7. two instances on one Redis ({args.redis}), clients split between them", flush=True)
        results["cluster"] = await cluster(args)
        print("cluster ratios (same run, same clients):")
        print("\n".join(cluster_ratios(results["cluster"])), flush=True)
    if 3 in args.scenarios:
        print("3. idle cost", flush=True)
        results["idle"] = i = await idle(args)
        print(f"  {json.dumps(i)}", flush=True)
        if "cpu_percent" in i.get("glances", {}):
            d, g = i["dashboard"], i["glances"]
            ratio = round(d["cpu_percent"] / g["cpu_percent"], 2) if g["cpu_percent"] else None
            print(f"  dashboard CPU x{ratio} of Glances' (target < 0.5); RSS {d['rss_mib']} MiB (target < 60)")
    if 5 in args.scenarios:
        print("5. memory per idle client", flush=True)
        results["memory"] = await memory(args)
    results["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / time.strftime("%Y%m%d-%H%M%S.json")
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"results written to {out}; load average at end {results['machine']['load_avg_at_end']}")
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    if not args.no_npm and args.scenarios & {1, 2, 3, 5, 6, 7}:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True)
    try:
        asyncio.run(run(args))
    except SetupFailed as exc:
        print(f"BENCHMARK SETUP FAILED, no numbers reported: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
