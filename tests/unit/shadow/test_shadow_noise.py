import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.shadow.noise import (
    PathCounts,
    adjusted_match_rate,
    classify,
    rate_gap_lower_bound,
    wilson_bounds,
)


def test_wilson_bounds():
    assert wilson_bounds(0, 0, 1.645) == (0.0, 1.0)
    lo, hi = wilson_bounds(0, 100, 1.645)
    assert lo == 0.0 and 0.02 < hi < 0.03
    lo, hi = wilson_bounds(30, 1000, 1.645)
    assert lo < 0.03 < hi and hi - lo < 0.02


@pytest.mark.parametrize(
    "counts,expected",
    [
        # A random timestamp/uuid differs in every A/B and every A/A pair: noise.
        (PathCounts(1000, 1000, 200, 200), "noise"),
        # A real 3 % difference, clean A/A baseline: difference.
        (PathCounts(30, 1000, 0, 200), "difference"),
        # The same rate with too few pairs: not enough to say.
        (PathCounts(3, 40, 0, 10), "insufficient"),
        # Significant but below min_samples.
        (PathCounts(20, 20, 0, 20), "insufficient"),
        # No A/A baseline at all: we cannot rule out noise.
        (PathCounts(1000, 1000, 0, 0), "insufficient"),
        # Noisy in A/A (10 %) but always different in A/B: a real difference on top of noise.
        (PathCounts(1000, 1000, 20, 200), "difference"),
        # A/B rate no higher than the A/A rate: noise.
        (PathCounts(100, 1000, 25, 200), "noise"),
        # One odd pair in a thousand with a clean baseline: insufficient, not a difference.
        (PathCounts(1, 1000, 0, 200), "insufficient"),
    ],
)
def test_classify(counts, expected):
    assert classify(counts) == expected


def test_min_samples_and_confidence_are_parameters():
    c = PathCounts(20, 20, 0, 20)
    assert classify(c, min_samples=10) == "difference"
    borderline = PathCounts(8, 200, 0, 100)
    assert classify(borderline, confidence=0.80, min_samples=50) == "difference"
    assert classify(borderline, confidence=0.999, min_samples=50) == "insufficient"


@given(st.integers(0, 500), st.integers(1, 500), st.integers(0, 500), st.integers(1, 500))
def test_never_a_difference_when_ab_rate_does_not_exceed_aa_rate(ab_diff, ab_total, aa_diff, aa_total):
    ab_diff, aa_diff = min(ab_diff, ab_total), min(aa_diff, aa_total)
    c = PathCounts(ab_diff, ab_total, aa_diff, aa_total)
    if c.ab_rate <= c.aa_rate:
        assert classify(c, min_samples=1) != "difference"
        assert rate_gap_lower_bound(c) <= 0


def test_false_positive_rate_is_controlled_for_equal_noise():
    # Same true rate in A/B and A/A: at 95 % confidence, far fewer than 5 % "difference" verdicts.
    rng = random.Random(7)
    hits = 0
    for _ in range(300):
        ab = sum(rng.random() < 0.2 for _ in range(500))
        aa = sum(rng.random() < 0.2 for _ in range(100))
        hits += classify(PathCounts(ab, 500, aa, 100)) == "difference"
    assert hits / 300 < 0.05


def test_adjusted_match_rate():
    sets = {frozenset(): 90, frozenset({"ts"}): 5, frozenset({"ts", "price"}): 3, frozenset({"price"}): 2}
    assert adjusted_match_rate(sets, 100, set()) == pytest.approx(0.90)
    assert adjusted_match_rate(sets, 100, {"ts"}) == pytest.approx(0.95)
    assert adjusted_match_rate(sets, 100, {"ts", "price"}) == pytest.approx(1.0)
    assert adjusted_match_rate({}, 0, set()) is None
