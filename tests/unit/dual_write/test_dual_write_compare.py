"""Item normalisation/diff, the DynamoDB value codec, checkpoints and the rate limiter."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.dual_write.compare import diff_items, normalise
from chariot_migrate.dual_write.data import DifferingItem, KeyRef, VerifyResult, report
from chariot_migrate.dual_write.migration import (
    FileCheckpointStore,
    RateLimiter,
    TableSpec,
    dumps_item,
    loads_item,
)


def test_numbers_sets_and_ignored_paths_are_normalised():
    legacy = {"id": "1", "n": Decimal("2"), "tags": {"b", "a"}, "updated": "t1", "meta": {"x": {"ts": 1, "v": 1}}}
    new = {"id": "1", "n": 2.0, "tags": {"a", "b"}, "updated": "t2", "meta": {"x": {"ts": 2, "v": 1}}}
    assert diff_items(legacy, new, ["updated", "meta.*.ts"]) == []
    diffs = diff_items(legacy, new)
    assert {d.path for d in diffs} == {"updated", "meta.x.ts"}


def test_diff_kinds():
    diffs = {d.path: d.kind for d in diff_items({"a": 1, "b": "x", "c": [1, 2]}, {"a": "1", "d": 1, "c": [1, 3]})}
    assert diffs == {"a": "type", "b": "missing", "d": "extra", "c[1]": "value"}


def test_verify_report_redacts_secret_fields_and_credential_key_segments():
    pin = "s3cr3tpin42"
    hook = {"username": "me@x.com", "key": f"#account#me@x.com#hook#{pin}"}
    result = VerifyResult(service="notification",
                          missing_in_new=[KeyRef(table="t", key=hook, legacy_key=hook)],
                          differing=[DifferingItem(ref=KeyRef(table="t", key={"id": "1"}, legacy_key={"id": "1"}),
                                                   fields=["secret"], examples=[])])
    doc = report(result)
    assert pin not in json.dumps(doc)
    assert doc["missing_in_new"][0]["key"]["key"].startswith("#account#me@x.com#hook#")
    assert doc["ok"] is False and doc["differing"][0]["fields"] == ["secret"]


_values = st.recursive(
    st.one_of(
        st.text(max_size=8),
        st.integers(-(10**12), 10**12),
        st.decimals(allow_nan=False, allow_infinity=False, places=3),
        st.binary(max_size=8),
        st.booleans(),
        st.none(),
        st.frozensets(st.text(max_size=4), max_size=3).map(set),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=6), _values, max_size=5))
def test_item_codec_round_trips_dynamodb_values(item):
    assert loads_item(dumps_item(item)) == item
    assert diff_items(item, loads_item(dumps_item(item))) == []


def test_normalise_is_json_compatible():
    assert normalise({"a": {Decimal("1.5"), Decimal("2")}}) == {"a": [1.5, 2]}


def test_table_spec_key_of():
    spec = TableSpec("widgets", "owner", "id")
    assert spec.key_of({"owner": "o", "id": "1", "x": 2}) == {"owner": "o", "id": "1"}
    with pytest.raises(ValueError, match="lacks key"):
        spec.key_of({"owner": "o"})


def test_file_checkpoint_store_round_trip(tmp_path):
    store = FileCheckpointStore(tmp_path)
    assert store.load("backfill-x") is None
    state = {"segments": {"0": {"last_key": {"username": "u", "key": "#w#1", "n": Decimal("3")}}}}
    store.save("backfill-x", state)
    assert FileCheckpointStore(tmp_path).load("backfill-x") == state
    store.clear("backfill-x")
    assert store.load("backfill-x") is None


def test_rate_limiter_paces_to_the_rate():
    now = [0.0]
    slept = []

    def sleep(d):
        slept.append(d)
        now[0] += d

    limiter = RateLimiter(10, clock=lambda: now[0], sleep=sleep)
    for _ in range(30):
        limiter.acquire()
    # Burst of 10 is free, the next 20 take 2 s at 10/s.
    assert now[0] == pytest.approx(2.0, abs=1e-6)
    unlimited = RateLimiter(None, clock=lambda: 0.0, sleep=lambda d: pytest.fail("slept"))
    for _ in range(1000):
        unlimited.acquire()
    with pytest.raises(ValueError):
        RateLimiter(0)
