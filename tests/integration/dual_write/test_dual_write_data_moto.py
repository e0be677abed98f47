"""Backfill / verify / repair against a real moto server with a toy migration.

Legacy single table ``username`` (hash) + ``key`` (range); the toy service owns ``#widget#…``
items and moves them to a ``widgets`` table (``owner`` + ``widget_id``).
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any
from uuid import uuid4

import boto3
import pytest
from boto3.dynamodb.conditions import Attr
from moto.server import ThreadedMotoServer

from chariot_migrate.dual_write.data import backfill, repair, verify
from chariot_migrate.dual_write.migration import FileCheckpointStore, MemoryCheckpointStore, TableSpec

pytestmark = pytest.mark.integration


class WidgetMigration:
    service = "widgets"
    legacy_prefixes = ["#widget#"]
    new_tables = [TableSpec("widgets", "owner", "widget_id")]
    ignore_fields = ["updated"]

    def to_new(self, item: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if item.get("name") == "unmappable":
            return None
        wid = item["key"].removeprefix("#widget#")
        out = {"owner": item["username"], "widget_id": wid, "name": item["name"], "size": item["size"]}
        if "updated" in item:
            out["updated"] = item["updated"]
        return "widgets", out

    def to_legacy(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        out = {"username": item["owner"], "key": f"#widget#{item['widget_id']}", "name": item["name"],
               "size": item["size"]}
        if "updated" in item:
            out["updated"] = item["updated"]
        return out


@pytest.fixture(scope="module")
def moto_endpoint():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    yield f"http://{host}:{port}"
    srv.stop()


@pytest.fixture
def tables(moto_endpoint):
    ddb = boto3.resource(
        "dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
    )
    suffix = uuid4().hex[:8]
    legacy = ddb.create_table(
        TableName=f"legacy-{suffix}",
        KeySchema=[{"AttributeName": "username", "KeyType": "HASH"}, {"AttributeName": "key", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "username", "AttributeType": "S"},
                              {"AttributeName": "key", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    widgets = ddb.create_table(
        TableName=f"widgets-{suffix}",
        KeySchema=[{"AttributeName": "owner", "KeyType": "HASH"}, {"AttributeName": "widget_id", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "owner", "AttributeType": "S"},
                              {"AttributeName": "widget_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield legacy, {"widgets": widgets}
    legacy.delete()
    widgets.delete()


def seed(legacy, n_widgets: int = 60) -> None:
    with legacy.batch_writer() as bw:
        for i in range(n_widgets):
            bw.put_item(Item={"username": f"u{i % 4}@x.com", "key": f"#widget#{i:03d}", "name": f"w{i}",
                              "size": Decimal(i) / 2, "updated": "2024-01-01"})
        for i in range(25):  # other services' items must be left alone
            bw.put_item(Item={"username": f"u{i % 4}@x.com", "key": f"#asset#{i}", "name": "a"})
        bw.put_item(Item={"username": "u0@x.com", "key": "#widget#zzz", "name": "unmappable", "size": 1})


def all_items(table) -> list[dict]:
    out, kw = [], {}
    while True:
        page = table.scan(**kw)
        out += page["Items"]
        if "LastEvaluatedKey" not in page:
            return out
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_backfill_copies_only_owned_items_and_verify_is_clean(tables):
    legacy, new = tables
    seed(legacy)
    seen = []
    result = backfill(WidgetMigration(), legacy, new, MemoryCheckpointStore(), page_size=20,
                      progress=lambda p: seen.append((p.scanned, p.written, p.done)))
    assert (result.written, result.unmapped, result.skipped_existing) == (60, 1, 0)
    items = all_items(new["widgets"])
    assert len(items) == 60
    assert {i["widget_id"] for i in items} == {f"{i:03d}" for i in range(60)}
    assert seen[-1][2] and seen[-1][1] == 60 and len(seen) > 2  # progress per page, then done
    v = verify(WidgetMigration(), legacy, new)
    assert v.ok and v.matched == 60 and v.legacy_items == 60 and v.new_items == {"widgets": 60}
    assert json.loads(v.model_dump_json())["ok"] is True


def test_backfill_resumes_from_its_checkpoint_after_being_killed(tables, tmp_path):
    legacy, new = tables
    seed(legacy)
    store = FileCheckpointStore(tmp_path)

    class Killed(Exception):
        pass

    def die_after_two_pages(p):
        if p.scanned >= 30 and not p.done:
            raise Killed

    with pytest.raises(Killed):
        backfill(WidgetMigration(), legacy, new, store, page_size=15, progress=die_after_two_pages)
    first = len(all_items(new["widgets"]))
    assert 0 < first < 60
    assert store.load("backfill-widgets")["segments"]["0"]["last_key"] is not None
    # A new process (new store object, same directory) continues where the first stopped.
    result = backfill(WidgetMigration(), legacy, new, FileCheckpointStore(tmp_path), page_size=15)
    assert result.resumed
    assert result.written == 60  # counts carried over from the checkpoint
    assert result.skipped_existing == 0  # the killed page was checkpointed before the kill
    assert len(all_items(new["widgets"])) == 60
    # Done: a third run scans nothing.
    again = backfill(WidgetMigration(), legacy, new, FileCheckpointStore(tmp_path), page_size=15)
    assert again.scanned == result.scanned


def test_parallel_segments_and_conditional_puts_never_clobber_newer_items(tables):
    legacy, new = tables
    seed(legacy, 40)
    # A dual write already put a newer version of widget 007 on the new side.
    new["widgets"].put_item(Item={"owner": "u3@x.com", "widget_id": "007", "name": "newer", "size": Decimal(99)})
    result = backfill(WidgetMigration(), legacy, new, MemoryCheckpointStore(), segments=3, page_size=7)
    assert result.written == 39 and result.skipped_existing == 1
    got = new["widgets"].get_item(Key={"owner": "u3@x.com", "widget_id": "007"})["Item"]
    assert got["name"] == "newer"


def test_rate_limit_is_honoured(tables):
    legacy, new = tables
    seed(legacy, 20)
    result = backfill(WidgetMigration(), legacy, new, None, rate_limit_per_s=10)
    # 21 owned items (one unmappable) at 10/s after a burst of 10: at least 1.1 s.
    assert result.scanned == 21 and result.elapsed_s >= 1.05


def test_verify_reports_drift_and_repair_fixes_it_from_either_source(tables):
    legacy, new = tables
    seed(legacy, 30)
    m = WidgetMigration()
    backfill(m, legacy, new, None)
    w = new["widgets"]
    w.delete_item(Key={"owner": "u1@x.com", "widget_id": "001"})  # missing in new
    w.put_item(Item={"owner": "u9@x.com", "widget_id": "900", "name": "orphan", "size": 1})  # missing in legacy
    w.update_item(Key={"owner": "u2@x.com", "widget_id": "002"}, UpdateExpression="SET #n = :v",
                  ExpressionAttributeNames={"#n": "name"}, ExpressionAttributeValues={":v": "changed"})
    w.update_item(Key={"owner": "u3@x.com", "widget_id": "003"}, UpdateExpression="SET updated = :v",
                  ExpressionAttributeValues={":v": "ignored-field"})
    v = verify(m, legacy, new, max_examples=5)
    assert not v.ok
    assert [r.key for r in v.missing_in_new] == [{"owner": "u1@x.com", "widget_id": "001"}]
    assert [r.legacy_key for r in v.missing_in_legacy] == [{"username": "u9@x.com", "key": "#widget#900"}]
    assert len(v.differing) == 1 and v.differing[0].fields == ["name"]
    assert v.differing[0].examples[0].legacy == "w2" and v.differing[0].examples[0].new == "changed"
    assert v.field_counts == {"name": 1} and v.matched == 28
    json.loads(v.model_dump_json())

    dry = repair(m, v, legacy, new, source="legacy", dry_run=True)
    assert (dry.puts, dry.deletes) == (2, 1)
    assert verify(m, legacy, new).model_dump(exclude={"elapsed_s"}) == v.model_dump(exclude={"elapsed_s"})

    done = repair(m, v, legacy, new, source="legacy")
    assert done.errors == [] and (done.puts, done.deletes) == (2, 1)
    assert verify(m, legacy, new).ok


def test_repair_from_new_writes_back_to_legacy(tables):
    legacy, new = tables
    seed(legacy, 10)
    m = WidgetMigration()
    backfill(m, legacy, new, None)
    new["widgets"].put_item(Item={"owner": "u0@x.com", "widget_id": "500", "name": "made-on-new", "size": 2})
    legacy.delete_item(Key={"username": "u1@x.com", "key": "#widget#001"})
    v = verify(m, legacy, new)
    assert len(v.missing_in_legacy) == 2 and not v.missing_in_new
    result = repair(m, v, legacy, new, source="new")
    assert result.puts == 2 and result.deletes == 0
    assert legacy.get_item(Key={"username": "u0@x.com", "key": "#widget#500"})["Item"]["name"] == "made-on-new"
    assert verify(m, legacy, new).ok
    # Untouched: the other service's items in the legacy table.
    assert sum(1 for i in all_items(legacy) if i["key"].startswith("#asset#")) == 25


def _add_widgets(legacy, ids) -> None:
    with legacy.batch_writer() as bw:
        for i in ids:
            bw.put_item(Item={"username": f"u{i % 4}@x.com", "key": f"#widget#{i:03d}", "name": f"w{i}",
                              "size": Decimal(i) / 2, "updated": "2024-01-01"})


def test_a_backfill_after_a_finished_one_copies_exactly_the_new_items(tables, tmp_path):
    legacy, new = tables
    seed(legacy, 30)
    m = WidgetMigration()
    first = backfill(m, legacy, new, FileCheckpointStore(tmp_path), page_size=10)
    assert (first.written, first.resumed) == (30, False)
    _add_widgets(legacy, range(30, 47))  # items added after the pass finished
    again = backfill(m, legacy, new, FileCheckpointStore(tmp_path), page_size=10)
    assert (again.written, again.skipped_existing, again.resumed) == (17, 30, False)
    assert len(all_items(new["widgets"])) == 47 and verify(m, legacy, new).ok


@pytest.mark.parametrize("write_mode", ["threads", "transact"])
def test_counts_after_a_resume_are_exact_when_the_killed_page_was_half_written(tables, tmp_path, write_mode):
    legacy, new = tables
    seed(legacy)
    m = WidgetMigration()
    store = FileCheckpointStore(tmp_path)

    class Killed(Exception):
        pass

    def die_after_first_page(p):
        if not p.done:
            raise Killed

    with pytest.raises(Killed):
        backfill(m, legacy, new, store, page_size=15, progress=die_after_first_page, write_mode=write_mode)
    # The killed run had written part of its second page: the first 6 items, as the backfill maps them…
    last_key = store.load("backfill-widgets")["segments"]["0"]["last_key"]
    page = legacy.scan(Limit=15, ExclusiveStartKey=last_key, FilterExpression=Attr("key").begins_with("#widget#"))
    half = [m.to_new(i) for i in page["Items"][:6] if i["name"] != "unmappable"]
    for _, item in half:
        new["widgets"].put_item(Item=item)
    # … and a dual write had put a newer version of the seventh.
    seventh = m.to_new(page["Items"][6])[1]
    new["widgets"].put_item(Item=seventh | {"name": "newer"})
    res = backfill(m, legacy, new, FileCheckpointStore(tmp_path), page_size=15, write_mode=write_mode)
    assert res.resumed
    assert (res.written, res.skipped_existing, res.unmapped, res.scanned) == (59, 1, 1, 61)
    assert new["widgets"].get_item(Key={"owner": seventh["owner"], "widget_id": seventh["widget_id"]})[
        "Item"]["name"] == "newer"


def test_verify_is_a_resumable_merge_join(tables, tmp_path):
    legacy, new = tables
    seed(legacy)
    m = WidgetMigration()
    backfill(m, legacy, new, None, segments=2, page_size=7)
    new["widgets"].delete_item(Key={"owner": "u1@x.com", "widget_id": "001"})
    new["widgets"].put_item(Item={"owner": "u9@x.com", "widget_id": "900", "name": "orphan", "size": 1})
    store = FileCheckpointStore(tmp_path / "cp")

    class Killed(Exception):
        pass

    reads = []

    def die_midway(n, total=None):
        reads.append(n)
        if n >= 40 and len(reads) < 20:
            raise Killed

    with pytest.raises(Killed):
        verify(m, legacy, new, page_size=5, run_size=10, workdir=tmp_path / "runs", checkpoint_store=store,
               progress=die_midway)
    assert store.load("verify-widgets") is not None
    v = verify(m, legacy, new, page_size=5, run_size=10, workdir=tmp_path / "runs", checkpoint_store=store)
    assert v.resumed and (v.legacy_items, v.unmapped_legacy, v.new_items) == (60, 1, {"widgets": 60})
    assert [r.key for r in v.missing_in_new] == [{"owner": "u1@x.com", "widget_id": "001"}]
    assert [r.legacy_key for r in v.missing_in_legacy] == [{"username": "u9@x.com", "key": "#widget#900"}]
    assert v.matched == 59 and not v.differing
    assert store.load("verify-widgets") is None and not list((tmp_path / "runs").iterdir())
    assert verify(m, legacy, new, segments=3).model_dump(exclude={"elapsed_s"}) == v.model_dump(
        exclude={"elapsed_s", "resumed"}) | {"resumed": False}
