"""The stores, SQLite and PostgreSQL alike: idempotent writes per run, merges across runs,
reads merged to a step, retention that deletes exactly what is past it, and a writer that
keeps PostgreSQL's buckets while it is down and writes them once when it returns."""

from __future__ import annotations

import asyncio

import pytest

from aura_dashboard.collectors.database import dsn_of
from aura_dashboard.history import (Aggregator, BucketRow, HistoryWriter, PostgresHistory, SqliteHistory,
                                    TierSpec)
from aura_dashboard.history.store import ReadRequest
from tests import pg
from tests.collectors.test_database import db_settings
from tests.history.test_tiers import TOY, Clock, env


def row(start, value, *, tier="fine", field="cpu.percent", keys=(), source="host-a", count=1, stream="toy"):
    return BucketRow(tier, stream, source, field, tuple(keys), start, value, value, value, value, count)


async def read_all(store, tier="fine", step=10, source="host-a", fields=None, start=0, end=10**10):
    series = await store.read(ReadRequest(tier, "toy", source, fields, start, end, step))
    return sorted((s.field, s.keys, t, lo, avg, hi, n)
                  for s in series for t, lo, avg, hi, n in zip(s.t, s.min, s.avg, s.max, s.count))


async def test_writes_are_idempotent_per_run_and_merged_across_runs(store):
    run1 = await store.begin_run("host-a", 100.0)
    batch = [row(100, 1.0), row(110, 2.0), row(100, 5.0, field="net.*.rx", keys=("eth0",))]
    await store.write(batch, run1)
    await store.write(batch, run1)  # retried after an uncertain commit: nothing doubled
    assert await read_all(store) == [("cpu.percent", (), 100, 1, 1, 1, 1), ("cpu.percent", (), 110, 2, 2, 2, 1),
                                     ("net.*.rx", ("eth0",), 100, 5, 5, 5, 1)]
    run2 = await store.begin_run("host-a", 115.0)
    # The restarted writer fills the bucket whose first part was flushed at shutdown: merged.
    await store.write([BucketRow("fine", "toy", "host-a", "cpu.percent", (), 110, 4.0, 5.0, 6.0, 6.0, 3)], run2)
    await store.write([BucketRow("fine", "toy", "host-a", "cpu.percent", (), 110, 4.0, 5.0, 6.0, 6.0, 3)], run2)
    merged = [r for r in await read_all(store) if r[2] == 110 and r[0] == "cpu.percent"]
    assert merged == [("cpu.percent", (), 110, 2, pytest.approx((2 + 15) / 4), 6, 4)]
    assert await store.restarts("host-a", 0, 200) == [100.0, 115.0]
    assert await store.restarts("host-a", 101, 200) == [115.0]
    assert await store.sources("toy") == ["host-a"]


async def test_reads_merge_buckets_into_steps_and_sources(store):
    run = await store.begin_run("host-a", 0.0)
    await store.write([row(t, float(t)) for t in range(0, 120, 10)]
                      + [row(t, 1000.0, source="host-b") for t in range(0, 60, 10)], run)
    got = await read_all(store, step=60)
    assert got == [("cpu.percent", (), 0, 0, 25, 50, 6), ("cpu.percent", (), 60, 60, 85, 110, 6)]
    both = await read_all(store, step=60, source=None)  # a shared stream without `source`: all merged
    assert both[0] == ("cpu.percent", (), 0, 0, pytest.approx((150 + 6000) / 12), 1000, 12)
    assert await read_all(store, step=60, fields=("net.*.rx",)) == []
    assert await read_all(store, step=10, start=30, end=50) == [("cpu.percent", (), 30, 30, 30, 30, 1),
                                                                ("cpu.percent", (), 40, 40, 40, 40, 1)]


async def test_retention_deletes_exactly_what_is_past_it(store):
    run = await store.begin_run("host-a", 0.0)
    await store.write([row(t, 1.0) for t in range(0, 3000, 10)]
                      + [row(t, 1.0, tier="coarse") for t in range(0, 3000, 300)], run)
    assert await store.delete_before("fine", 1500, batch=7) == 150
    kept = await read_all(store)
    assert [r[2] for r in kept] == list(range(1500, 3000, 10))
    assert await store.delete_before("coarse", 900, batch=1000) == 3
    assert [r[2] for r in await read_all(store, tier="coarse", step=300)] == list(range(900, 3000, 300))


