"""Inference statistics: results reported by any service, summarised per model over a window.

Producers POST results (`model`, `latency_ms`, `ok`, optional `tokens`); the `inference`
stream carries, per model over the last `inference_window_seconds`: requests per second,
latency p50/p95/p99 (exact: every result of the window is kept and sorted), error rate.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated, Any, Protocol

from pydantic import Field, StringConstraints

from ..errors import BadRequest, DashboardError
from ..contract import FieldSpec, PayloadModel, StreamContract
from ..security.validation import Payload, parse
from ..stats import percentile

MAX_BATCH = 1000        # results in one POST
MAX_MODELS = 256        # models tracked at once (a model leaves when its window empties)
MAX_PER_MODEL = 200_000  # results kept per model and window, the oldest go first beyond
KEPT_RESULTS = 20_000    # results kept in Redis for the next holder (the newest)
log = logging.getLogger(__name__)


class InferenceResult(Payload):
    model: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    latency_ms: Annotated[float, Field(ge=0, le=86_400_000)]
    ok: bool
    tokens: Annotated[int, Field(ge=0)] | None = None


def parse_results(body: Any) -> list[InferenceResult]:
    """One result object or a non-empty list of them, each validated."""
    if isinstance(body, dict):
        return [parse(InferenceResult, body, what="inference result")]
    if not isinstance(body, list) or not body:
        raise BadRequest("the body must be an inference result object or a non-empty list of them")
    if len(body) > MAX_BATCH:
        raise BadRequest(f"at most {MAX_BATCH} results per request, got {len(body)}")
    return [parse(InferenceResult, item, what=f"result [{i}]") for i, item in enumerate(body)]


class WindowKeeper(Protocol):
    """Where the holder keeps its windows for the next holder (a cluster's Redis)."""

    async def put(self, doc_id: str, doc: dict[str, Any]) -> None: ...
    async def all(self) -> list[dict[str, Any]]: ...


class InferenceStats:
    """Per-model sliding windows of results; `snapshot()` is the `inference` stream's data.

    :param keeper: in a cluster, where the windows are kept at each sample (the newest
        `KEPT_RESULTS` results) so that the next lease holder resumes them (`resume()`).
    """

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic,
                 keeper: WindowKeeper | None = None):
        self.window_s = window_s
        self._clock = clock
        self._results: dict[str, deque[tuple[float, float, bool, int | None]]] = {}
        self.total = 0
        self.keeper = keeper

    def dump(self) -> dict[str, Any]:
        """The windows as plain data, each result's age in seconds (clocks differ by host)."""
        now = self._clock()
        self._prune(now)
        items = sorted(((at, model, latency, ok, tokens) for model, window in self._results.items()
                        for at, latency, ok, tokens in window), reverse=True)[:KEPT_RESULTS]
        models: dict[str, list] = {}
        for at, model, latency, ok, tokens in items:
            models.setdefault(model, []).append([round(now - at, 3), latency, ok, tokens])
        return {"window_s": self.window_s, "models": models}

    def load(self, doc: dict[str, Any]) -> int:
        """Take up dumped windows (results still inside the window); returns how many."""
        now = self._clock()
        taken = 0
        for model, rows in (doc.get("models") or {}).items():
            if model in self._results:
                continue
            kept = sorted((now - age, latency, ok, tokens) for age, latency, ok, tokens in rows
                          if age < self.window_s)
            if kept and len(self._results) < MAX_MODELS:
                self._results[model] = deque(kept, maxlen=MAX_PER_MODEL)
                taken += len(kept)
        return taken

    async def resume(self, held: bool = True) -> int:
        """On becoming the lease holder: take up the windows the last holder kept."""
        if not held or self.keeper is None:
            return 0
        taken = sum(self.load(doc) for doc in await self.keeper.all())
        if taken:
            log.info("inference: %d result(s) taken up from the previous holder", taken)
        return taken

    def record(self, results: list[InferenceResult]) -> int:
        now = self._clock()
        self._prune(now)
        new = {r.model for r in results} - self._results.keys()
        if len(self._results) + len(new) > MAX_MODELS:
            raise DashboardError(f"at most {MAX_MODELS} models are tracked at once",
                                 code="too_many_models", status=409)
        for r in results:
            window = self._results.setdefault(r.model, deque(maxlen=MAX_PER_MODEL))
            window.append((now, r.latency_ms, r.ok, r.tokens))
        self.total += len(results)
        return len(results)

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        for model in list(self._results):
            window = self._results[model]
            while window and window[0][0] <= horizon:
                window.popleft()
            if not window:
                del self._results[model]

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        self._prune(now)
        models = {}
        for model, window in sorted(self._results.items()):
            latencies = sorted(item[1] for item in window)
            count = len(latencies)
            errors = sum(1 for item in window if not item[2])
            tokens = [item[3] for item in window if item[3] is not None]
            models[model] = {
                "count": count,
                "rps": count / self.window_s,
                "p50_ms": percentile(latencies, 50),
                "p95_ms": percentile(latencies, 95),
                "p99_ms": percentile(latencies, 99),
                "error_rate": errors / count,
                "tokens_per_s": sum(tokens) / self.window_s if tokens else None,
            }
        return {"window_s": self.window_s, "models": models}

    async def sample(self) -> dict[str, Any]:
        if self.keeper is not None:
            await self.keeper.put("windows", self.dump())
        return self.snapshot()


# -- the `inference` stream's contract -------------------------------------------------------
class ModelWindow(PayloadModel):
    count: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    error_rate: float
    tokens_per_s: float | None


class InferenceData(PayloadModel):
    window_s: float
    models: dict[str, ModelWindow]


INFERENCE = StreamContract(
    name="inference", namespace="/ai_system", payload=InferenceData, shared=True,
    summary="Inference results reported by producers, per model over the last window.",
    switches=("panels.ai_system.enabled", "panels.ai_system.show_inference_stats"), feature="ai_system_panel",
    interval=("panels.ai_system.refresh_interval_ms",),
    fields=(
        FieldSpec("window_s", "s", "the window (panels.ai_system.inference_window_seconds)"),
        FieldSpec("models.*.count", "count", "results in the window", series=True, labels=("model",)),
        FieldSpec("models.*.rps", "1/s", "requests per second", series=True, labels=("model",)),
        FieldSpec("models.*.p50_ms", "ms", "median latency (exact, nearest rank)", series=True, labels=("model",)),
        FieldSpec("models.*.p95_ms", "ms", "95th percentile latency", series=True, labels=("model",)),
        FieldSpec("models.*.p99_ms", "ms", "99th percentile latency", series=True, labels=("model",)),
        FieldSpec("models.*.error_rate", "ratio", "results not ok", series=True, labels=("model",)),
        FieldSpec("models.*.tokens_per_s", "1/s", "tokens per second, when producers report them", series=True, labels=("model",)),
    ),
)
