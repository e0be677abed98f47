"""The account service's GET /my through app.state.cache: a cached partition spares the store,
every write path invalidates what it changed, accounts never see each other's entries, and a
failed load is not cached. Each listing is also checked against a direct DynamoDB query."""

from __future__ import annotations

from typing import Any

import boto3
import legacy_testkit
import pytest
from chariot_parity_kit import make_client, service_settings  # noqa: F401
from fastapi.testclient import TestClient

from chariot_migrate.legacy import aws, key, signing
from chariot_migrate.model import tokens
from chariot_migrate.services.account.app import create_app
from chariot_migrate.services.account.routes import my_table
from chariot_migrate.services.account.store import KEYS, LEGACY, MEMBERS, MY_TABLES
from chariot_migrate.services.kit import Event
from chariot_migrate.services.kit.plain_store import MyQuery, PlainStore, run_my_query

stack, _moto_stack = legacy_testkit.stack, legacy_testkit._moto_stack  # fixtures
REPLAY = "replay@chariot-migrate.local"


@pytest.fixture(scope="module")
def client(make_client) -> TestClient:  # noqa: F811
    return make_client(create_app(service_settings("account")))


@pytest.fixture
def store_reads(client, monkeypatch) -> list[str]:
    """The partitions GET /my loaded from DynamoDB (the store's whole-partition reads)."""
    store = client.app.state.store
    seen: list[str] = []
    real = store.query_all

    def spy(table: str, username: str, prefix: str, **kw: Any) -> Any:
        seen.append(f"{table}/{username}")
        return real(table, username, prefix, **kw)

    monkeypatch.setattr(store, "query_all", spy)
    return seen


def _h(principal: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {tokens.issue(principal, signing.load())}", **extra}


def listing(client: TestClient, who: str, term: str, **headers: str) -> dict[str, Any]:
    """GET /my as ``who``, checked against what DynamoDB answers right now (no cache)."""
    r = client.get("/my", params={"key": term}, headers=_h(who, **headers))
    assert r.status_code == 200, r.text
    store = client.app.state.store
    account = headers.get("account", who)
    fresh = run_my_query(store.client, store.table(my_table(term)), MyQuery(account, term), page_size=1000)
    assert r.json() == fresh, "the cached listing differs from the table"
    return r.json()


def test_a_cached_partition_is_served_without_the_store(client, stack, store_reads):
    client.post("/key", json={"name": "one"}, headers=_h(stack.user))
    listing(client, stack.user, "#key#")
    listing(client, stack.user, "#key#")
    listing(client, stack.user, "#key#ci")  # another prefix of the same partition
    assert store_reads == [f"{KEYS}/{stack.user}"]


def test_key_writes_invalidate_the_owners_listing(client, stack, store_reads):
    assert listing(client, stack.user, "#key#") == {}
    made = client.post("/key", json={"name": "ci"}, headers=_h(stack.user)).json()
    assert [k["id"] for k in listing(client, stack.user, "#key#")["keys"]] == [made["id"]]
    client.request("DELETE", "/key", json={"key": made["key"]}, headers=_h(stack.user))
    assert [k["status"] for k in listing(client, stack.user, "#key#")["keys"]] == ["D"]
    replayed = {"name": "replayed", "id": "11111111-2222-3333-4444-555555555555"}
    client.post("/key", json=replayed, headers=_h(REPLAY, account=stack.user, **{"x-migrate-replay": "1"}))
    assert replayed["id"] in [k["id"] for k in listing(client, stack.user, "#key#")["keys"]]
    assert store_reads.count(f"{KEYS}/{stack.user}") == 4  # one load after each write, none in between


def test_linking_and_unlinking_invalidate_both_partitions(client, stack):
    bob = stack.other("bob")
    assert listing(client, stack.user, "#account#") == {} and listing(client, bob, "#account#") == {}
    client.post(f"/account/{bob}", json={"role": "analyst"}, headers=_h(stack.user))
    assert [r["member"] for r in listing(client, stack.user, "#account#")["accounts"]] == [bob]
    assert [r["name"] for r in listing(client, bob, "#account#")["accounts"]] == [stack.user]  # the mirror row
    client.request("DELETE", f"/account/{bob}", json={}, headers=_h(stack.user))
    assert listing(client, stack.user, "#account#") == {} and listing(client, bob, "#account#") == {}


def test_integration_linked_events_invalidate_the_listing(client, stack):
    def send(linked: bool) -> None:
        event = Event.new("integration.linked", stack.user, {"member": "github", "linked": linked, "value": "org"})

        async def go() -> None:
            await client.app.state.bus.publish(event)
            await client.app.state.bus.drain()

        client.portal.call(go)

    assert listing(client, stack.user, "#account#") == {}
    send(True)
    assert [r["member"] for r in listing(client, stack.user, "#account#")["accounts"]] == ["github"]
    send(False)
    assert listing(client, stack.user, "#account#") == {}


def test_a_legacy_key_adopted_by_token_invalidates_the_listing(client, stack, monkeypatch):
    monkeypatch.setattr(client.app.state, "legacy_keys", PlainStore(boto3.client("dynamodb", region_name=aws.region()), {LEGACY: aws.table_name()}),
                        raising=False)
    assert listing(client, stack.user, "#key#") == {}
    status, minted = stack.call(key.handler, "POST", "/key", {"name": "legacy-made"})
    assert status == 200, minted
    r = client.get("/token", headers={"x-guard-api-key-id": minted["id"], "x-guard-api-key-secret": minted["secret"]})
    assert r.status_code == 200, r.text
    assert [k["id"] for k in listing(client, stack.user, "#key#")["keys"]] == [minted["id"]]


def test_accounts_never_see_each_others_entries(client, stack):
    alice, bob, carol = stack.user, stack.other("bob"), stack.other("carol")
    client.post(f"/account/{carol}", json={"role": "readonly"}, headers=_h(alice))
    assert [r["member"] for r in listing(client, alice, "#account#")["accounts"]] == [carol]
    assert listing(client, bob, "#account#") == {}  # right after alice's partition was cached
    # carol acts for alice (assume-role): she reads alice's partition, and her own stays hers
    assert [r["member"] for r in listing(client, carol, "#account#", account=alice)["accounts"]] == [carol]
    assert [r["name"] for r in listing(client, carol, "#account#")["accounts"]] == [alice]
    # a stranger naming alice's account gets a 403, not the cached entry
    r = client.get("/my", params={"key": "#account#"}, headers=_h(bob, account=alice))
    assert r.status_code == 403


def test_a_failed_load_is_not_cached(client, stack, monkeypatch):
    client.post("/key", json={"name": "k"}, headers=_h(stack.user))
    store = client.app.state.store
    real, calls = store.query_all, []

    def flaky(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("DynamoDB throttled")
        return real(*args, **kw)

    monkeypatch.setattr(store, "query_all", flaky)
    failing = TestClient(client.app, raise_server_exceptions=False)  # the same running app
    assert failing.get("/my", params={"key": "#key#"}, headers=_h(stack.user)).status_code == 500
    assert len(listing(client, stack.user, "#key#")["keys"]) == 1
    assert len(calls) == 2


def test_every_table_get_my_reads_is_invalidated_on_write():
    assert {my_table(t) for t in ("#account#", "#key#", "#keyx", "member:x", "#setting#")} <= MY_TABLES
    assert MY_TABLES == {MEMBERS, KEYS}
