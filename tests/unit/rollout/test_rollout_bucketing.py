import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chariot_migrate.rollout.bucketing import BUCKETS, bucket, choose_side, in_cohort, to_basis_points

accounts = st.emails() | st.text(min_size=1, max_size=40)
bp = st.integers(min_value=0, max_value=BUCKETS)


@given(accounts, st.text(max_size=20))
def test_bucket_is_in_range_and_deterministic(acct, salt):
    b = bucket(salt, acct)
    assert 0 <= b < BUCKETS
    bucket.cache_clear()
    assert bucket(salt, acct) == b


@given(accounts, bp)
def test_same_account_same_side(acct, p):
    sides = {choose_side(salt="svc", key=acct, percent_bp=p, pins={}).side for _ in range(3)}
    assert len(sides) == 1


@given(accounts, bp, bp)
def test_raising_the_percentage_never_moves_an_account_back(acct, a, b):
    lo, hi = sorted((a, b))
    if in_cohort("svc", acct, lo):
        assert in_cohort("svc", acct, hi)


def test_share_within_half_a_percent_over_100k_accounts():
    accts = [f"user{i}@example{i % 97}.com" for i in range(100_000)]
    for percent in (1, 5, 25, 50, 99.99):
        p = to_basis_points(percent)
        share = sum(in_cohort("risk-assessment", a, p) for a in accts) / len(accts) * 100
        assert abs(share - percent) <= 0.5, (percent, share)


def test_services_bucket_independently():
    accts = [f"u{i}@x.com" for i in range(20_000)]
    a = {x for x in accts if in_cohort("account", x, 5000)}
    b = {x for x in accts if in_cohort("risk-assessment", x, 5000)}
    overlap = len(a & b) / len(accts)
    assert abs(overlap - 0.25) < 0.02  # independent halves overlap in a quarter


@settings(max_examples=50)
@given(accounts)
def test_precedence_override_then_pin_then_bucket(acct):
    assert choose_side(salt="s", key=acct, percent_bp=0, pins={acct: "new"}).side == "new"
    assert choose_side(salt="s", key=acct, percent_bp=10000, pins={acct: "legacy"}).reason == "pinned"
    d = choose_side(salt="s", key=acct, percent_bp=10000, pins={acct: "new"}, override="legacy")
    assert (d.side, d.reason) == ("legacy", "override")


def test_no_key_uses_a_random_bucket_and_keeps_the_split():
    rng = random.Random(7)
    sides = [choose_side(salt="s", key=None, percent_bp=3000, pins={}, rng=rng) for _ in range(20_000)]
    assert all(d.reason == "random" for d in sides)
    share = sum(d.side == "new" for d in sides) / len(sides)
    assert abs(share - 0.30) < 0.02


def test_retired_service_always_new():
    assert choose_side(salt="s", key="a", percent_bp=0, pins={}, retired=True).side == "new"


@pytest.mark.parametrize("bad", [-1, 100.5, 0.001, 33.333])
def test_basis_points_refuses_bad_percentages(bad):
    with pytest.raises(ValueError):
        to_basis_points(bad)


def test_basis_points_exact():
    assert to_basis_points(0.01) == 1 and to_basis_points(25) == 2500 and to_basis_points(100) == 10000
