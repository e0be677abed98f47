"""One set of latency buckets, from 1 ms: the proxy's and the services' request histograms, the
toolkit's duration histograms and the gates' request windows all use the same edges, so the
gates' p95 and Grafana's histogram_quantile read the same buckets."""

import sqlite3

from chariot_migrate.observability.latency import LATENCY_BUCKETS
from chariot_migrate.rollout.windows import BOUNDS_MS, SideStats, SQLiteWindowStore, bucket_of

EXPECTED = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def test_every_request_histogram_uses_the_buckets_from_1_ms():
    from chariot_migrate.observability import metrics as obs
    from chariot_migrate.proxy import metrics as proxy
    from chariot_migrate.services.kit import metrics as kit

    assert LATENCY_BUCKETS == EXPECTED
    assert proxy.BUCKETS == kit.LATENCY_BUCKETS == obs.BUCKETS == EXPECTED
    assert tuple(proxy.REQUEST_DURATION._upper_bounds[:-1]) == EXPECTED
    m = proxy.RequestMetrics()
    m.observe("s", "GET", "/x", 200, "new", "bucket", 0.0008)  # sub-millisecond: the first bucket
    assert m._dur[("s", "GET", "/x", "200", "new")][0] == 1


def test_the_gates_windows_use_the_same_edges_in_ms():
    assert BOUNDS_MS == (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
    s = SideStats()
    for ms in [0.4] * 94 + [3] * 6:  # a 0.4 ms proxy and a few slower requests
        s.buckets[bucket_of(ms)] = s.buckets.get(bucket_of(ms), 0) + 1
    assert s.percentile_ms(0.94) == 1 and s.percentile_ms(0.95) == 5  # same bucket as histogram_quantile


def test_rows_of_the_earlier_bucket_layout_are_not_read_as_these_buckets(tmp_path):
    db = tmp_path / "metrics.db"
    c = sqlite3.connect(db)
    c.execute("CREATE TABLE winb_s (service TEXT, side TEXT, sec INTEGER, bucket INTEGER, n INTEGER)")
    c.execute("INSERT INTO winb_s VALUES ('a', 'new', 1000, 18, 5)")  # index 18 = 30 s in the old layout
    c.commit()
    c.close()
    store = SQLiteWindowStore(db, clock=lambda: 1010.0)
    store.add({("a", "new", 1001): SideStats(2, 0, {bucket_of(3): 2})})
    got = store.query("a", 990.0, now=1010.0)["new"]
    assert got.buckets == {bucket_of(3): 2} and got.percentile_ms(0.95) == 5
