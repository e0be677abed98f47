"""The shared Chariot service base: settings, legacy-compatible auth, replay, errors, membership,
feature flags and GET /my semantics."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import legacy_testkit
import pytest
import respx
from chariot_parity_kit import make_client, service_settings  # noqa: F401
from fastapi import APIRouter, Depends, FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.legacy import signing
from chariot_migrate.model import tokens
from chariot_migrate.services.kit import AuthError, Caller, Event, TableSpec
from chariot_migrate.services.kit.auth import caller, chariot_caller
from chariot_migrate.services.kit.chariot import create_chariot_app
from chariot_migrate.services.kit.flags import FlagCache
from chariot_migrate.services.kit.membership import AccountMembership
from chariot_migrate.services.kit.plain_store import PlainStore
from chariot_migrate.services.kit.replay import adopt, replay_values
from chariot_migrate.services.kit.request import bad_request, json_body
from chariot_migrate.services.kit.settings import ChariotSettings

_moto_stack = legacy_testkit._moto_stack  # fixture
REPLAY = "replay@chariot-migrate.local"
seen_events: list[tuple[str, str]] = []

router = APIRouter()


@router.post("/echo")
async def echo(request: Request, who: Caller = Depends(chariot_caller)) -> dict:
    body = await json_body(request, {})
    values = replay_values(request, body)
    return {"principal": who.principal, "account": who.account, "role": who.role, "internal": who.internal,
            "replay": values, "created": adopt(values, "created", "minted")}


@router.get("/read")
async def read(who: Caller = Depends(caller)) -> dict:
    return {"account": who.account, "role": who.role}


@router.get("/bad")
async def bad() -> dict:
    raise bad_request("bad thing: do the other thing")


@router.get("/valueerror")
async def valueerror() -> dict:
    raise ValueError("name must not contain '#'")


@router.get("/store")
async def store_roundtrip(request: Request) -> dict:
    store = PlainStore.from_app(request.app)
    item = {"username": "u@example.com", "key": "#thing#a", "n": 1.5, "status": "", "nested": {"x": None}}
    store.put("common-things", item)
    return {"got": store.get("common-things", "u@example.com", "#thing#a")}


async def on_event(event: Event, app: FastAPI) -> None:
    assert app.state.service_name == "common-test"
    seen_events.append((event.type, event.account))


ROLES = {("owner@example.com", "ana@example.com"): "analyst", ("owner@example.com", "ro@example.com"): "readonly"}


@pytest.fixture(scope="module")
def client(make_client):  # noqa: F811
    app = create_chariot_app(
        "common-test", routers=[router], tables=[TableSpec("common-things")],
        settings=service_settings("common-test"),
        subscriptions=[("common-test", ["config.changed"], on_event)],
        membership=lambda account, principal: ROLES.get((account, principal)),
    )
    return make_client(app)


def _auth(principal: str = "owner@example.com", **kw) -> dict[str, str]:
    return {"authorization": f"Bearer {tokens.issue(principal, signing.load(), **kw)}"}


# ---- settings -------------------------------------------------------------------------------


def test_settings_read_legacy_env_names_and_service_specific_wins():
    env = {"CHARIOT_SIGNING_SECRET_ID": "legacy/secret", "CHARIOT_REPLAY_PRINCIPAL": "r@x.io",
           "CHARIOT_PAGE_SIZE": "7", "ACCOUNT_URL": "http://127.0.0.1:9101"}
    s = ChariotSettings.from_env("risk-assessment", env)
    assert (s.signing_secret_id, s.replay_principal, s.page_size) == ("legacy/secret", "r@x.io", 7)
    assert s.account_url == "http://127.0.0.1:9101"
    env["CHARIOT_RISK_ASSESSMENT_SIGNING_SECRET_ID"] = "svc/secret"
    assert ChariotSettings.from_env("risk-assessment", env).signing_secret_id == "svc/secret"
    assert ChariotSettings.from_env("x", {}).signing_secret_id == "chariot/signing-key"


# ---- auth like the legacy authorizer ----------------------------------------------------------


def test_legacy_tokens_verify_and_own_account_is_admin(client):
    r = client.get("/read", headers=_auth())
    assert r.json() == {"account": "owner@example.com", "role": "admin"}


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer x.y.z"}, {"authorization": "Basic abc"},
                                     {"authorization": "Bearer "}])
def test_bad_credentials_are_401_unauthorized(client, headers):
    r = client.get("/read", headers=headers)
    assert (r.status_code, r.json()) == (401, {"message": "Unauthorized"})


def test_token_signed_by_another_key_is_rejected(client):
    other = legacy_testkit.REAL_GENERATE()
    r = client.get("/read", headers={"authorization": f"Bearer {tokens.issue('owner@example.com', other)}"})
    assert r.status_code == 401


def test_assume_role_uses_membership_and_readonly_cannot_write(client):
    r = client.get("/read", headers=_auth("ana@example.com") | {"account": "owner@example.com"})
    assert r.json() == {"account": "owner@example.com", "role": "analyst"}
    r = client.post("/echo", headers=_auth("ro@example.com") | {"account": "owner@example.com"})
    assert (r.status_code, r.json()) == (403, {"message": "Forbidden: the readonly role cannot write"})
    r = client.get("/read", headers=_auth("eve@example.com") | {"account": "owner@example.com"})
    assert r.status_code == 403
    assert r.json()["message"] == "Forbidden: eve@example.com is not a collaborator of owner@example.com"


def test_replay_values_only_for_the_replay_identity_with_the_header(client):
    body = {"created": "2020-01-01T00:00:00Z", "id": "abc", "empty": ""}
    h = {"x-migrate-replay": "1", "account": "owner@example.com"}
    r = client.post("/echo", json=body, headers=_auth(REPLAY) | h).json()
    assert r["account"] == "owner@example.com" and r["role"] == "admin"
    assert r["replay"] == {"created": "2020-01-01T00:00:00Z", "id": "abc"} and r["created"] == body["created"]
    # the replay identity without the header acts for the account but adopts nothing
    r = client.post("/echo", json=body, headers=_auth(REPLAY) | {"account": "owner@example.com"}).json()
    assert r["replay"] is None and r["created"] == "minted"
    # anyone else sending the header adopts nothing
    r = client.post("/echo", json=body, headers=_auth() | {"x-migrate-replay": "1"}).json()
    assert r["replay"] is None and r["created"] == "minted"


def test_service_tokens_are_internal(client):
    token = client.app.state.service_token()
    r = client.post("/echo", headers={"authorization": f"Bearer {token}", "account": "owner@example.com"})
    assert r.json()["internal"] is True and r.json()["account"] == "owner@example.com"


# ---- errors ---------------------------------------------------------------------------------


def test_errors_use_the_legacy_shape(client):
    assert client.get("/bad").json() == {"message": "bad thing: do the other thing"}
    assert client.get("/valueerror").status_code == 400
    r = client.put("/read", headers=_auth())
    assert (r.status_code, r.json()) == (405, {"message": "method PUT is not allowed on /read"})
    r = client.get("/nowhere")
    assert (r.status_code, r.json()) == (404, {"message": "no route for GET /nowhere"})
    r = client.post("/echo", content=b"{nope", headers=_auth())
    assert r.status_code == 400 and r.json()["message"].startswith("request body is not valid JSON")
    r = client.post("/echo", content=b"[1]", headers=_auth())
    assert r.json() == {"message": "request body must be a JSON object"}


def test_health_ready_and_plain_store(client):
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.json()
    got = client.get("/store").json()["got"]
    # no version attribute, empty GSI attribute dropped, floats preserved
    assert got == {"username": "u@example.com", "key": "#thing#a", "n": 1.5, "nested": {"x": None}}


def test_subscriptions_receive_events_with_the_app(client):
    async def publish():
        await client.app.state.bus.publish(Event.new("config.changed", "acct@example.com",
                                                      {"key": "#setting#a", "name": "a", "scope": "setting"}))
        await client.app.state.bus.drain()

    client.portal.call(publish)
    assert ("config.changed", "acct@example.com") in seen_events


# ---- membership client ------------------------------------------------------------------------


async def test_account_membership_calls_internal_api_and_caches():
    with respx.mock(base_url="http://account.test") as mock:
        route = mock.get("/internal/api/membership").mock(
            side_effect=lambda req: httpx.Response(200, json={"role": "analyst" if "ana" in str(req.url) else None}))
        lookup = AccountMembership("http://account.test", token=lambda: "tok", ttl=30)
        assert await lookup("owner@x.io", "ana@x.io") == "analyst"
        assert await lookup("owner@x.io", "ana@x.io") == "analyst"
        assert await lookup("owner@x.io", "bob@x.io") is None
        assert await lookup("owner@x.io", "bob@x.io") is None
        assert route.call_count == 2  # hits and misses both cached
        req = route.calls[0].request
        assert req.headers["authorization"] == "Bearer tok"
        assert req.url.params["account"] == "owner@x.io" and req.url.params["principal"] == "ana@x.io"
        await lookup.aclose()


async def test_account_membership_unavailable_is_503_not_403():
    with respx.mock(base_url="http://account.test") as mock:
        mock.get("/internal/api/membership").mock(return_value=httpx.Response(500))
        lookup = AccountMembership("http://account.test", token=None)
        lookup.client.retry = type(lookup.client.retry)(attempts=1)
        with pytest.raises(AuthError) as err:
            await lookup("owner@x.io", "ana@x.io")
        assert err.value.status == 503
        await lookup.aclose()


# ---- feature flags ----------------------------------------------------------------------------


def _change(account: str, name: str, value=None, *, deleted=False, scope="setting") -> Event:
    data = {"key": f"#setting#{name}", "name": name, "scope": scope}
    data.update({"deleted": True} if deleted else {"value": value})
    return Event.new("config.changed", account, data)


async def test_flag_cache_applies_changes_and_loader_does_not_override_newer_events():
    loads = []

    async def loader(account: str) -> dict:
        loads.append(account)
        await asyncio.sleep(0)  # why: yields, so concurrent callers overlap in the load
        return {"beta": "false", "old": 1}

    flags = FlagCache(loader)
    await flags.handle(_change("a@x.io", "beta", "true"))
    await flags.handle(_change("a@x.io", "old", deleted=True))
    await flags.handle(_change("a@x.io", "old", 1))
    assert await flags.enabled("a@x.io", "beta") is True  # the event wins over the loaded value
    assert await flags.get("a@x.io", "old") == 1
    await flags.handle(_change("a@x.io", "beta", deleted=True))
    assert await flags.get("a@x.io", "beta", "dflt") == "dflt"
    # a flag deleted before the first load stays deleted
    fresh = FlagCache(loader)
    await fresh.handle(_change("b@x.io", "beta", deleted=True))
    assert await fresh.get("b@x.io", "beta") is None and await fresh.get("b@x.io", "old") == 1
    await flags.handle(_change("a@x.io", "cfg", {"x": 1}, scope="configuration"))  # not a flag scope
    assert await flags.get("a@x.io", "cfg") is None
    assert loads == ["a@x.io", "b@x.io"]
    assert flags.subscription("svc") == ("svc", ["config.changed"], flags.handle)


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.one_of(st.none(), st.integers())), max_size=30))
def test_flag_cache_is_last_write_wins(changes):
    flags = FlagCache()
    expected: dict = {}
    for name, value in changes:
        if value is None:
            flags.apply(_change("acct", name, deleted=True))
            expected.pop(name, None)
        else:
            flags.apply(_change("acct", name, value))
            expected[name] = value
    assert flags.snapshot("acct") == expected


def test_offset_round_trip_is_json_of_last_evaluated_key():
    # what GET /my returns as offset is what the client json.dumps back
    key = {"username": "u", "key": f"#x#{uuid.uuid4()}"}
    assert json.loads(json.dumps(key)) == key
