"""Exact percentiles over a sorted sample (nearest rank)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """The nearest-rank `p`th percentile of `sorted_values` (ascending); None when empty.

    The smallest value such that at least `p` percent of the values are at or below it.
    """
    if not sorted_values:
        return None
    if not 0 < p <= 100:
        raise ValueError("p must be in (0, 100]")
    # p * n / 100 computed first and rounded: 0.57 * 100 must give rank 57, not 58.
    rank = math.ceil(round(p * len(sorted_values) / 100, 9))
    return sorted_values[max(rank, 1) - 1]
