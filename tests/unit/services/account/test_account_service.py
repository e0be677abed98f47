"""Account service behaviour beyond the legacy contract: JWKS, internal membership API, audit
trail + user.action events, the integration read model, replay adoption and the data mapping."""

from __future__ import annotations

from decimal import Decimal

import jwt
import legacy_testkit
import pytest
from chariot_parity_kit import make_client, service_settings  # noqa: F401
from fastapi.testclient import TestClient

from chariot_migrate.dual_write.migration import ServiceMigration
from chariot_migrate.legacy import signing
from chariot_migrate.model import apikeys, tokens
from chariot_migrate.services.account.app import create_app
from chariot_migrate.services.account.events import integration_row
from chariot_migrate.services.account.migration import AccountMigration
from chariot_migrate.services.kit import Event

stack, _moto_stack = legacy_testkit.stack, legacy_testkit._moto_stack  # fixtures
REPLAY = "replay@chariot-migrate.local"


@pytest.fixture(scope="module")
def client(make_client) -> TestClient:  # noqa: F811
    app = create_app(service_settings("account"))
    c = make_client(app)
    published: list[Event] = []
    bus = app.state.bus
    original = bus.publish

    async def spy(event: Event) -> str:
        published.append(event)
        return await original(event)

    bus.publish = spy
    app.state.published = published
    return c


