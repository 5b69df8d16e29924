"""Packed chunks: bytes round-trip, merges keep the store's semantics (same run: nothing;
another run: one merged bucket; a late bucket: in its place), and trimming."""

from __future__ import annotations

import pytest

from aura_dashboard.history.chunks import BYTES_PER_BUCKET, Chunk, chunk_of, count_in, merge_steps, read_columns


def test_round_trip_and_sizes():
    chunk = Chunk.empty()
    assert chunk.merge([(20, 1.5, 2.0, 2.5, 2.25, 3), (10, -1.0, 0.1 + 0.2, 7.0, 7.0, 1)], run=4)
    data = chunk.encode()
    assert len(data) == 4 + 2 * BYTES_PER_BUCKET and count_in(len(data)) == 2
    back = Chunk.decode(memoryview(data))
    assert list(back.start) == [10, 20] and back.avg[0] == 0.1 + 0.2 and list(back.run) == [4, 4]
    assert list(back.count) == [1, 3] and back.last[1] == 2.25


def test_merge_is_idempotent_per_run_and_merges_across_runs():
    chunk = Chunk.empty()
    chunk.merge([(0, 2.0, 2.0, 2.0, 2.0, 1)], run=1)
    assert not chunk.merge([(0, 2.0, 2.0, 2.0, 2.0, 1)], run=1)
    assert chunk.merge([(0, 4.0, 5.0, 6.0, 6.0, 3)], run=2)
    assert (chunk.min[0], chunk.avg[0], chunk.max[0], chunk.last[0], chunk.count[0]) == (
        2.0, pytest.approx(17 / 4), 6.0, 6.0, 4)


def test_trim_and_read_a_range_across_chunks():
    a, b = Chunk.empty(), Chunk.empty()
    a.merge([(t, t, t, t, t, 1) for t in range(0, 3600, 600)], run=1)
    b.merge([(t, t, t, t, t, 1) for t in range(3600, 7200, 600)], run=1)
    t, lo, avg, hi, n = read_columns([a.encode(), b.encode()], 1200, 4800)
    assert t == [1200, 1800, 2400, 3000, 3600, 4200] and lo == [float(x) for x in t] and n == [1] * 6
    assert a.drop_before(1800) == 3 and list(a.start) == [1800, 2400, 3000]
    assert chunk_of("fine", 3599) == 0 and chunk_of("fine", 3600) == 3600 and chunk_of("coarse", 90000) == 86400


def test_merge_steps_weights_by_count_and_keeps_the_newest_bucket():
    one = ([0, 10, 20], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1, 1, 2])
    other = ([10], [0.0], [10.0], [20.0], [2])
    t, lo, avg, hi, n, newest = merge_steps([one, other], 20)
    assert t == [0, 20] and lo == [0.0, 3.0] and hi == [20.0, 3.0] and n == [4, 2] and newest == [10, 20]
    assert avg[0] == pytest.approx((1 + 2 + 20) / 4)
