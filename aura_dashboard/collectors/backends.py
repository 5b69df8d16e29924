"""HTTP health of the backends (mcp, ml, governance), each at its own interval.

One shared aiohttp `ClientSession`; each check has `health_checks.timeout_ms` and up to
`health_checks.retries` retries. A backend is `up`, `slow` (answered 2xx/3xx but slower than
`slow_response_ms`) or `down`; the error rate is over the last `error_rate_window` checks.
The `backends` emitter ticks at the shortest interval and checks the backends that are due.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from ..config.loader import redact_url
from ..config.schema import BackendSettings, HealthCheckSettings
from ..contract import FieldSpec, PayloadModel, StreamContract
from ..outbound import ReplyTooLarge, read_limited


@dataclass
class BackendProbe:
    name: str
    url: str
    interval_s: float
    window: int
    state: dict[str, Any] = field(default_factory=dict)
    results: deque = field(default_factory=deque)
    due_at: float = 0.0
    last_ok: float | None = None

    def __post_init__(self) -> None:
        self.results = deque(maxlen=self.window)
        self.state = {"status": "unknown", "url": redact_url(self.url), "latency_ms": None, "http_status": None,
                      "error_rate": None, "last_ok": None, "checks": 0}


class BackendMonitor:
    """Checks the mcp, ml and governance backends; `sample()` is the `backends` stream's data.

    :param hc: the `health_checks` section.
    :param b: the `backends` section (each backend's URL and check interval).
    :param session: the shared outbound HTTP session (opened when the app starts).
    """

    def __init__(self, hc: HealthCheckSettings, b: BackendSettings, session: Callable[[], aiohttp.ClientSession], *,
                 monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self.timeout_s = hc.timeout_ms / 1000
        self.retries = hc.retries
        self.slow_ms = hc.slow_response_ms
        self.max_reply_bytes = b.max_reply_bytes
        self._session = session
        self._monotonic = monotonic
        self._wall = wall
        self.probes = [
            BackendProbe("mcp", b.mcp.url + hc.endpoints.mcp_api, b.mcp.health_check_interval_ms / 1000,
                         hc.error_rate_window),
            BackendProbe("ml", b.ml.url + hc.endpoints.ml_backend, b.ml.health_check_interval_ms / 1000,
                         hc.error_rate_window),
            BackendProbe("governance", b.governance.url + hc.endpoints.governance,
                         b.governance.health_check_interval_ms / 1000, hc.error_rate_window),
        ]

    @property
    def tick_s(self) -> float:
        return min(probe.interval_s for probe in self.probes)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {probe.name: dict(probe.state) for probe in self.probes}

    def probe(self, name: str) -> BackendProbe:
        return next(p for p in self.probes if p.name == name)

    async def sample(self) -> dict[str, dict[str, Any]]:
        """Check every backend that is due (concurrently), then report all of them."""
        now = self._monotonic()
        due = [probe for probe in self.probes if probe.due_at <= now + 0.05]
        await asyncio.gather(*(self.check(probe) for probe in due))
        for probe in due:
            probe.due_at = now + probe.interval_s
        return self.snapshot()

    async def check(self, probe: BackendProbe) -> dict[str, Any]:
        status, http_status, latency_ms, error = "down", None, None, None
        for _attempt in range(self.retries + 1):
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.timeout_s):
                    async with self._session().get(probe.url, allow_redirects=False) as response:
                        http_status = response.status
                        await read_limited(response, self.max_reply_bytes)
                latency_ms = round((time.perf_counter() - started) * 1000, 3)
                if http_status < 400:
                    status, error = ("slow" if latency_ms > self.slow_ms else "up"), None
                    break
                error = f"HTTP {http_status}"
            except TimeoutError:
                error, latency_ms = f"no answer within {self.timeout_s:g}s", None
            except ReplyTooLarge as exc:
                status, error, latency_ms = "down", f"reply_too_large: {exc}", None
                break
            except aiohttp.ClientError as exc:
                error, latency_ms, http_status = redact_url(f"{type(exc).__name__}: {exc}"), None, None
        probe.results.append(status != "down")
        if status != "down":
            probe.last_ok = self._wall()
        failures = sum(1 for ok in probe.results if not ok)
        probe.state = {"status": status, "url": redact_url(probe.url), "latency_ms": latency_ms,
                       "http_status": http_status, "error": error,
                       "error_rate": round(failures / len(probe.results), 3),
                       "last_ok": probe.last_ok, "checks": probe.state.get("checks", 0) + 1}
        return probe.state


# -- the `backends` stream's contract --------------------------------------------------------
class BackendState(PayloadModel):
    status: Literal["up", "slow", "down", "unknown"]
    url: str
    latency_ms: float | None
    http_status: int | None
    error: str | None = None
    error_rate: float | None
    last_ok: float | None
    checks: int


BACKENDS = StreamContract(
    name="backends", namespace="/omni_monitor", payload=dict[str, BackendState], shared=True,
    summary="HTTP health of the backends (mcp, ml, governance), each checked at its own interval.",
    switches=("health_checks.enabled",),
    interval=("backends.mcp.health_check_interval_ms", "backends.ml.health_check_interval_ms",
              "backends.governance.health_check_interval_ms"),
    fields=(
        FieldSpec("*.status", "status", "up, slow (answered, slower than health_checks.slow_response_ms), "
                  "down, or unknown before the first check"),
        FieldSpec("*.url", "text", "the URL checked"),
        FieldSpec("*.latency_ms", "ms", "time to the answer of the last check", series=True, labels=("backend",)),
        FieldSpec("*.http_status", "id", "HTTP status of the last answer"),
        FieldSpec("*.error", "text", "why the last check failed"),
        FieldSpec("*.error_rate", "ratio", "failed checks over the last health_checks.error_rate_window",
                  series=True, labels=("backend",)),
        FieldSpec("*.last_ok", "unix_time", "when it last answered"),
        FieldSpec("*.checks", "count", "checks made since the start"),
    ),
)
