"""Percentiles and summaries for latency samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (p in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary(
    values: Sequence[float], points: Sequence[int] = (50, 95, 99), *, digits: int = 2, empty: float | None = math.nan
) -> dict[str, float | int | None]:
    """The percentiles `points` (as "p50", ...), max and count, rounded to `digits`; `empty` for
    each when there are no values."""
    ordered = sorted(values)
    if not ordered:
        return {**{f"p{p}": empty for p in points}, "max": empty, "n": 0}
    return {
        **{f"p{p}": round(percentile(ordered, p), digits) for p in points},
        "max": round(ordered[-1], digits),
        "n": len(ordered),
    }
