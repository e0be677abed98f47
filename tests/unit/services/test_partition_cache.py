"""GET /my answered from a cached partition gives exactly what the DynamoDB query gives.

The property runs both on the same random partitions and queries: the in-memory answer
(``partition_cache``) against ``run_my_query`` on (in-process) moto, whenever the snapshot says it
can answer; and it must say it cannot whenever one page would not have held the partition.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chariot_migrate.services.kit.partition_cache import (
    MAX_PARTITION_JSON_BYTES,
    answer_from_snapshot,
    needs_dynamodb,
    partition_key,
    snapshot_of,
)
from chariot_migrate.services.kit.plain_store import MyQuery, PlainStore, run_my_query

TABLE = "partition-cache-test"
ALPHABET = "#abk:é"


@pytest.fixture(scope="module")
def ddb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x",
                              aws_secret_access_key="x")
        client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "username", "KeyType": "HASH"},
                                       {"AttributeName": "key", "KeyType": "RANGE"}],
                            AttributeDefinitions=[{"AttributeName": "username", "AttributeType": "S"},
                                                  {"AttributeName": "key", "AttributeType": "S"}])
        yield client


# Mostly Chariot-shaped keys (#kind#…, several per kind, so order within a bucket matters), some not.
keys = st.one_of(st.builds(lambda kind, rest: f"#{kind}#{rest}", st.sampled_from(["a", "b", "k"]),
                           st.text(ALPHABET, max_size=4)),
                 st.text(ALPHABET, min_size=1, max_size=6))
rows = st.lists(st.tuples(keys, st.one_of(st.none(), st.text("ab", max_size=3))), max_size=9,
                unique_by=lambda r: r[0])
queries = st.builds(
    lambda term, field, exact, desc, label: MyQuery(
        "u", f"member:{term}" if field else "#" + term, exact, desc, None, label, None,
        ("member", term) if field else None),
    st.one_of(st.sampled_from(["", "a", "a#", "b#", "k#"]), st.text(ALPHABET, max_size=4)),  # often a real prefix
    st.booleans(), st.booleans(), st.booleans(), st.sampled_from(["", "a", "b", "k"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, q=queries, page_size=st.integers(1, 14))
@example(rows=[("#a#1", None), ("#a#2", "ab"), ("#b#1", "a"), ("#a#3", "a"), ("x", "a")],
         q=MyQuery("u", "#a#", desc=True), page_size=5)
@example(rows=[("#a#1", "a"), ("#a#2", "ab"), ("#b#1", "a")],
         q=MyQuery("u", "member:a", desc=True, label="a", field_filter=("member", "a")), page_size=3)
@example(rows=[("#a#1", "a"), ("#a#2", "ab")], q=MyQuery("u", "#a#2", exact=True), page_size=2)
def test_the_cached_partition_answers_exactly_like_the_query(ddb, rows, q, page_size):
    store = PlainStore(ddb, {TABLE: TABLE})
    username = f"u-{uuid.uuid4().hex}"
    for key, member in rows:
        store.put(TABLE, {"username": username, "key": key, **({"member": member} if member is not None else {})})
    q = MyQuery(username, *[getattr(q, f) for f in ("term", "exact", "desc", "to", "label", "start",
                                                     "field_filter")])
    snapshot = snapshot_of(store.query_all(TABLE, username, "", limit=page_size + 1), page_size)
    answer = answer_from_snapshot(snapshot, q)
    if len(rows) > page_size:
        assert answer is None  # the query could stop at the page: only DynamoDB knows its offset
    else:
        assert answer == run_my_query(ddb, TABLE, q, page_size=page_size)


def test_offsets_and_ranges_are_left_to_dynamodb():
    whole = {"complete": True, "rows": [{"username": "u", "key": "#account#x"}]}
    assert answer_from_snapshot(whole, MyQuery("u", "#account#")) == {"accounts": [{"username": "u", "key": "#account#x"}]}
    paged = MyQuery("u", "#account#", start={"username": "u", "key": "#account#a"})
    ranged = MyQuery("u", "#account#", to="#account#z")
    assert needs_dynamodb(paged) and needs_dynamodb(ranged) and not needs_dynamodb(MyQuery("u", "#a", exact=True, to="#z"))
    assert answer_from_snapshot(whole, paged) is None and answer_from_snapshot(whole, ranged) is None


def test_partitions_one_page_would_not_hold_are_not_kept():
    small = [{"username": "u", "key": f"#k#{i}"} for i in range(3)]
    assert snapshot_of(small, 3) == {"complete": True, "rows": small}
    assert snapshot_of(small, 2) == {"complete": False, "rows": []}  # more rows than a page
    big = [{"username": "u", "key": "#k#1", "blob": "x" * MAX_PARTITION_JSON_BYTES}]
    assert snapshot_of(big, 10)["complete"] is False  # near DynamoDB's 1 MB page
    assert snapshot_of([{"username": "u", "key": "#k#1", "b": b"\x00"}], 10)["complete"] is False  # not JSON


def test_partition_keys_are_per_table_and_partition():
    assert len({partition_key("t1", "a@x"), partition_key("t2", "a@x"), partition_key("t1", "b@x"),
                partition_key("t1:a@x", "")}) == 4
