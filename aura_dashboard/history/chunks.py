"""Packed buckets: a tier holds one row per series and chunk of time, whose value is every
bucket of that chunk as columns of binary arrays.

Why: a query of a day or a month at 1,500 points reads about 1,440 buckets per series; as one
database row per bucket, building those rows in the driver cost ~3 µs each (20-35 ms for the
page's series, four times the indexed scan), and PostgreSQL's 24-byte row header doubled the
storage. A chunk is decoded with `array.frombytes` and handed on with `tolist()`, in C.

A chunk's bytes: the bucket count (uint32), then `start` (int64, seconds), `min`, `avg`,
`max`, `last` (float64), `count` and `run` (uint32), each an array of that many values in
ascending `start`, little-endian.
"""

from __future__ import annotations

import bisect
import struct
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

# Each tier's chunk length in seconds, whatever its configured bucket: about 360 buckets at the
# defaults (10 s for an hour, 1 min for 6 h, 5 min for a day, 30 min for a week), so a
# rewrite when a bucket closes stays a few kilobytes and a month's read a few dozen rows.
CHUNK_SECONDS = {"fine": 3600, "fine_rollup": 6 * 3600, "coarse": 86400, "coarse_rollup": 7 * 86400}

_HEADER = struct.Struct("<I")
_COLUMNS = (("start", "q"), ("min", "d"), ("avg", "d"), ("max", "d"), ("last", "d"), ("count", "I"), ("run", "I"))
BYTES_PER_BUCKET = sum(array(code).itemsize for _, code in _COLUMNS)
assert BYTES_PER_BUCKET == 48, "array item sizes differ from int64/float64/uint32 on this platform"
_SWAP = sys.byteorder != "little"


def chunk_of(tier: str, start: int) -> int:
    """The start of the chunk that holds a bucket starting at `start`."""
    span = CHUNK_SECONDS[tier]
    return start // span * span


def count_in(size: int) -> int:
    """The number of buckets in a chunk of `size` bytes (for SQL that sees only the length)."""
    return (size - _HEADER.size) // BYTES_PER_BUCKET


@dataclass
class Chunk:
    """The buckets of one series in one chunk, as columns in ascending `start`."""

    start: array
    min: array
    avg: array
    max: array
    last: array
    count: array
    run: array

    @classmethod
    def empty(cls) -> Chunk:
        return cls(*(array(code) for _, code in _COLUMNS))

    @classmethod
    def decode(cls, data: bytes) -> Chunk:
        data = bytes(data)  # PostgreSQL's driver hands a memoryview
        (n,) = _HEADER.unpack_from(data)
        columns, offset = [], _HEADER.size
        for _, code in _COLUMNS:
            column = array(code)
            size = n * column.itemsize
            column.frombytes(data[offset:offset + size])
            if _SWAP:
                column.byteswap()
            columns.append(column)
            offset += size
        return cls(*columns)

    def encode(self) -> bytes:
        parts = [_HEADER.pack(len(self.start))]
        for name, _ in _COLUMNS:
            column = getattr(self, name)
            if _SWAP:
                column = array(column.typecode, column)
                column.byteswap()
            parts.append(column.tobytes())
        return b"".join(parts)

    def __len__(self) -> int:
        return len(self.start)

    def merge(self, rows: Iterable[tuple[int, float, float, float, float, int]], run: int) -> bool:
        """Add buckets (start, min, avg, max, last, count) written by `run`; a bucket this
        chunk already holds from another run is merged into one (the partial bucket flushed at
        shutdown, filled on after the restart), one from the same run is left alone (a batch
        retried after an uncertain commit). True when anything changed."""
        changed = False
        for start, lo, avg, hi, last, count in sorted(rows):
            i = bisect.bisect_left(self.start, start)
            if i < len(self.start) and self.start[i] == start:
                if self.run[i] == run:
                    continue
                total = self.count[i] + count
                self.avg[i] = (self.avg[i] * self.count[i] + avg * count) / total
                self.min[i] = min(self.min[i], lo)
                self.max[i] = max(self.max[i], hi)
                self.last[i], self.count[i], self.run[i] = last, total, run
            else:
                for column, value in ((self.start, start), (self.min, lo), (self.avg, avg), (self.max, hi),
                                      (self.last, last), (self.count, count), (self.run, run)):
                    column.insert(i, value)
            changed = True
        return changed

    def drop_before(self, cutoff: int) -> int:
        """Remove the buckets starting before `cutoff`; how many were removed."""
        i = bisect.bisect_left(self.start, cutoff)
        if i:
            for name, _ in _COLUMNS:
                del getattr(self, name)[:i]
        return i


def read_columns(chunks: Iterable[bytes], start: int, end: int) -> tuple[list, list, list, list, list]:
    """The buckets in [start, end) of a series' chunks (in ascending chunk order), as lists of
    start, min, avg, max and count."""
    columns: tuple[list, ...] = ([], [], [], [], [])
    for data in chunks:
        chunk = Chunk.decode(data)
        lo = bisect.bisect_left(chunk.start, start)
        hi = bisect.bisect_left(chunk.start, end)
        if lo >= hi:
            continue
        for out, column in zip(columns, (chunk.start, chunk.min, chunk.avg, chunk.max, chunk.count)):
            out.extend(column[lo:hi].tolist() if (lo, hi) != (0, len(chunk)) else column.tolist())
    return columns


def merge_steps(parts: list[tuple[list, list, list, list, list]], step: int) -> tuple[list, ...]:
    """Several series' buckets (several sources of one series) merged into steps of `step`
    seconds: min of the mins, the count-weighted average, max of the maxes, the sum of counts;
    and, last, the start of the newest bucket merged into each step."""
    merged: dict[int, list] = {}
    for t, lo, avg, hi, n in parts:
        for b, mn, av, mx, c in zip(t, lo, avg, hi, n):
            key = b // step * step
            cell = merged.get(key)
            if cell is None:
                merged[key] = [mn, av * c, mx, c, b]
            else:
                if mn < cell[0]:
                    cell[0] = mn
                cell[1] += av * c
                if mx > cell[2]:
                    cell[2] = mx
                cell[3] += c
                if b > cell[4]:
                    cell[4] = b
    keys = sorted(merged)
    cells = [merged[k] for k in keys]
    return (keys, [c[0] for c in cells], [c[1] / c[3] for c in cells], [c[2] for c in cells],
            [c[3] for c in cells], [c[4] for c in cells])
