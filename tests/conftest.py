"""Real-server fixtures: the app on a free port, real clients, and the services it talks to.

A test that needs a service this machine lacks fails under CI=true and is skipped (saying
why) on a developer's machine.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import shutil
import socket
import sys
import threading
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from aura_dashboard.app import create_app
from aura_dashboard.config import Settings, load_config
from aura_dashboard.realtime.hub import StreamHub
from aura_dashboard.web.keys import HUB

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = ROOT / "aura_dashboard" / "config" / "dashboard_config.yaml"
JS_DIR = ROOT / "tests" / "js"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_service(available: bool, why: str) -> None:
    """Fail under CI, skip elsewhere, when a service the test needs is missing."""
    if available:
        return
    if in_ci():
        pytest.fail(f"CI=true and {why}")
    pytest.skip(why)


# Ports for test servers come from below the kernel's ephemeral range (32768 and up, where
# every outgoing connection and every bind to port 0 lands), a block of its own for each
# pytest-xdist worker: a port picked here is not taken by another worker, or by a client's
# connection, between the pick and the server's bind (a race seen as "address already in use").
_PORT_BLOCK = 1500
_PORT_BASE = 20000


def _port_candidates() -> Iterator[int]:
    """This worker's block, from a place in it that differs between test runs: two suites run
    at once on one machine (a helper's beside the lead's) otherwise take the same ports in the
    same order, and a throwaway server can lose its port to the other run between our check
    and its bind."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    first = _PORT_BASE + (index % 8) * _PORT_BLOCK
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
    start = zlib.crc32(run.encode()) % _PORT_BLOCK
    block = list(range(first, first + _PORT_BLOCK))
    return itertools.cycle(block[start:] + block[:start])


