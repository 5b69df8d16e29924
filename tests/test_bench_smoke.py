"""The benchmark end to end at a tiny size (20 clients, 0.5 s; the batched scenario at 9): a
broken bench fails here.

No numbers are asserted (speed belongs in bench/, on a quiet machine); only that every scenario
run here completes with every client connected and subscribed and every envelope delivered,
and that a failed setup (the shipped REST rate limit, which refuses most of 60 clients from one
address) makes the bench refuse to report and exit non-zero.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.conftest import ROOT, need_service

BENCH_NODE = ROOT / "bench" / "node"


def run_bench(tmp_path, *args: str) -> subprocess.CompletedProcess:
    need_service(shutil.which("node") is not None, "node is not installed (the bench's baseline and clients)")
    # The bench runs `npm ci` in bench/node itself when its modules are missing.
    modules = BENCH_NODE / "node_modules"
    installed = all((modules / name).is_dir() for name in ("socket.io-client", "@socket.io/redis-adapter", "redis"))
    no_npm = ["--no-npm"] if installed else []
    return subprocess.run([sys.executable, "-m", "bench", "--client-procs", "1", "--seconds", "0.5",
                           "--results", str(tmp_path), *no_npm, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_bench_runs_end_to_end_tiny(tmp_path):
    done = run_bench(tmp_path, "--scenarios", "1,2,6", "--clients", "20", "--polling-clients", "20",
                     "--batched-clients", "9", "--rate", "20", "--variants", "fast")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "rate_limiting" in out  # the security settings it needs, set explicitly and printed
    for server in ("node", "dashboard[fast]"):
        assert out.count(f"{server}: 20 of 20 clients connected, 20 subscribed") == 2, out[-4000:]
    for server in ("node", "dashboard[fast]"):  # the batched scenario: 3 subscription sets of 3
        assert out.count(f"{server}: 3 of 3 clients connected, 3 subscribed") == 3, out[-4000:]
    assert "batched    dashboard[fast]" in out and "fan-out ratios against Node" in out
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_bench_refuses_to_report_when_clients_are_refused(tmp_path):
    done = run_bench(tmp_path, "--scenarios", "1", "--clients", "60", "--variants", "fast",
                     "--shipped-security")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-4000:]
    assert "BENCHMARK SETUP FAILED" in out and "of 60 clients connected" in out, out[-4000:]
    assert "deliveries/s x" not in out  # no ratio printed
    assert not list(tmp_path.glob("*.json"))


def test_bench_cluster_scenario_tiny(tmp_path):
    """Scenario 7: two dashboard instances on the machine's Redis and two Node instances with
    @socket.io/redis-adapter, 10 clients each; the second dashboard instance delivers what arrives
    from the queue by the fast path."""
    from tests.realtime.test_cluster import reachable
    redis_url = "redis://127.0.0.1:6379/0"
    need_service(reachable(redis_url, 6379), f"Redis at {redis_url} is not reachable (scenario 7's queue)")
    done = run_bench(tmp_path, "--scenarios", "7", "--cluster-clients", "20", "--rate", "20", "--redis", redis_url)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert out.count("dashboard[fast]: 20 of 20 clients connected, 20 subscribed") == 1, out[-4000:]
    for server in ("node@i0", "node@i1", "dashboard[fast]@i0", "dashboard[fast]@i1"):
        assert out.count(f"{server}: 10 of 10 clients connected, 10 subscribed") == 1, out[-4000:]
    second = [line for line in out.splitlines() if "dashboard[fast]@i1" in line and "since start" in line]
    assert second and all('"broadcaster": "QueueFastBroadcaster"' in line and '"from_queue": 0' not in line
                          for line in second), second
    assert "cluster ratios" in out and "of node+redis-adapter" in out
    assert len(list(tmp_path.glob("*.json"))) == 1
