"""Pure numbers for the benchmark: percentiles, one load run's summary, medians over rounds."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, Field


class LoadResult(BaseModel):
    """One load run, as both loaders print it (one JSON line; latencies in µs)."""

    requests: int = Field(ge=0)
    duration_us: int = Field(gt=0)
    errors: int = Field(0, ge=0)  # connect/read/write/timeout errors plus non-2xx/3xx answers
    non2xx: int = Field(0, ge=0)
    p50_us: int = Field(ge=0)
    p95_us: int = Field(ge=0)
    p99_us: int = Field(ge=0)

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100); 0 for no values."""
    if not sorted_values:
        return 0.0
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise(latencies_us: list[float], *, duration_us: int, errors: int, non2xx: int) -> LoadResult:
    """Summary of one run from raw per-request latencies (successful and failed answers alike)."""
    ordered = sorted(latencies_us)
    return LoadResult(requests=len(ordered), duration_us=max(1, duration_us), errors=errors, non2xx=non2xx,
                      p50_us=round(percentile(ordered, 50)), p95_us=round(percentile(ordered, 95)),
                      p99_us=round(percentile(ordered, 99)))


def median_round(rounds: Sequence[LoadResult]) -> LoadResult:
    """The round with the median throughput (lower median for even counts).

    One whole round, not a mix of per-metric medians, so its p50/p99 belong to its rps.
    """
    if not rounds:
        raise ValueError("no rounds to choose from")
    ordered = sorted(rounds, key=lambda r: r.rps)
    return ordered[(len(ordered) - 1) // 2]