_PORTS = _port_candidates()


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on, from this worker's own block."""
    for _ in range(_PORT_BLOCK):
        port = next(_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in this worker's block")


# Test defaults: no log file, no database/backends unless a test asks for them.
TEST_ENV = {"LOG_FILE": "", "DATABASE_HOST": "", "AUDIT_STORE_PATH": ":memory:", "HISTORY_STORE_PATH": ":memory:"}
TEST_YAML = {"logging": {"file": {"enabled": False}}}


def make_settings(env: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None,
                  config_path: str | os.PathLike | None = SHIPPED_CONFIG) -> Settings:
    """Settings from the shipped file, with `env` as the whole environment and `extra` YAML."""
    environ = {**TEST_ENV, **(env or {})}
    merged = _merge(TEST_YAML, dict(extra or {}))
    return load_config(config_path, env_file=os.devnull, environ=environ, extra_yaml=merged).settings


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclass
class RunningServer:
    app: web.Application
    settings: Settings
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_path(self) -> str:
        return self.settings.websocket.path


@asynccontextmanager
async def serve_app(app: web.Application, port: int | None = None,
                    shutdown_timeout: float = 2.0) -> AsyncIterator[int]:
    """Any aiohttp app (the dashboard, a fake backend) on 127.0.0.1:`port` (a free one by
    default); yields the port, and cleans the app up afterwards."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


class ContractCheck:
    """Validates every envelope a server publishes against its stream's contract.

    Every live test's server carries one (see `running_server`), so the payload models are
    checked against what the producers really send, all through the suite.
    """

    # Streams validated so far in this test session, with how many envelopes.
    seen: dict[str, int] = {}

    def __init__(self, hub: StreamHub):
        self.failures: list[str] = []
        for contract in hub.contracts():
            hub.published_signal(contract.name).connect(self._checker(contract))

    def _checker(self, contract):
        def check(envelope: dict) -> None:
            try:
                contract.validate(envelope["data"])
            except Exception as exc:  # pydantic's ValidationError, with every problem
                self.failures.append(f"{contract.name} seq {envelope['seq']}: {exc}")
            ContractCheck.seen[contract.name] = ContractCheck.seen.get(contract.name, 0) + 1
        return check

    def assert_clean(self) -> None:
        assert not self.failures, "envelopes that break their stream's contract:\n" + "\n".join(self.failures[:5])


def alert_payload(i: int, message: str = "a test alert", value: Any = None) -> dict:
    """A valid `alerts` payload, for tests that publish by hand (id `test:<i>`, value `i`)."""
    return {"id": f"test:{i}", "kind": "test", "severity": "warning", "state": "firing",
            "value": i if value is None else value, "threshold": None, "message": message,
            "since": 1.0, "ts": 1.0}


def backend_state(status: str = "up") -> dict:
    """A valid state of one backend, as the `backends` stream carries it."""
    return {"status": status, "url": "http://127.0.0.1:1/healthz", "latency_ms": 1.0, "http_status": 200,
            "error_rate": 0.0, "last_ok": 1.0, "checks": 1}


def with_port(settings: Settings, port: int) -> Settings:
    """`settings` with `dashboard.port` = `port`: the port the server really listens on, which
    the page's default public URL (and so its allowed origins) follows."""
    return settings.model_copy(update={"dashboard": settings.dashboard.model_copy(update={"port": port})})


@asynccontextmanager
async def running_server(settings: Settings, port: int | None = None,
                         app: web.Application | None = None) -> AsyncIterator[RunningServer]:
    """The real app on a real TCP port of 127.0.0.1; built here from `settings` (with
    `dashboard.port` set to that port, see `with_port`) unless given.

    Every envelope it publishes is checked against its stream's contract.
    """
    if app is None:
        port = port or free_port()
        settings = with_port(settings, port)
        app = create_app(settings)
    check = ContractCheck(app[HUB])
    async with serve_app(app, port) as bound:
        yield RunningServer(app, settings, "127.0.0.1", bound)
    check.assert_clean()


async def until_event(changed: asyncio.Event, predicate, timeout: float = 20) -> None:
    """Wait until `predicate()` holds, checking each time `changed` is set (by a client)."""
    async def loop():
        while not predicate():
            changed.clear()
            await changed.wait()
    await asyncio.wait_for(loop(), timeout)


@pytest.fixture
def start_server():
    """`async with start_server(env={...}, extra={...}) as srv:` — any number per test."""

    def factory(env: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None):
        return running_server(make_settings(env, extra))

    return factory


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with running_server(make_settings()) as srv:
        yield srv


# -- Node and the official socket.io-client --------------------------------------------------
@pytest.fixture(scope="session")
def node() -> str:
    path = shutil.which("node")
    need_service(path is not None, "Node.js is not installed (needed for socket.io-client tests)")
    need_service((JS_DIR / "node_modules" / "socket.io-client").is_dir(),
                 "tests/js/node_modules is missing: run `npm ci --prefix tests/js`")
    return path


async def run_node(node: str, script: str, *args: str, timeout: float = 60) -> str:
    """Run a script of tests/js under Node; returns its stdout, raising on failure."""
    proc = await asyncio.create_subprocess_exec(
        node, str(JS_DIR / script), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=JS_DIR)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"node {script} did not finish in {timeout}s")
    assert proc.returncode == 0, f"node {script} failed ({proc.returncode}): {err.decode()}"
    return out.decode()


# -- a test that hangs says where -------------------------------------------------------------
def _running_loops() -> list[asyncio.AbstractEventLoop]:
    """The running event loop(s), found from the timer's thread, which cannot ask for them."""
    return [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]


def _print_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    print(f"\n=== {len(tasks)} asyncio tasks, shortly before pytest-timeout stops this test ===", file=sys.stderr)
    for task in tasks:
        print(f"--- {task.get_name()}: {task.get_coro()!r}", file=sys.stderr)
        task.print_stack(limit=12, file=sys.stderr)


@pytest.fixture(autouse=True)
def _tasks_shown_before_timeout(request):
    """Shortly before pytest-timeout stops a test (its stack dump shows only threads, and an
    asyncio test that waits on something shows an idle event loop), every asyncio task's stack
    is printed, so a hang in CI says what it waited for."""
    marker = request.node.get_closest_marker("timeout")
    timeout = float(marker.args[0]) if marker and marker.args else float(request.config.getini("timeout") or 0)
    if timeout <= 10:
        yield
        return

    def dump() -> None:
        for loop in _running_loops():
            loop.call_soon_threadsafe(_print_tasks, loop)
    timer = threading.Timer(timeout - 5, dump)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
