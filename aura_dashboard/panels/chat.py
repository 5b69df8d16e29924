"""The chat queue: one bounded queue, a few workers, retries the asking client can watch.

A `message` is validated and queued (or refused at once with `queue_full`); a worker
forwards it to the MCP backend's `POST /api/chat`, retrying timeouts, connection errors and
5xx with exponential backoff and jitter, never a 4xx. Each step reaches the asking client
as a `chat_update`. A client that leaves has its queued messages dropped; a message already
in flight is finished and its answer discarded, so nothing waits forever.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import aiohttp
import orjson
from pydantic import StringConstraints

from ..contract import FieldSpec, PayloadModel, StreamContract
from ..errors import DashboardError
from ..outbound import ReplyTooLarge, read_limited
from ..security.validation import Payload, parse
from ..stats import percentile
from ..tasks import stop_if_cancelled

log = logging.getLogger(__name__)

MAX_TEXT = 8000
LATENCY_SAMPLES = 500  # completed messages the status stream's percentiles are taken over

Notify = Callable[[str, dict[str, Any]], Awaitable[None]]


class ChatMessage(Payload):
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]
    mode: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "auto"


@dataclass
class ChatJob:
    id: str
    sid: str
    text: str
    mode: str
    queued_at: float
    dropped: bool = False


@dataclass
class ChatCounters:
    completed: int = 0
    failed: int = 0
    dropped: int = 0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))


class _Retryable(Exception):
    """A failure worth another attempt (timeout, connection error, 5xx)."""


class _Final(Exception):
    """A failure no retry can mend (4xx, a reply too large); `code` names it for the client."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class ChatQueue:
    """The bounded queue of chat messages and the workers that forward them."""

    def __init__(self, *, url: str, max_queue_size: int, timeout_s: float, retry_attempts: int,
                 workers: int, backoff_base_s: float, backoff_max_s: float,
                 session: Callable[[], aiohttp.ClientSession], notify: Notify,
                 modes: list[str], debug_on: Callable[[], bool] = lambda: False,
                 diagnostics: Callable[[], dict[str, Any]] = dict,
                 monotonic: Callable[[], float] = time.monotonic, max_reply_bytes: int = 4_194_304):
        self.url = url.rstrip("/") + "/api/chat"
        self.max_reply_bytes = max_reply_bytes
        self.max_queue_size = max_queue_size
        self.timeout_s = timeout_s
        self.retry_attempts = retry_attempts
        self.workers = workers
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._session = session
        self._notify = notify
        self.modes = list(modes)
        self._debug_on = debug_on
        self._diagnostics = diagnostics
        self._monotonic = monotonic
        self._waiting: deque[ChatJob] = deque()
        self._wake = asyncio.Condition()
        self._in_flight: dict[str, ChatJob] = {}
        self.counters = ChatCounters()

    # -- the client's side -------------------------------------------------------------------
    async def submit(self, sid: str, payload: Any) -> dict[str, Any]:
        """Queue a message for `sid`; the acknowledgement `{"ok": true, "id", "position"}`."""
        message = parse(ChatMessage, payload, what="message payload")
        if message.mode not in self.modes:
            raise DashboardError(f"mode: {message.mode!r} is not one of {', '.join(self.modes)}",
                                 code="bad_mode")
        job_id = f"m-{uuid.uuid4().hex[:12]}"
        if message.mode == "debug":
            return await self._answer_debug(sid, job_id)
        async with self._wake:
            if len(self._waiting) >= self.max_queue_size:
                raise DashboardError(f"the chat queue is full ({self.max_queue_size} waiting); "
                                     "try again shortly", code="queue_full", status=429)
            job = ChatJob(job_id, sid, message.text, message.mode, self._monotonic())
            self._waiting.append(job)
            position = len(self._waiting)
            self._wake.notify()
        await self._send(job, "queued", position=position)
        return {"ok": True, "id": job_id, "position": position}

    async def _answer_debug(self, sid: str, job_id: str) -> dict[str, Any]:
        if not self._debug_on():
            raise DashboardError("mode 'debug' is answered only while features.debug_mode is on",
                                 code="debug_disabled", status=403)
        reply = {"diagnostics": self._diagnostics(), "queue": self.status()}
        self.counters.completed += 1
        # Sent before the acknowledgement; the page matches updates that come early by id.
        await self._notify(sid, {"id": job_id, "state": "done", "mode": "debug", "attempt": 0,
                                 "reply": reply, "ts": time.time()})
        return {"ok": True, "id": job_id, "position": 0}

    def forget(self, sid: str) -> int:
        """`sid` has gone: drop its queued messages (in-flight ones finish unheard)."""
        kept, gone = deque(), 0
        for job in self._waiting:
            if job.sid == sid:
                job.dropped = True
                gone += 1
            else:
                kept.append(job)
        self._waiting = kept
        for job in self._in_flight.values():
            if job.sid == sid:
                job.dropped = True
        self.counters.dropped += gone
        return gone

    def status(self) -> dict[str, Any]:
        """The `status` stream's data."""
        latencies = sorted(self.counters.latencies_ms)
        return {
            "queue_depth": len(self._waiting),
            "max_queue_size": self.max_queue_size,
            "in_flight": len(self._in_flight),
            "workers": self.workers,
            "completed": self.counters.completed,
            "failed": self.counters.failed,
            "dropped": self.counters.dropped,
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p95_ms": percentile(latencies, 95),
        }

    async def sample(self) -> dict[str, Any]:
        return self.status()

    # -- the workers' side -------------------------------------------------------------------
    async def run_worker(self) -> None:
        """Take messages off the queue until cancelled; one failure never stops the worker."""
        while True:
            stop_if_cancelled()
            async with self._wake:
                await self._wake.wait_for(lambda: bool(self._waiting))
                job = self._waiting.popleft()
            self._in_flight[job.id] = job
            try:
                await self._process(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("chat message %s failed in the worker", job.id)
                self.counters.failed += 1
                await self._send(job, "failed", reason="internal error")
            finally:
                self._in_flight.pop(job.id, None)

    async def _process(self, job: ChatJob) -> None:
        attempts = self.retry_attempts + 1
        reason = ""
        for attempt in range(1, attempts + 1):
            if job.dropped:  # the client left while we waited to retry
                self.counters.dropped += 1
                return
            if attempt == 1:
                await self._send(job, "sending", attempt=1)
            try:
                reply = await self._post(job)
            except _Final as exc:
                self.counters.failed += 1
                await self._send(job, "failed", attempt=attempt, reason=str(exc),
                                 **({"code": exc.code} if exc.code else {}))
                return
            except _Retryable as exc:
                reason = str(exc)
                if attempt == attempts:
                    break
                await self._send(job, "retrying", attempt=attempt + 1, reason=reason)
                await asyncio.sleep(self.backoff(attempt))
                continue
            latency_ms = (self._monotonic() - job.queued_at) * 1000
            self.counters.completed += 1
            self.counters.latencies_ms.append(latency_ms)
            await self._send(job, "done", attempt=attempt, reply=reply,
                             latency_ms=round(latency_ms, 3))
            return
        self.counters.failed += 1
        await self._send(job, "failed", attempt=attempts,
                         reason=f"{reason} (gave up after {attempts} attempt{'s' * (attempts > 1)})")

    def backoff(self, retry: int) -> float:
        """Seconds before retry number `retry` (1, 2, ...): exponential, capped, half jittered."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (retry - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _post(self, job: ChatJob) -> Any:
        body = {"id": job.id, "text": job.text, "mode": job.mode, "session": job.sid}
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._session().post(self.url, json=body) as response:
                    status = response.status
                    text = (await read_limited(response, self.max_reply_bytes)).decode(
                        response.get_encoding() if response.charset else "utf-8", errors="replace")
        except ReplyTooLarge as exc:
            raise _Final(f"reply_too_large: {exc}", code="reply_too_large") from None
        except TimeoutError:
            raise _Retryable(f"the MCP backend did not answer within {self.timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            raise _Retryable(f"cannot reach the MCP backend: {exc.__class__.__name__}: {exc}") from None
        if status >= 500:
            raise _Retryable(f"the MCP backend answered HTTP {status}")
        if status >= 400:
            raise _Final(f"the MCP backend refused the message: HTTP {status}: {text[:200]}")
        try:
            data = orjson.loads(text) if text else {}
        except orjson.JSONDecodeError:
            return text
        if isinstance(data, dict):
            for key in ("reply", "response", "answer", "text"):
                if key in data:
                    return data[key]
        return data

    async def _send(self, job: ChatJob, state: str, **fields: Any) -> None:
        if job.dropped:
            return
        update = {"id": job.id, "state": state, "mode": job.mode, "ts": time.time(), **fields}
        try:
            await self._notify(job.sid, update)
        except Exception:
            log.warning("chat_update %s of %s could not be sent", state, job.id, exc_info=True)


# -- the `status` stream's contract ----------------------------------------------------------
class ChatStatus(PayloadModel):
    queue_depth: int
    max_queue_size: int
    in_flight: int
    workers: int
    completed: int
    failed: int
    dropped: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None


STATUS = StreamContract(
    name="status", namespace="/chat", payload=ChatStatus,
    summary="The chat queue: waiting and in-flight messages, outcomes and latency.",
    switches=("panels.chat.enabled",), feature="chat_optimization",
    interval=("updates.intervals.chat_status",),
    fields=(
        FieldSpec("queue_depth", "count", "messages waiting", series=True),
        FieldSpec("max_queue_size", "count", "messages that may wait at once"),
        FieldSpec("in_flight", "count", "messages being forwarded now", series=True),
        FieldSpec("workers", "count", "messages forwarded at once (panels.chat.workers)"),
        FieldSpec("completed", "count", "messages answered since the start", series=True),
        FieldSpec("failed", "count", "messages that failed since the start", series=True),
        FieldSpec("dropped", "count", "messages of clients that left before their turn", series=True),
        FieldSpec("latency_p50_ms", "ms", "median time from queued to answered (last 500)", series=True),
        FieldSpec("latency_p95_ms", "ms", "95th percentile of that time", series=True),
    ),
)
