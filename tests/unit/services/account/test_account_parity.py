"""Parity: the account service answers its routes exactly like the legacy Lambda functions."""

from __future__ import annotations

import legacy_testkit
import pytest
from chariot_parity_kit import Pair, make_client, service_settings  # noqa: F401
from fastapi.testclient import TestClient

from chariot_migrate.legacy import account, key, search, signing, token
from chariot_migrate.model import tokens
from chariot_migrate.services.account.app import create_app

stack, _moto_stack = legacy_testkit.stack, legacy_testkit._moto_stack  # fixtures
HANDLERS = {"/token": token.handler, "/key": key.handler, "/account/{member}": account.handler,
            "/my": search.handler}
MEMBER = "/account/{member}"


@pytest.fixture(scope="module")
def client(make_client) -> TestClient:  # noqa: F811
    return make_client(create_app(service_settings("account")))


@pytest.fixture
def pair(stack, client) -> Pair:
    return Pair(stack, client, HANDLERS)


def _mint_key(p: Pair, side: str, name: str = "ci", expires: str | None = None, **kw) -> dict:
    body = {"name": name} | ({"expires": expires} if expires else {})
    reply = getattr(p, side)("POST", "/key", body, **kw)
    assert reply.status == 200, reply.body
    return reply.body


# ---- tokens and keys ---------------------------------------------------------------------------


def test_key_create_token_exchange_and_delete_match_legacy(pair: Pair):
    old = _mint_key(pair, "legacy")
    new = _mint_key(pair, "service")
    assert set(new) == set(old) and "_hash" not in new and "_salt" not in new
    assert new["status"] == "A" and new["creator"] == pair.user and new["role"] == "admin"
    assert new["key"] == f"#key#{new['id']}"
    # exchange on each side for a token; the secret was shown once
    for side, rec in (("legacy", old), ("service", new)):
        reply = getattr(pair, side)("GET", "/token", token=None, headers={
            "X-GUARD-API-KEY-ID": rec["id"], "X-GUARD-API-KEY-SECRET": rec["secret"]})
        assert reply.status == 200 and reply.body["expires_in"] == 3600
        claims = tokens.verify(reply.body["token"], signing.load().public_pem)
        assert claims["sub"] == claims["email"] == pair.user
    # listing keys: same shape, no hidden fields
    pair.same("GET", "/my", query={"key": "#key#"})
    # delete: same answer; the key no longer exchanges on either side
    lo = pair.legacy("DELETE", "/key", {"key": old["key"]})
    sn = pair.service("DELETE", "/key", {"key": new["key"]})
    assert sn.norm == lo.norm and sn.body["status"] == "D" and sn.body["deleter"] == pair.user
    for side, rec in (("legacy", old), ("service", new)):
        reply = getattr(pair, side)("GET", "/token", token=None, headers={
            "X-GUARD-API-KEY-ID": rec["id"], "X-GUARD-API-KEY-SECRET": rec["secret"]})
        assert (reply.status, reply.body) == (401, {"message": "invalid API key"})


def test_tokens_issued_by_either_side_work_on_both(pair: Pair):
    new = _mint_key(pair, "service")
    svc_token = pair.service("GET", "/token", token=None, headers={
        "X-GUARD-API-KEY-ID": new["id"], "X-GUARD-API-KEY-SECRET": new["secret"]}).body["token"]
    old = _mint_key(pair, "legacy")
    legacy_token = pair.legacy("GET", "/token", token=None, headers={
        "X-GUARD-API-KEY-ID": old["id"], "X-GUARD-API-KEY-SECRET": old["secret"]}).body["token"]
    for t in (svc_token, legacy_token):
        assert pair.legacy("GET", "/my", query={"key": "#account#"}, token=t).status == 200
        assert pair.service("GET", "/my", query={"key": "#account#"}, token=t).status == 200


@pytest.mark.parametrize("headers", [
    {},
    {"X-GUARD-API-KEY-ID": "nope"},
    {"X-GUARD-API-KEY-ID": "nope", "X-GUARD-API-KEY-SECRET": "wrong"},
])
def test_token_rejections_match(pair: Pair, headers):
    reply = pair.same("GET", "/token", token=None, headers=headers)
    assert reply.status == 401


def test_token_with_wrong_secret_or_expired_key_is_401(pair: Pair):
    rec = _mint_key(pair, "service", expires="2000-01-01T00:00:00Z")
    reply = pair.service("GET", "/token", token=None, headers={
        "X-GUARD-API-KEY-ID": rec["id"], "X-GUARD-API-KEY-SECRET": rec["secret"]})
    assert (reply.status, reply.body) == (401, {"message": "invalid API key"})
    rec = _mint_key(pair, "service")
    reply = pair.service("GET", "/token", token=None, headers={
        "X-GUARD-API-KEY-ID": rec["id"], "X-GUARD-API-KEY-SECRET": rec["secret"] + "x"})
    assert reply.status == 401


@pytest.mark.parametrize("body", [
    None, "not json", "[1, 2]", {}, {"name": ""}, {"name": "x", "expires": "tomorrow"},
])
def test_key_validation_errors_match(pair: Pair, body):
    reply = pair.same("POST", "/key", body)
    assert reply.status == 400 and reply.body["message"]


def test_delete_unknown_key_matches(pair: Pair):
    assert pair.same("DELETE", "/key", {"key": "#key#missing"}).status == 404
    assert pair.same("DELETE", "/key", {"key": "#account#x"}).status == 404
    assert pair.same("DELETE", "/key", {}).status == 400


