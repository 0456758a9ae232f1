"""Percentiles of raw samples, the way the report states them.

Linear interpolation between closest ranks (numpy's default, "type 7"):
p0 is the minimum, p100 the maximum, and one sample is every percentile.
An empty set of samples has n = 0 and no percentiles, rather than an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

PERCENTILES = (50, 90, 95)


def percentile(samples: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) of `samples`, interpolated linearly; samples must not be empty."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    position = (len(ordered) - 1) * q / 100
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass(frozen=True)
class Summary:
    """n successful samples and their p50/p90/p95/max (None when n is 0); `failed` counts attempts without one."""

    n: int
    failed: int = 0
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, samples: Iterable[float], failed: int = 0) -> Summary:
        values = list(samples)
        if not values:
            return cls(0, failed)
        return cls(
            len(values),
            failed,
            percentile(values, 50),
            percentile(values, 90),
            percentile(values, 95),
            max(values),
        )
