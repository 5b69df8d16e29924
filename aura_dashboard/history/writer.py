"""The one writer of the history: closed buckets go to the store in one batch, and old
buckets are deleted on a schedule.

`run()` wakes every second, takes the buckets the aggregator closed and writes them in one
transaction. While the store is unreachable (PostgreSQL down) the rows wait in memory, at
most `PENDING_MAX` of them (the oldest are dropped beyond, counted and logged), and are
written when it returns; writes are idempotent per run, so a batch retried after an
uncertain commit is never doubled. `run_retention()` deletes what is past each tier's
retention. `stop()` closes the partial buckets and writes them, so a restart loses nothing
that was sampled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from .store import HistoryStore
from .tiers import Aggregator, BucketRow, TierSpec
from ..tasks import stop_if_cancelled

log = logging.getLogger(__name__)

PENDING_MAX = 200_000    # rows kept while the store is down (about 2 h of the defaults' buckets)
WRITE_BATCH = 5_000      # rows per transaction
DELETE_BATCH = 1_000     # rows per retention statement
CALL_TIMEOUT_S = 30.0


class HistoryWriter:
    """Writes what the aggregator closes, and enforces retention.

    :param aggregator: the open buckets (fed by a mailbox on every stream's published signal).
    :param store: where the tiers live.
    :param source: this instance's name (its runs are recorded under it).
    :param retention_interval_s: how often old buckets are deleted.
    :param clock: wall time (a fast clock in tests).
    :param tick_s: how often closed buckets are collected.
    """

    def __init__(self, aggregator: Aggregator, store: HistoryStore, *, source: str,
                 retention_interval_s: float = 60.0, clock: Callable[[], float] = time.time,
                 tick_s: float = 1.0, pending_max: int = PENDING_MAX):
        self.aggregator = aggregator
        self.store = store
        self.source = source
        self.retention_interval_s = retention_interval_s
        self.tick_s = tick_s
        self._clock = clock
        self.started = clock()
        self.run_id: int | None = None
        self.pending: deque[BucketRow] = deque()
        self.pending_max = pending_max
        self.written = 0
        self.dropped = 0
        self.deleted = 0
        self.status = "unknown"  # up, down

    @property
    def tiers(self) -> list[TierSpec]:
        return self.aggregator.tiers

    def collect(self, *, everything: bool = False) -> int:
        """Move the closed buckets into the pending rows; returns how many."""
        rows = self.aggregator.close(self._clock(), everything=everything)
        self.pending.extend(rows)
        overflow = len(self.pending) - self.pending_max
        if overflow > 0:
            for _ in range(overflow):
                self.pending.popleft()
            self.dropped += overflow
            log.warning("history: %d bucket(s) dropped while %s is unreachable (%d kept at most)",
                        overflow, self.store.name, self.pending_max)
        return len(rows)

    async def flush(self) -> int:
        """Write every pending row, a batch at a time; raises (rows kept) when the store fails."""
        if self.run_id is None:
            self.run_id = await self.store.begin_run(self.source, self.started)
        written = 0
        while self.pending:
            batch = [self.pending[i] for i in range(min(WRITE_BATCH, len(self.pending)))]
            await self.store.write(batch, self.run_id)
            for _ in batch:
                self.pending.popleft()
            written += len(batch)
        self.written += written
        return written

    async def _flush_logged(self) -> None:
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                await self.flush()
            if self.status != "up":
                if self.status == "down":
                    log.info("history: %s reachable again, waiting buckets written", self.store.name)
                self.status = "up"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.status != "down":
                log.warning("history: %s unavailable, %d bucket(s) wait in memory: %s", self.store.name,
                            len(self.pending), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self.status = "down"

    async def run(self) -> None:
        """Collect and write closed buckets every `tick_s` until cancelled."""
        while True:
            stop_if_cancelled()
            await asyncio.sleep(self.tick_s)
            self.collect()
            if self.pending or self.run_id is None:
                await self._flush_logged()

    async def retain(self) -> int:
        """Delete every bucket past its tier's retention; returns how many."""
        now = self._clock()
        deleted = 0
        for tier in self.tiers:
            cutoff = tier.start_of(now - tier.retention_s)
            deleted += await self.store.delete_before(tier.name, cutoff, DELETE_BATCH)
        self.deleted += deleted
        return deleted

    async def run_retention(self) -> None:
        """Enforce retention every `retention_interval_s` until cancelled; a failure is logged."""
        while True:
            stop_if_cancelled()
            try:
                async with asyncio.timeout(max(CALL_TIMEOUT_S, self.retention_interval_s)):
                    await self.retain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("history: retention on %s failed, retried in %ss: %s", self.store.name,
                            self.retention_interval_s, exc)
            await asyncio.sleep(self.retention_interval_s)

    async def open(self) -> None:
        """Open the store (create its tables); a store that cannot be reached yet is retried by `run()`."""
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                await self.store.open()
        except Exception as exc:
            log.warning("history: %s not reachable at start, retried: %s", self.store.name, exc)
            self.status = "down"

    async def stop(self, timeout_s: float = 3.0) -> None:
        """Close every open bucket (partial ones too) and write them, then close the store."""
        self.collect(everything=True)
        try:
            async with asyncio.timeout(timeout_s):
                await self.flush()
        except Exception as exc:
            log.warning("history: %d bucket(s) not written at shutdown: %s", len(self.pending), exc)
        await self.store.close()