def test_token_method_not_allowed_matches(pair: Pair):
    assert pair.same("POST", "/token", token=None).status == 405


# ---- collaborators -------------------------------------------------------------------------------


def test_link_list_unlink_collaborators_match(pair: Pair):
    bob, carol = pair.stack.other("bob"), pair.stack.other("carol")
    for member, role in ((bob, "analyst"), (carol, None)):
        body = {"config": {"x": 1}, "value": "", **({"role": role} if role else {})}
        pair.same("POST", f"/account/{member}", body, template=MEMBER)
    listing = pair.same("GET", "/my", query={"key": "#account#"})
    assert [r["member"] for r in listing.body["accounts"]] == sorted([bob, carol])
    # the collaborator sees the mirror row in its own partition
    pair.same("GET", "/my", query={"key": "#account#"}, principal=bob)
    pair.same("DELETE", f"/account/{carol}", {}, template=MEMBER)
    pair.same("DELETE", f"/account/{carol}", {}, template=MEMBER)  # 404 the second time
    pair.same("GET", "/my", query={"key": "#account#"})


@pytest.mark.parametrize("body", [{"role": "owner"}, "oops", {"config": "notadict"}])
def test_link_validation_errors_match(pair: Pair, body):
    reply = pair.same("POST", f"/account/{pair.stack.other('x')}", body, template=MEMBER)
    assert reply.status == 400


def test_cannot_add_self_and_bad_delete_key_match(pair: Pair):
    assert pair.same("POST", f"/account/{pair.user}", {}, template=MEMBER).status == 400
    bob = pair.stack.other("bob")
    assert pair.same("DELETE", f"/account/{bob}", {"key": "#account#elsewhere#x#"}, template=MEMBER).status == 400


def test_assume_role_and_roles_match(pair: Pair):
    owner = pair.user
    analyst, reader, stranger = (pair.stack.other(n) for n in ("analyst", "reader", "stranger"))
    pair.same("POST", f"/account/{analyst}", {"role": "analyst"}, template=MEMBER)
    pair.same("POST", f"/account/{reader}", {"role": "readonly"}, template=MEMBER)
    # a collaborator reads the owner's account
    ok = pair.same("GET", "/my", query={"key": "#account#"}, principal=analyst, account=owner)
    assert ok.status == 200 and len(ok.body["accounts"]) == 2
    # a stranger may not
    no = pair.same("GET", "/my", query={"key": "#account#"}, principal=stranger, account=owner)
    assert no.status == 403 and stranger in no.body["message"]
    # readonly cannot write; analyst can mint keys for the account (with its role)
    ro = pair.same("POST", "/key", {"name": "x"}, principal=reader, account=owner)
    assert ro.status == 403
    new = pair.service("POST", "/key", {"name": "x"}, principal=analyst, account=owner)
    assert new.status == 200 and new.body["role"] == "analyst" and new.body["username"] == owner


@pytest.mark.parametrize("token", [None, "garbage", "Basic abc"])
def test_unauthenticated_matches(pair: Pair, token):
    headers = {"authorization": token} if token else {}
    reply = pair.same("GET", "/my", query={"key": "#account#"}, token=None, headers=headers)
    assert (reply.status, reply.body) == (401, {"message": "Unauthorized"})


def test_expired_token_is_unauthorized_on_both(pair: Pair):
    old = pair.stack.token(now=1_000_000_000)
    reply = pair.same("GET", "/my", query={"key": "#key#"}, token=old)
    assert reply.status == 401


def test_bare_token_without_bearer_is_accepted_like_legacy(pair: Pair):
    reply = pair.same("GET", "/my", query={"key": "#key#"}, token=None,
                      headers={"authorization": pair.stack.token()})
    assert reply.status == 200


# ---- GET /my paging -----------------------------------------------------------------------------


def test_my_offsets_and_flags_match(pair: Pair, monkeypatch, client):
    monkeypatch.setenv("CHARIOT_PAGE_SIZE", "2")
    monkeypatch.setattr(client.app.state.settings, "page_size", 2)
    members = sorted(pair.stack.other(f"m{i}") for i in range(5))
    for m in members:
        pair.same("POST", f"/account/{m}", {"role": "readonly"}, template=MEMBER)
    seen, offset = [], None
    while True:
        q = {"key": "#account#"} | ({"offset": offset} if offset else {})
        page = pair.same("GET", "/my", query=q)
        seen += [r["member"] for r in page.body.get("accounts", [])]
        if "offset" not in page.body:
            break
        assert set(page.body["offset"]) == {"username", "key"}
        import json
        offset = json.dumps(page.body["offset"])
    assert seen == members
    pair.same("GET", "/my", query={"key": "#account#", "desc": "true"})
    pair.same("GET", "/my", query={"key": f"#account#{pair.user}#{members[0]}#", "exact": "true"})
    pair.same("GET", "/my", query={"key": f"#account#{pair.user}#{members[1]}",
                                  "to": f"#account#{pair.user}#{members[3]}~"})
    pair.same("GET", "/my", query={"key": "#account#", "label": "key"})


@pytest.mark.parametrize("query", [
    {}, {"key": "#account#", "offset": "nope"}, {"key": "#account#", "offset": '{"username": "other", "key": "k"}'},
    {"key": "#account#", "offset": "[1]"},
])
def test_my_bad_input_matches(pair: Pair, query):
    assert pair.same("GET", "/my", query=query).status == 400
