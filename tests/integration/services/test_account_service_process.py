"""The account service as a real process (`chariot-migrate service run account`) on a moto server
and Redis: API key → token, tokens from the legacy key, collaborators, membership, events."""

from __future__ import annotations

import uuid

import httpx
import pytest
from chariot_services_procs import ROOT, bearer, clean_redis, moto_estate, service_env, stream_events
from conftest import Proc, cli

from chariot_migrate.model import tokens

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def estate():
    with moto_estate() as e:
        yield e


@pytest.fixture
def account(estate):
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    proc = Proc(cli("service", "run", "account", "--port", "0", "--routes", str(ROOT / "routes.yaml")),
                env=service_env(estate, prefix))
    try:
        proc.wait_http("/health")
        yield proc, prefix
    finally:
        proc.stop()
        clean_redis(prefix)


def test_account_service_end_to_end(estate, account):
    proc, prefix = account
    key = estate["key"]
    owner, bob = f"o{uuid.uuid4().hex[:6]}@example.com", f"b{uuid.uuid4().hex[:6]}@example.com"
    with httpx.Client(base_url=proc.url, timeout=10) as http:
        ready = http.get("/ready")
        assert ready.status_code == 200, ready.text
        # a legacy-issued token (same signing key) is accepted
        minted = http.post("/key", json={"name": "ci"}, headers=bearer(key, owner))
        assert minted.status_code == 200, minted.text
        rec = minted.json()
        assert "_hash" not in rec and rec["secret"]
        tok = http.get("/token", headers={"X-GUARD-API-KEY-ID": rec["id"], "X-GUARD-API-KEY-SECRET": rec["secret"]})
        assert tok.status_code == 200 and tok.json()["expires_in"] == 3600
        token = tok.json()["token"]
        assert tokens.verify(token, key.public_pem)["email"] == owner
        auth = {"authorization": f"Bearer {token}"}
        assert http.post(f"/account/{bob}", json={"role": "analyst"}, headers=auth).status_code == 200
        listing = http.get("/my", params={"key": "#account#"}, headers=auth).json()
        assert [r["member"] for r in listing["accounts"]] == [bob]
        # bob acts for the owner with its role; a stranger may not
        as_bob = http.get("/my", params={"key": "#key#"}, headers=bearer(key, bob, account=owner))
        assert as_bob.status_code == 200 and len(as_bob.json()["keys"]) == 1
        stranger = http.get("/my", params={"key": "#key#"}, headers=bearer(key, "eve@example.com", account=owner))
        assert stranger.status_code == 403
        assert http.get("/token", headers={"X-GUARD-API-KEY-ID": rec["id"]}).status_code == 401
        assert http.get("/.well-known/jwks.json").json()["keys"][0]["kid"] == key.kid
    actions = [e["data"]["action"] for e in stream_events(prefix, "user.action") if e["account"] == owner]
    assert actions == ["key.created", "member.linked"]
