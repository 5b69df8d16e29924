"""Long-range history: downsampled tiers of every series field of the stream contract.

A `Mailbox` on each stream's published signal feeds the `Aggregator` (in memory, never in
`publish`'s path); the `HistoryWriter`, one task, writes the buckets it closes to the store
(`SqliteHistory` by default, `PostgresHistory` with `history.store: postgres`) and deletes
what is past retention; the `HistoryReader` answers ranges from the live buffer and the tiers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..config.schema import HistorySettings
from ..contract import StreamContract
from .postgres import PostgresHistory
from .query import HistoryReader, HistoryUnavailable
from .series import concrete_name, series_fields, tokens_of
from .sqlite import SqliteHistory
from .store import HistoryStore
from .tiers import Aggregator, BucketRow, TierSpec
from .writer import HistoryWriter

__all__ = ["Aggregator", "BucketRow", "History", "HistoryReader", "HistoryStore", "HistoryUnavailable",
           "HistoryWriter", "PostgresHistory", "SqliteHistory", "TierSpec", "concrete_name", "series_fields",
           "tiers_of", "tokens_of"]


ROLLUP = 6  # a rollup bucket holds this many of its tier's buckets


def tiers_of(settings: HistorySettings) -> list[TierSpec]:
    """The configured tiers, each followed by its rollup (same retention, 6 times the bucket)."""
    fine, coarse = settings.fine, settings.coarse
    return [TierSpec("fine", fine.resolution_s, fine.retention_s, "fine"),
            TierSpec("fine_rollup", fine.resolution_s * ROLLUP, fine.retention_s, "fine"),
            TierSpec("coarse", coarse.resolution_s, coarse.retention_s, "coarse"),
            TierSpec("coarse_rollup", coarse.resolution_s * ROLLUP, coarse.retention_s, "coarse")]


@dataclass
class History:
    """The history's parts, as the composition root wires them (`writer` is None when off)."""

    aggregator: Aggregator
    writer: HistoryWriter | None
    reader: HistoryReader

    @classmethod
    def create(cls, settings: HistorySettings, contracts: Iterable[StreamContract], *, source: str,
               postgres_dsn: str | None, live: Callable[[str], Awaitable[list[dict[str, Any]]]],
               interval_s: Callable[[str], float | None]) -> "History":
        contracts = list(contracts)
        tiers = tiers_of(settings)
        store: HistoryStore | None = None
        if settings.enabled:
            store = PostgresHistory(postgres_dsn) if settings.store == "postgres" and postgres_dsn \
                else SqliteHistory(settings.sqlite_path)
        aggregator = Aggregator(contracts, tiers)
        writer = HistoryWriter(aggregator, store, source=source,
                               retention_interval_s=settings.retention_interval_s) if store else None
        reader = HistoryReader({c.name: c for c in contracts}, store, tiers, max_points=settings.max_points,
                               live=live, own_source=source, interval_s=interval_s)
        return cls(aggregator, writer, reader)

    def state(self) -> dict[str, Any]:
        """For /healthz: the store, whether it is reachable, and what waits for it."""
        if self.writer is None:
            return {"status": "disabled"}
        return {"status": self.writer.status, "store": self.writer.store.name, "pending": len(self.writer.pending)}
