from __future__ import annotations

import time

import legacy_testkit
from legacy_testkit import REAL_GENERATE, Stack

from chariot_migrate.legacy import asset, key, resources, search, token
from chariot_migrate.model import tokens

stack, _moto_stack = legacy_testkit.stack, legacy_testkit._moto_stack  # fixtures


def _list_assets(s: Stack, **kw):
    return s.call(search.handler, "POST", "/my", {"node": {"labels": ["Asset"]}}, **kw)


def test_token_exchange_with_api_key_issues_verifiable_jwt(stack: Stack):
    key_id, secret = resources.create_api_key(stack.user)
    status, body = stack.call(token.handler, "GET", "/token", token=None,
                              headers={"X-GUARD-API-KEY-ID": key_id, "X-Guard-Api-Key-Secret": secret})
    assert status == 200 and body["expires_in"] == 3600
    from chariot_migrate.legacy import signing
    claims = tokens.verify(body["token"], signing.load().public_pem)
    assert claims["sub"] == claims["email"] == stack.user
    assert claims["iss"] == "chariot-migrate-local" and claims["aud"] == "chariot"
    # and the token works on a protected route
    assert _list_assets(stack, token=body["token"])[0] == 200


def test_token_rejects_wrong_secret_missing_headers_and_deleted_key(stack: Stack):
    key_id, secret = resources.create_api_key(stack.user)
    bad = stack.call(token.handler, "GET", "/token", token=None,
                     headers={"X-GUARD-API-KEY-ID": key_id, "X-GUARD-API-KEY-SECRET": secret + "x"})
    assert bad[0] == 401
    assert stack.call(token.handler, "GET", "/token", token=None)[0] == 401
    assert stack.call(key.handler, "DELETE", "/key", {"key": f"#key#{key_id}"})[0] == 200
    gone = stack.call(token.handler, "GET", "/token", token=None,
                      headers={"X-GUARD-API-KEY-ID": key_id, "X-GUARD-API-KEY-SECRET": secret})
    assert gone[0] == 401


def test_api_key_secret_shown_once_and_stored_hashed(stack: Stack):
    status, created = stack.call(key.handler, "POST", "/key", {"name": "ci", "expires": "2099-01-01T00:00:00Z"})
    assert status == 200 and created["secret"] and created["status"] == "A" and created["key"].startswith("#key#")
    listed = stack.call(search.handler, "GET", "/my", query={"key": "#key#"})[1]["keys"]
    assert len(listed) == 1 and "secret" not in listed[0] and "_hash" not in listed[0]
    from chariot_migrate.legacy import store
    raw = store.get(stack.user, created["key"])
    assert created["secret"] not in str(raw) and len(raw["_hash"]) == 64
    ok = stack.call(token.handler, "GET", "/token", token=None,
                    headers={"X-GUARD-API-KEY-ID": created["id"], "X-GUARD-API-KEY-SECRET": created["secret"]})
    assert ok[0] == 200
    assert stack.call(key.handler, "POST", "/key", {"name": "x", "expires": "tomorrow"})[0] == 400


def test_missing_and_forged_tokens_are_401(stack: Stack):
    assert _list_assets(stack, token=None) == (401, {"message": "Unauthorized"})
    forged = tokens.issue(stack.user, REAL_GENERATE())
    assert _list_assets(stack, token=forged) == (401, {"message": "Unauthorized"})
    expired = stack.token(now=time.time() - 7200)
    assert _list_assets(stack, token=expired)[0] == 401
    assert _list_assets(stack, token="not.a.jwt")[0] == 401


def test_assume_role_needs_collaboration_and_respects_readonly(stack: Stack):
    from chariot_migrate.legacy import account
    owner, reader, stranger = stack.other("owner"), stack.other("reader"), stack.other("stranger")
    assert stack.call(asset.handler, "PUT", "/asset", {"group": "owner.com", "identifier": "owner.com"},
                      principal=owner)[0] == 200
    st, row = stack.call(account.handler, "POST", f"/account/{reader}", {"config": {}, "value": "", "role": "readonly"},
                         principal=owner, resource="/account/{member}", path_params={"member": reader})
    assert st == 200 and row["role"] == "readonly" and row["key"] == f"#account#{owner}#{reader}#"
    st, body = _list_assets(stack, principal=reader, account=owner)
    assert st == 200 and [a["key"] for a in body["assets"]] == ["#asset#owner.com#owner.com"]
    denied = stack.call(asset.handler, "PUT", "/asset", {"group": "x.com", "identifier": "x.com"},
                        principal=reader, account=owner)
    assert denied[0] == 403
    assert _list_assets(stack, principal=stranger, account=owner)[0] == 403
    # own partition is separate
    assert _list_assets(stack, principal=reader)[1] == {}


def test_replay_identity_adopts_generated_values_only_with_header(stack: Stack):
    body = {"group": "r.com", "identifier": "r.com", "status": "A", "created": "2020-01-01T00:00:00Z",
            "updated": "2020-01-02T00:00:00Z"}
    replay = "replay@chariot-migrate.local"
    st, out = stack.call(asset.handler, "PUT", "/asset", body, principal=replay, account=stack.user,
                         headers={"X-Migrate-Replay": "1"})
    assert st == 200 and out[0]["created"] == "2020-01-01T00:00:00Z" and out[0]["updated"] == "2020-01-02T00:00:00Z"
    assert out[0]["username"] == stack.user
    body2 = body | {"identifier": "s.r.com"}
    st, out2 = stack.call(asset.handler, "PUT", "/asset", body2, principal=replay, account=stack.user)
    assert st == 200 and out2[0]["created"] != "2020-01-01T00:00:00Z"
    # an ordinary user cannot adopt, even with the header
    st, out3 = stack.call(asset.handler, "PUT", "/asset", body | {"identifier": "t.r.com"},
                          headers={"X-Migrate-Replay": "1"})
    assert st == 200 and out3[0]["created"] != "2020-01-01T00:00:00Z"


def test_replayed_api_key_keeps_id_and_secret(stack: Stack):
    st, created = stack.call(key.handler, "POST", "/key", {"name": "ci", "expires": "2099-01-01T00:00:00Z"},
                             principal="replay@chariot-migrate.local", account=stack.user,
                             headers={"X-Migrate-Replay": "1"} )
    assert st == 200
    replay_body = {"name": "ci", "expires": "2099-01-01T00:00:00Z", "id": "11111111-2222-3333-4444-555555555555",
                   "secret": "primary-secret", "created": "2021-01-01T00:00:00Z"}
    st, out = stack.call(key.handler, "POST", "/key", replay_body, principal="replay@chariot-migrate.local",
                         account=stack.user, headers={"X-Migrate-Replay": "1"})
    assert st == 200 and out["id"] == replay_body["id"] and out["created"] == "2021-01-01T00:00:00Z"
    assert "secret" not in out
    ok = stack.call(token.handler, "GET", "/token", token=None,
                    headers={"X-GUARD-API-KEY-ID": replay_body["id"], "X-GUARD-API-KEY-SECRET": "primary-secret"})
    assert ok[0] == 200
