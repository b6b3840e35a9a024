"""
Summaries of measurements: percentiles, and durations and sizes written for
the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from attrs import frozen

MiB = 1024 * 1024
KiB = 1024


def percentile(values: Sequence[float], fraction: float) -> float:
    """
    The C{fraction} quantile of C{values} (0.5 the median, 0.99 the 99th
    percentile), interpolated linearly between the two nearest ranks.

    @raise ValueError: When C{values} is empty or C{fraction} is outside
        [0, 1].
    """
    if not values:
        raise ValueError("no values")
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction {fraction} is not between 0 and 1")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = math.ceil(position)
    weight = position - below
    return ordered[below] * (1 - weight) + ordered[above] * weight


@frozen
class Latencies:
    """
    Latencies in seconds, summarised.

    @ivar count: How many were measured.
    @ivar p50: The median.
    @ivar p99: The 99th percentile.
    """

    count: int
    p50: float
    p99: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Latencies:
        return cls(len(values), percentile(values, 0.5), percentile(values, 0.99))


def ms(seconds: float) -> str:
    """C{seconds} in milliseconds, with precision that suits the size."""
    value = seconds * 1000
    if abs(value) >= 100:
        return f"{value:.0f} ms"
    if abs(value) >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def mib(size: float) -> str:
    """C{size} bytes in MiB."""
    return f"{size / MiB:.1f} MiB"


def kib(size: float) -> str:
    """C{size} bytes in KiB."""
    return f"{size / KiB:.1f} KiB"


def rate(per_second: float) -> str:
    """A throughput."""
    return f"{per_second:,.0f}/s"