async def test_store_never_grows_past_retention_with_a_fast_clock(tmp_path):
    """Weeks of samples through the aggregator and the writer, a fast clock driving both."""
    clock = Clock(1_000_000.0)
    tiers = [TierSpec("fine", 10, 3600), TierSpec("coarse", 300, 6 * 3600)]
    store = SqliteHistory(str(tmp_path / "h.db"))
    await store.open()
    agg = Aggregator([TOY], tiers, grace_s=0, clock=clock)
    writer = HistoryWriter(agg, store, source="host-a", clock=clock)
    counts = []
    for hour in range(24):
        for i in range(360):
            clock.now += 10
            agg.add(env(clock.now, {"cpu": {"percent": i % 100}, "net": {"eth0": {"rx": i}}}))
        writer.collect()
        await writer.flush()
        await writer.retain()
        fine = await read_all(store)
        coarse = await read_all(store, tier="coarse", step=300)
        oldest_fine = min(r[2] for r in fine)
        assert oldest_fine >= clock.now - 3600 - 10, "a fine bucket outlived its retention"
        assert min(r[2] for r in coarse) >= clock.now - 6 * 3600 - 300
        counts.append((len(fine), len(coarse)))
    # Two series: at most an hour of 10 s buckets and six hours of 5 min ones each, plus the edges.
    assert max(f for f, _ in counts) <= 2 * (360 + 1) and max(c for _, c in counts) <= 2 * (72 + 2)
    assert counts[-1] == counts[-2]  # steady: nothing grows
    await store.close()


async def test_postgres_stopped_mid_run_gets_its_buckets_once_when_it_returns(throwaway):  # noqa: F811
    clock = Clock(10_000.0)
    store = PostgresHistory(dsn_of(db_settings(throwaway.env()), 3))
    agg = Aggregator([TOY], [TierSpec("fine", 10, 86400)], grace_s=0, clock=clock)
    writer = HistoryWriter(agg, store, source="host-a", clock=clock)
    await writer.open()

    def sample(n):
        for _ in range(n):
            clock.now += 10
            agg.add(env(clock.now - 5, {"cpu": {"percent": clock.now % 97}}))
        writer.collect()

    sample(6)
    await writer.flush()
    throwaway.stop()
    sample(6)  # written while PostgreSQL is down: they wait
    with pytest.raises(Exception):
        await writer.flush()
    assert len(writer.pending) == 6
    throwaway.start()
    await writer.flush()
    # A retry of a batch already committed (the answer lost) doubles nothing.
    first = (await read_all(store))[:3]
    writer.pending.extend(agg_rows := [BucketRow("fine", "toy", "host-a", field, keys, t, lo, avg, hi, hi, n)
                                       for field, keys, t, lo, avg, hi, n in first])
    await writer.flush()
    rows = [(t, n) for _, _, t, _, _, _, n in await read_all(store)]
    assert len(rows) == 12 and all(count == 1 for _, count in rows) and agg_rows
    assert [b for b, _ in rows] == list(range(10_000, 10_120, 10))
    await writer.stop()


async def test_writer_loop_heals_by_itself_and_stops_on_cancel(throwaway):  # noqa: F811
    store = PostgresHistory(dsn_of(db_settings(throwaway.env()), 3))
    agg = Aggregator([TOY], [TierSpec("fine", 1, 86400)], grace_s=0)
    writer = HistoryWriter(agg, store, source="host-a", tick_s=0.05)
    await writer.open()
    task = asyncio.create_task(writer.run())
    throwaway.stop()

    async def until(predicate):
        while not predicate():
            await asyncio.sleep(0.05)
    import time
    agg.add(env(time.time() - 3, {"cpu": {"percent": 5}}))
    await asyncio.wait_for(until(lambda: writer.status == "down"), 20)
    throwaway.start()
    await asyncio.wait_for(until(lambda: writer.status == "up" and not writer.pending), 30)
    assert len(await read_all(store, step=1)) == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    await writer.stop()


async def test_buckets_across_chunks_read_in_order_and_retention_cuts_through_a_chunk(store):
    """Buckets are packed per chunk of time (an hour of the fine tier): a range crossing chunk
    borders reads in order, a late bucket lands in its place, and retention drops whole chunks
    and trims the one that straddles the cutoff — exactly what is past it."""
    run = await store.begin_run("host-a", 0.0)
    starts = list(range(0, 3 * 3600, 10))
    await store.write([row(t, float(t)) for t in starts if t != 3600], run)
    await store.write([row(3600, 3600.0)], run)  # late, into a chunk already written
    got = await read_all(store, start=3000, end=7300)
    assert [r[2] for r in got] == list(range(3000, 7300, 10))
    assert await store.delete_before("fine", 5000, batch=100) == 500
    assert [r[2] for r in await read_all(store)] == list(range(5000, 3 * 3600, 10))
    assert await store.delete_before("fine", 5000, batch=100) == 0