def _h(principal: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {tokens.issue(principal, signing.load())}", **extra}


def _internal(client: TestClient) -> dict[str, str]:
    return {"authorization": f"Bearer {client.app.state.service_token()}"}


def test_jwks_publishes_the_signing_key_and_verifies_issued_tokens(client, stack):
    jwks = client.get("/.well-known/jwks.json").json()
    assert [k["kid"] for k in jwks["keys"]] == [signing.load().kid]
    key = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(stack.token(), key, algorithms=["RS256"], audience="chariot")
    assert claims["email"] == stack.user


def test_internal_membership_needs_a_service_token(client, stack):
    bob = stack.other("bob")
    assert client.post(f"/account/{bob}", json={"role": "analyst"}, headers=_h(stack.user)).status_code == 200
    q = {"account": stack.user, "principal": bob}
    r = client.get("/internal/api/membership", params=q, headers=_h(stack.user))
    assert r.status_code == 403
    r = client.get("/internal/api/membership", params=q, headers=_internal(client))
    assert r.json()["role"] == "analyst"
    r = client.get("/internal/api/membership", params=q | {"principal": stack.other("x")}, headers=_internal(client))
    assert r.json()["role"] is None
    assert client.get("/internal/api/membership", params={"account": stack.user},
                      headers=_internal(client)).status_code == 400


def test_account_changes_are_audited_and_published(client, stack):
    bob = stack.other("bob")
    client.post(f"/account/{bob}", json={"role": "readonly"}, headers=_h(stack.user))
    key = client.post("/key", json={"name": "ci"}, headers=_h(stack.user)).json()
    client.request("DELETE", "/key", json={"key": key["key"]}, headers=_h(stack.user))
    client.request("DELETE", f"/account/{bob}", json={}, headers=_h(stack.user))
    trail = client.get("/internal/api/audit", params={"account": stack.user}, headers=_internal(client)).json()
    actions = [(e["action"], e["target"]) for e in reversed(trail["events"])]
    assert actions == [("member.linked", bob), ("key.created", key["key"]), ("key.deleted", key["key"]),
                       ("member.unlinked", bob)]
    assert all(e["actor"] == stack.user for e in trail["events"])
    events = [e for e in client.app.state.published if e.account == stack.user]
    assert [e.data["action"] for e in events] == [a for a, _ in actions]
    assert all(e.type == "user.action" for e in events)
    assert "secret" not in str(trail) and key["secret"] not in str([e.data for e in events])


def test_integration_linked_events_feed_the_account_listing(client, stack):
    def send(linked: bool) -> None:
        event = Event.new("integration.linked", stack.user,
                          {"member": "amazon", "linked": linked, "value": "123456789012", "config": {"r": "us"}})

        async def go() -> None:
            await client.app.state.bus.publish(event)
            await client.app.state.bus.drain()

        client.portal.call(go)

    bob = stack.other("bob")
    client.post(f"/account/{bob}", json={}, headers=_h(stack.user))
    send(True)
    rows = client.get("/my", params={"key": "#account#"}, headers=_h(stack.user)).json()["accounts"]
    assert [r["member"] for r in rows] == ["amazon", bob]
    amazon = rows[0]
    assert amazon["key"] == f"#account#{stack.user}#amazon#123456789012" and amazon["config"] == {"r": "us"}
    send(False)
    rows = client.get("/my", params={"key": "#account#"}, headers=_h(stack.user)).json()["accounts"]
    assert [r["member"] for r in rows] == [bob]


def test_integration_row_ignores_people():
    e = Event.new("integration.linked", "a@x.io", {"member": "b@x.io", "linked": True})
    assert integration_row(e) is None


def test_replayed_key_adopts_the_primary_values_and_mints_no_secret(client, stack):
    salt = apikeys.new_salt()
    body = {"name": "ci", "id": "11111111-2222-3333-4444-555555555555", "created": "2024-01-02T03:04:05Z",
            "_salt": salt, "_hash": apikeys.hash_secret("the-secret", salt), "expires": "2099-01-01T00:00:00Z"}
    r = client.post("/key", json=body, headers=_h(REPLAY, account=stack.user, **{"x-migrate-replay": "1"}))
    assert r.status_code == 200, r.json()
    out = r.json()
    assert "secret" not in out and out["id"] == body["id"] and out["created"] == body["created"]
    assert out["username"] == stack.user
    # the replicated hash verifies the secret the primary showed
    tok = client.get("/token", headers={"x-guard-api-key-id": body["id"], "x-guard-api-key-secret": "the-secret"})
    assert tok.status_code == 200
    assert tokens.verify(tok.json()["token"], signing.load().public_pem)["sub"] == stack.user
    # without the header the same identity mints its own values
    r = client.post("/key", json=body, headers=_h(REPLAY, account=stack.user)).json()
    assert r["id"] != body["id"] and "secret" in r


def test_non_person_members_are_refused_with_a_reason(client, stack):
    r = client.post("/account/amazon", json={}, headers=_h(stack.user))
    assert r.status_code == 400 and "integration-hub" in r.json()["message"]


def test_migration_routes_by_prefix_and_round_trips():
    m = AccountMigration(table_prefix="p-")
    assert isinstance(m, ServiceMigration)
    person = {"username": "a@x.io", "key": "#account#a@x.io#b@x.io#", "role": "admin", "ttl": Decimal(0)}
    lookup = {"username": "#apikeys", "key": "#key#abc", "_hash": "h", "_salt": "s", "owner": "a@x.io"}
    assert m.to_new(person) == ("p-account-members", person)
    assert m.to_new(lookup) == ("p-account-keys", lookup)
    assert m.to_new({"username": "a@x.io", "key": "#asset#a#b"}) is None
    assert m.to_legacy("p-account-keys", lookup) == lookup
    with pytest.raises(ValueError):
        m.to_legacy("elsewhere", lookup)


@pytest.mark.parametrize(("record", "secret", "ok"), [
    ({"status": "A", "expires": "2099-01-01T00:00:00Z"}, "s3cret", True),
    ({"status": "D", "expires": "2099-01-01T00:00:00Z"}, "s3cret", False),
    ({"status": "A", "expires": "2001-01-01T00:00:00Z"}, "s3cret", False),
    ({"status": "A", "expires": "garbage"}, "s3cret", False),
    ({"status": "A"}, "wrong", False),
    ({"status": "A"}, "", False),
])
def test_api_key_usable_decision(record, secret, ok):
    salt = apikeys.new_salt()
    full = record | {"_salt": salt, "_hash": apikeys.hash_secret("s3cret", salt)}
    assert apikeys.usable(full, secret) is ok
    assert apikeys.usable(None, secret) is False
    assert apikeys.usable(record | {"_salt": "zz", "_hash": "x"}, "s3cret") is False  # bad salt: no 500
