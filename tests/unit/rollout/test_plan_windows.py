"""Request windows: SideStats percentiles, query plans, and one suite for the SQLite and Redis stores."""

import uuid

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as hs

from chariot_migrate.rollout.windows import (
    BOUNDS_MS,
    FINE_RETENTION_S,
    SideStats,
    WindowRecorder,
    bucket_of,
    merge,
    open_window_store,
    query_plan,
    rollup_minutes,
)

T0 = 1_800_000_000.0  # a fixed "now" far from real time: stores must not depend on the wall clock


def test_percentiles_are_bucket_upper_bounds():
    s = SideStats()
    for ms in [1] * 50 + [40] * 45 + [900] * 5:
        b = bucket_of(ms)
        s.buckets[b] = s.buckets.get(b, 0) + 1
    assert s.percentile_ms(0.5) == 1 and s.percentile_ms(0.95) == 50 and s.percentile_ms(0.99) == 1000
    assert SideStats().percentile_ms(0.95) is None and SideStats().error_rate is None
    big = SideStats(1, 0, {bucket_of(10**6): 1})
    assert big.percentile_ms(0.5) == float("inf")


@given(hs.lists(hs.floats(0, 40_000), min_size=1, max_size=200), hs.floats(0.01, 1))
def test_percentile_never_understates_and_overstates_by_at_most_one_bucket(samples, q):
    s = SideStats()
    for ms in samples:
        s.buckets[bucket_of(ms)] = s.buckets.get(bucket_of(ms), 0) + 1
    exact = sorted(samples)[max(0, int(-(-q * len(samples) // 1)) - 1)]
    p = s.percentile_ms(q)
    assert p >= exact
    b = bucket_of(exact)
    assert p == (BOUNDS_MS[b] if b < len(BOUNDS_MS) else float("inf"))


def test_recorder_counts_errors_and_takes_atomically():
    r = WindowRecorder()
    r.observe("svc", "new", 200, 0.004, now=T0)
    r.observe("svc", "new", 503, 0.004, now=T0 + 0.5)
    r.observe("svc", "legacy", 200, 0.020, now=T0 + 1)
    rows = r.take()
    assert rows[("svc", "new", int(T0))].requests == 2 and rows[("svc", "new", int(T0))].errors == 1
    assert r.take() == {}
    assert rollup_minutes(rows)[("svc", "new", int(T0) // 60)].requests == 2
    assert merge([{"new": SideStats(1, 1)}, {"new": SideStats(2, 0)}])["new"].requests == 3


def test_query_plan_is_second_exact_recently_and_minute_coarse_beyond_retention():
    p = query_plan(T0 - 10.3, T0)
    assert p.minutes is None and p.fine_from == int(T0 - 10.3) + 1
    old = query_plan(T0 - 7 * 86400, T0)
    assert old.minutes is not None and old.minutes[0] == int((T0 - 7 * 86400) // 60)
    assert old.fine_from == old.minutes[1] * 60 and old.fine_from >= T0 - FINE_RETENTION_S


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    clock = [T0]
    if request.param == "sqlite":
        from chariot_migrate.rollout.windows import SQLiteWindowStore

        s = SQLiteWindowStore(tmp_path / "m.db", clock=lambda: clock[0])
        yield s, clock
        s.close()
    else:
        from chariot_migrate.rollout.windows import RedisWindowStore

        prefix = f"test:{uuid.uuid4().hex}:"
        s = RedisWindowStore(f"redis://127.0.0.1:6379/0?prefix={prefix}", clock=lambda: clock[0])
        yield s, clock
        r = redis.Redis()
        for k in r.scan_iter(prefix + "*"):
            r.delete(k)
        s.close()


def _rows(svc, side, sec, n, errors=0, ms=4.0):
    return {(svc, side, int(sec)): SideStats(n, errors, {bucket_of(ms): n})}


def test_store_sums_sides_and_only_counts_data_since_the_change(store):
    s, clock = store
    s.add(_rows("svc", "new", T0 - 30, 100, errors=0))  # before the change, same minute
    s.add(_rows("svc", "new", T0 - 5, 10, errors=2, ms=40))
    s.add(_rows("svc", "new", T0 - 5, 5, errors=0, ms=40))  # a second flush of the same second adds up
    s.add(_rows("svc", "legacy", T0 - 4, 7))
    s.add(_rows("other", "new", T0 - 4, 99))
    clock[0] = T0
    got = s.query("svc", T0 - 10)
    assert got["new"].requests == 15 and got["new"].errors == 2 and got["new"].percentile_ms(0.95) == 50
    assert got["legacy"].requests == 7
    assert s.query("svc", T0 - 60)["new"].requests == 115
    assert "new" not in s.query("svc", T0 - 4.5)  # the change at T0-4.5: second T0-5 is before it
    assert s.query("nobody", T0 - 60) == {}


def test_store_reads_minute_rollups_for_long_windows(store):
    s, clock = store
    s.add(_rows("svc", "new", T0 - 3 * 86400, 40, errors=1))
    s.add(_rows("svc", "new", T0 - 10, 2))
    got = s.query("svc", T0 - 7 * 86400, now=T0)
    assert got["new"].requests == 42 and got["new"].errors == 1
    assert s.query("svc", T0 - 60, now=T0)["new"].requests == 2


def test_open_window_store_urls(tmp_path):
    assert open_window_store(f"sqlite:///{tmp_path}/m.db").query("x", 0) == {}
    with pytest.raises(ValueError, match="unknown metrics store URL"):
        open_window_store("mysql://x")
