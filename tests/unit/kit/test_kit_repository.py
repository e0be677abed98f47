import string

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chariot_migrate.services.kit.repository import (
    AsyncRepository,
    ConflictError,
    IndexSpec,
    InvalidCursorError,
    Repository,
    RepositoryError,
    TableSpec,
    decode_cursor,
    encode_cursor,
    ensure_tables,
)

SPEC = TableSpec("unit-assets", indexes=(IndexSpec("status-index", "status"),))


@pytest.fixture
def repo(monkeypatch):
    for k, v in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        assert ensure_tables(client, [SPEC]) == ["unit-assets"]
        assert ensure_tables(client, [SPEC]) == []  # idempotent
        yield Repository(client, SPEC, sleep=lambda s: None)


def asset(account, name, **extra):
    return {
        "username": account,
        "key": f"#asset#example.com#{name}",
        "dns": "example.com",
        "name": name,
        **extra,
    }


def test_get_put_delete_round_trip_types(repo):
    item = asset("a@x", "1.2.3.4", score=1.5, count=3, tags=["prod"], private=False, meta={"n": 2.25})
    stored = repo.put(item)
    assert stored["version"] == 1
    got = repo.get("a@x", item["key"])
    assert got == {**item, "version": 1}
    assert isinstance(got["count"], int) and isinstance(got["score"], float)
    assert repo.get("b@x", item["key"]) is None  # partitioned by account
    assert repo.delete("a@x", item["key"])["name"] == "1.2.3.4"
    assert repo.get("a@x", item["key"]) is None
    assert repo.delete("a@x", item["key"]) is None


def test_optimistic_concurrency(repo):
    first = repo.create(asset("a@x", "h1"))
    with pytest.raises(ConflictError, match="already exists"):
        repo.create(asset("a@x", "h1"))
    v2 = repo.put({**first, "status": "A"}, expected_version=1)
    assert v2["version"] == 2
    with pytest.raises(ConflictError, match="no longer at version 1"):
        repo.put({**first, "status": "D"}, expected_version=1)  # a stale writer loses
    updated = repo.update("a@x", first["key"], {"status": "F", "dns": None}, expected_version=2)
    assert updated["version"] == 3 and updated["status"] == "F" and "dns" not in updated
    with pytest.raises(ConflictError):
        repo.update("a@x", first["key"], {"status": "A"}, expected_version=2)
    with pytest.raises(ConflictError):
        repo.update("a@x", "#asset#nope", {"status": "A"})
    with pytest.raises(ConflictError):
        repo.delete("a@x", first["key"], expected_version=1)
    assert repo.delete("a@x", first["key"], expected_version=3) is not None


def test_bad_items_and_updates_are_refused(repo):
    with pytest.raises(ValueError, match="username"):
        repo.put({"key": "#asset#x"})
    with pytest.raises(ValueError):
        repo.update("a@x", "#asset#x", {"version": 5})


def test_prefix_query_pages_with_cursor_round_trip(repo):
    repo.batch_put([asset("a@x", f"h{i:03d}") for i in range(57)])
    repo.put({"username": "a@x", "key": "#risk#example.com#r1", "status": "OH"})
    repo.put(asset("b@x", "other"))
    seen, cursor, pages = [], None, 0
    while True:
        page = repo.query("a@x", "#asset#", limit=10, cursor=cursor)
        seen += [i["key"] for i in page.items]
        pages += 1
        if page.cursor is None:
            break
        cursor = page.cursor
    assert len(seen) == 57 and len(set(seen)) == 57 and seen == sorted(seen)
    assert pages >= 6
    assert len(list(repo.iter_prefix("a@x", "#asset#", page_size=20))) == 57
    assert [i["key"] for i in repo.query("a@x", "#risk#").items] == ["#risk#example.com#r1"]
    assert len(repo.query("a@x").items) == 58
    desc = repo.query("a@x", "#asset#", limit=1, ascending=False)
    assert desc.items[0]["name"] == "h056"


def test_cursor_from_another_account_or_garbage_is_refused(repo):
    repo.batch_put([asset("a@x", f"h{i}") for i in range(3)])
    cursor = repo.query("a@x", "#asset#", limit=1).cursor
    with pytest.raises(InvalidCursorError):
        repo.query("b@x", "#asset#", cursor=cursor)
    with pytest.raises(InvalidCursorError):
        repo.query("a@x", cursor="!!!not-base64")


def test_batch_delete_and_index_query(repo):
    repo.batch_put([asset("a@x", f"h{i}", status="A" if i % 2 else "F") for i in range(30)])
    assert len(repo.query_index("status-index", "A").items) == 15
    repo.batch_delete([("a@x", f"#asset#example.com#h{i}") for i in range(30)])
    assert repo.query("a@x").items == []


def test_batch_retries_unprocessed_items_then_gives_up():
    calls = []

    class FlakyClient:
        def batch_write_item(self, RequestItems):
            calls.append(sum(len(v) for v in RequestItems.values()))
            if len(calls) < 3:
                table, reqs = next(iter(RequestItems.items()))
                return {"UnprocessedItems": {table: reqs[:1]}}
            return {"UnprocessedItems": {}}

    r = Repository(FlakyClient(), SPEC, sleep=lambda s: None)
    assert r.batch_put([asset("a@x", f"h{i}") for i in range(3)]) == 3
    assert calls == [3, 1, 1]

    class StuckClient:
        def batch_write_item(self, RequestItems):
            return {"UnprocessedItems": RequestItems}

    with pytest.raises(RepositoryError, match="unprocessed"):
        Repository(StuckClient(), SPEC, max_batch_retries=2, sleep=lambda s: None).batch_put(
            [asset("a@x", "h")]
        )


async def test_async_repository_wraps_calls(repo):
    arepo = AsyncRepository(repo)
    await arepo.put(asset("a@x", "async"))
    assert (await arepo.get("a@x", "#asset#example.com#async"))["name"] == "async"


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=80))
def test_cursor_encoding_round_trips(account, key):
    lek = {"username": {"S": account}, "key": {"S": key}}
    assert decode_cursor(encode_cursor(lek)) == lek
    cursor = encode_cursor(lek)
    assert set(cursor) <= set(string.ascii_letters + string.digits + "-_")  # safe in a query string
