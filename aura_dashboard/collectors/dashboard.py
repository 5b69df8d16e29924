"""The dashboard's own performance (`performance.collect_metrics`, the `dashboard` stream):
its process's CPU and memory, how late its event loop runs, its clients, how long a publish
takes, the backlog of its slow listeners and the lag of its emitters.

What the server knows of itself comes in as callables (the composition root passes them), so
this collector depends on nothing above it. The process figures are read in the executor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import psutil as _psutil

from ..contract import FieldSpec, PayloadModel, StreamContract


class DashboardSelf:
    """`await sample()`: the `dashboard` stream's data.

    :param clients: connected clients per namespace.
    :param publish_p99_s: the 99th percentile of recent publishes, in seconds (None: none yet).
    :param mailboxes: values waiting per slow listener.
    :param emitter_lags_s: how late each emitter's last tick started, in seconds.
    """

    def __init__(self, *, clients: Callable[[], dict[str, int]], publish_p99_s: Callable[[], float | None],
                 mailboxes: Callable[[], dict[str, int]], emitter_lags_s: Callable[[], dict[str, float]],
                 psutil: Any = _psutil, monotonic: Callable[[], float] = time.monotonic):
        self._clients = clients
        self._publish_p99_s = publish_p99_s
        self._mailboxes = mailboxes
        self._emitter_lags_s = emitter_lags_s
        self._process = psutil.Process()
        self._monotonic = monotonic
        self._started = monotonic()
        self._process.cpu_percent(None)  # primes the counter: the first reading is against this

    def _process_now(self) -> dict[str, Any]:
        with self._process.oneshot():
            return {"cpu_percent": self._process.cpu_percent(None), "rss_bytes": self._process.memory_info().rss,
                    "threads": self._process.num_threads(), "open_files": self._process.num_fds()}

    async def _loop_lag_ms(self) -> float:
        """How long a callback scheduled now waits for the event loop."""
        loop = asyncio.get_running_loop()
        ran = loop.create_future()
        scheduled = self._monotonic()
        loop.call_soon(lambda: ran.done() or ran.set_result(self._monotonic()))
        return round((await ran - scheduled) * 1000, 3)

    async def sample(self) -> dict[str, Any]:
        lag = await self._loop_lag_ms()
        process = await asyncio.get_running_loop().run_in_executor(None, self._process_now)
        p99 = self._publish_p99_s()
        return {"uptime_s": round(self._monotonic() - self._started, 3), "process": process,
                "event_loop_lag_ms": lag, "clients": self._clients(),
                "publish_p99_ms": None if p99 is None else round(p99 * 1000, 3),
                "mailboxes": self._mailboxes(),
                "emitter_lag_ms": {name: round(s * 1000, 3) for name, s in self._emitter_lags_s().items()}}


# -- the `dashboard` stream's contract -------------------------------------------------------
class ProcessData(PayloadModel):
    cpu_percent: float
    rss_bytes: int
    threads: int
    open_files: int


class DashboardData(PayloadModel):
    uptime_s: float
    process: ProcessData
    event_loop_lag_ms: float
    clients: dict[str, int]
    publish_p99_ms: float | None
    mailboxes: dict[str, int]
    emitter_lag_ms: dict[str, float]


DASHBOARD = StreamContract(
    name="dashboard", namespace="/omni_monitor", payload=DashboardData,
    summary="The dashboard's own performance: its process, its event loop, its clients and its internals.",
    switches=("performance.collect_metrics",), feature="performance_metrics",
    interval=("performance.metrics_interval_ms",),
    fields=(
        FieldSpec("uptime_s", "s", "time since this instance started"),
        FieldSpec("process.cpu_percent", "percent", "CPU this process uses, of one core", series=True),
        FieldSpec("process.rss_bytes", "bytes", "memory this process holds (RSS)", series=True),
        FieldSpec("process.threads", "count", "threads of this process"),
        FieldSpec("process.open_files", "count", "file descriptors open (sockets included)", series=True),
        FieldSpec("event_loop_lag_ms", "ms", "how long a callback waits for the event loop", series=True),
        FieldSpec("clients.*", "count", "clients connected, per namespace", series=True, labels=("namespace",)),
        FieldSpec("publish_p99_ms", "ms", "99th percentile of a publish, over the last 1,024", series=True),
        FieldSpec("mailboxes.*", "count", "values waiting for a slow listener (audit, alerts, ...)", series=True, labels=("mailbox",)),
        FieldSpec("emitter_lag_ms.*", "ms", "how late each emitter's last tick started", series=True, labels=("stream",)),
    ),
)
