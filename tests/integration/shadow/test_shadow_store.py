"""The same suite against both diff-store backends (SQLite file, real Redis at 127.0.0.1:6379)."""

import time
from uuid import uuid4

import pytest
import redis

from chariot_migrate.shadow.records import HitRecord, PairRecord, percentile
from chariot_migrate.shadow.store import RedisDiffStore, SQLiteDiffStore, open_diff_store

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteDiffStore(tmp_path / "shadow.db", max_examples=2)
        yield s
        s.close()
    else:
        prefix = f"test:{uuid4().hex}:shadow"
        s = RedisDiffStore(REDIS_URL, prefix=prefix, max_examples=2)
        yield s
        s.close()
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(match=prefix + "*"))
        if keys:
            r.delete(*keys)
        r.close()


NOW = (time.time() // 60) * 60 + 10
SIG_A = HitRecord("aaaaaaaaaaaa", "$.price", "value", "float")
SIG_T = HitRecord("bbbbbbbbbbbb", "$.ts", "value", "str-timestamp")


def rec(ts=NOW, hits=(), aa=None, lat=(0.010, 0.020), err=(False, False), service="svc", route="GET /x", examples=()):
    return PairRecord(
        service=service, route=route, ts=ts, hits=list(hits), aa_paths=None if aa is None else frozenset(aa),
        latency={"legacy": lat[0], "new": lat[1]}, error={"legacy": err[0], "new": err[1]}, examples=list(examples),
    )


def test_counts_latency_and_sets(store):
    batch = [rec() for _ in range(6)]
    batch += [rec(hits=[SIG_T], aa={"$.ts"}) for _ in range(3)]
    batch += [rec(hits=[SIG_A, SIG_T], aa=set(), err=(False, True), lat=(0.010, 0.300))]
    store.record(batch)
    store.record([rec(hits=[SIG_A], route="GET /x")])  # a second batch adds up
    (d,) = store.load()
    assert (d.service, d.route, d.pairs, d.exact, d.aa_pairs) == ("svc", "GET /x", 11, 6, 4)
    assert d.errors == {"legacy": 0, "new": 1} and d.requests == {"legacy": 11, "new": 11}
    assert d.signatures == {SIG_A.signature: 2, SIG_T.signature: 4}
    assert d.sig_meta[SIG_T.signature].path == "$.ts" and d.sig_meta[SIG_A.signature].value_class == "float"
    assert d.ab_paths == {"$.price": 2, "$.ts": 4} and d.aa_paths == {"$.ts": 3}
    assert d.diff_sets == {
        frozenset(): 6, frozenset({SIG_T.signature}): 3,
        frozenset({SIG_A.signature, SIG_T.signature}): 1, frozenset({SIG_A.signature}): 1,
    }
    assert 0.010 <= percentile(d.latency["legacy"], 0.5) < 0.0116
    assert 0.300 <= percentile(d.latency["new"], 0.99) < 0.35
    assert sum(d.latency["new"].values()) == 11
    assert list(d.timeline) == [int(NOW // 60) * 60] and d.timeline[int(NOW // 60) * 60].pairs == 11


def test_window_and_filters(store):
    store.record([rec(ts=NOW - 3600, hits=[SIG_A]), rec(ts=NOW), rec(ts=NOW, service="other", route="GET /y")])
    assert sum(d.pairs for d in store.load()) == 3
    recent = store.load(since_ts=NOW - 600)
    assert sorted((d.service, d.pairs) for d in recent) == [("other", 1), ("svc", 1)]
    assert [d.route for d in store.load(service="other")] == ["GET /y"]
    assert store.load(service="svc", route="GET /nope") == []
    (old,) = store.load(service="svc")
    assert old.sig_first_seen[SIG_A.signature] == int((NOW - 3600) // 60) * 60
    assert len(old.timeline) == 2


def test_examples_are_bounded_and_overflow_is_counted(store):
    exs = [rec(hits=[SIG_A], examples=[(SIG_A.signature, {"n": i})]) for i in range(5)]
    store.record(exs[:1])
    store.record(exs[1:])
    (d,) = store.load()
    assert d.examples[SIG_A.signature] == [{"n": 0}, {"n": 1}]
    assert d.examples_dropped == 3
    assert store.example_counts() == {SIG_A.signature: 2}
    r = rec(hits=[SIG_A])
    r.examples_skipped = 4  # the engine skipped building these
    store.record([r])
    assert store.load()[0].examples_dropped == 7


def test_empty_batch_and_empty_store(store):
    store.record([])
    assert store.load() == []
    assert store.example_counts() == {}


def test_two_sqlite_writers_share_one_file(tmp_path):
    a, b = SQLiteDiffStore(tmp_path / "s.db"), SQLiteDiffStore(tmp_path / "s.db")
    a.record([rec() for _ in range(3)])
    b.record([rec(hits=[SIG_A]) for _ in range(2)])
    (d,) = a.load()
    assert (d.pairs, d.exact) == (5, 3)
    a.close()
    b.close()


def test_open_diff_store_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = open_diff_store("sqlite:///rel/shadow.db")
    assert isinstance(s, SQLiteDiffStore) and s.path.as_posix() == "rel/shadow.db"
    s.close()
    s = open_diff_store(f"sqlite:///{tmp_path}/abs.db")
    assert isinstance(s, SQLiteDiffStore) and s.path == tmp_path / "abs.db"
    s.close()
    s = open_diff_store()
    assert s.path.as_posix() == ".chariot-migrate/shadow.db"
    s.close()
    prefix = f"test:{uuid4().hex}"
    s = open_diff_store(f"{REDIS_URL}?prefix={prefix}")
    assert isinstance(s, RedisDiffStore) and s.prefix == prefix
    s.close()
    with pytest.raises(ValueError, match="unsupported diff store URL"):
        open_diff_store("mysql://x")
