"""Noise model: is a field path a real legacy/new difference, or does it differ anyway? (pure)

After Diffy, cheaper and with a confidence bound instead of count thresholds. For each
(route, collapsed path) we count how many A/B pairs (legacy vs new) differ there and how many
A/A pairs (the primary side called twice) differ there. The path is a *difference* only when the
A/B rate beats the A/A rate with confidence: the lower bound of the Newcombe hybrid-score
interval of ``p_ab − p_aa`` (built from one-sided Wilson bounds, well behaved at 0 and 100 %)
is above zero, and there are at least ``min_samples`` A/B pairs. A path that also differs in A/A
and is not significantly worse in A/B is *noise* (timestamps, request ids, UUIDs: no config).
Everything else — too few pairs, or no A/A evidence either way — is *insufficient*.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

Classification = Literal["difference", "noise", "insufficient"]
DEFAULT_MIN_SAMPLES = 50  # Kayenta's floor per metric


@dataclass(frozen=True, slots=True)
class PathCounts:
    ab_diff: int  # A/B pairs differing at this path
    ab_total: int  # A/B pairs of the route
    aa_diff: int  # A/A pairs differing at this path
    aa_total: int  # A/A pairs of the route

    @property
    def ab_rate(self) -> float:
        return self.ab_diff / self.ab_total if self.ab_total else 0.0

    @property
    def aa_rate(self) -> float:
        return self.aa_diff / self.aa_total if self.aa_total else 0.0


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(confidence)  # one-sided


def wilson_bounds(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of k/n; (0, 1) when n == 0 (we know nothing)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_gap_lower_bound(c: PathCounts, *, confidence: float = 0.95) -> float:
    """One-sided lower confidence bound of ``p_ab − p_aa`` (Newcombe 1998, method 10)."""
    z = _z(confidence)
    p1, p2 = c.ab_rate, c.aa_rate
    l1, _ = wilson_bounds(c.ab_diff, c.ab_total, z)
    _, u2 = wilson_bounds(c.aa_diff, c.aa_total, z)
    if c.aa_total == 0:
        p2 = 0.0  # no baseline: the bound must use the full (0, 1) interval
    return (p1 - p2) - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)


def classify(
    counts: PathCounts, *, confidence: float = 0.95, min_samples: int = DEFAULT_MIN_SAMPLES
) -> Classification:
    significant = counts.ab_diff > 0 and rate_gap_lower_bound(counts, confidence=confidence) > 0
    if significant and counts.ab_total >= min_samples:
        return "difference"
    if not significant and counts.aa_diff > 0:
        return "noise"
    return "insufficient"


def adjusted_match_rate(
    diff_sets: Mapping[frozenset[str], int] | Iterable[tuple[frozenset[str], int]],
    total_pairs: int,
    forgiven: set[str] | frozenset[str],
) -> float | None:
    """Share of A/B pairs whose differences are all forgiven (noise or ignored signatures).

    ``diff_sets`` counts pairs by the set of signatures they showed (the empty set = exact match).
    """
    if total_pairs <= 0:
        return None
    items = diff_sets.items() if isinstance(diff_sets, Mapping) else diff_sets
    ok = sum(n for sigs, n in items if sigs <= forgiven)
    return ok / total_pairs
