from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
import svc_c_testkit as kit
from svc_c_testkit import Stack, assert_same, call_service, normalize, parity

from chariot_migrate.legacy import account, graph, hook
from chariot_migrate.legacy import store as legacy_store
from chariot_migrate.legacy.auth import Caller as LegacyCaller
from chariot_migrate.model.clock import now_iso
from chariot_migrate.model.keys import account_key
from chariot_migrate.services.integration_hub.app import IntegrationHubSettings, create_app
from chariot_migrate.services.integration_hub.migration import IntegrationHubMigration
from chariot_migrate.services.integration_hub.peers import HttpHookPeers
from chariot_migrate.services.kit.breaker import BreakerConfig

stack, _moto_stack = kit.stack, kit._moto_stack


class LegacyBackedPeers:
    """Pin rows and entity writes against the legacy table, like the owning services would do."""

    async def pin_valid(self, account: str, pin: str) -> bool:
        return legacy_store.get(account, account_key(account, "hook", pin)) is not None

    def _caller(self, account: str) -> LegacyCaller:
        return LegacyCaller(principal="webhook", username=account, role="admin", now=now_iso())

    async def put_asset(self, account: str, dns: str, name: str) -> dict[str, Any]:
        return graph.upsert_asset(self._caller(account), dns, name, status="A", source="provided", origin="webhook")

    async def put_attribute(self, account, source, name, value):
        return graph.upsert_attribute(self._caller(account), source, name, value, require_source=False)

    async def put_risk(self, account, target, name, status, source):
        dns = target.split("#")[2]
        return graph.upsert_risk(self._caller(account), dns, name, status, source=source, target=target)


def _settings() -> IntegrationHubSettings:
    return IntegrationHubSettings.from_env("integration-hub")


@pytest.fixture
def svc(stack: Stack):
    with kit.service(create_app, settings=_settings(), peers=LegacyBackedPeers()) as client:
        yield client


def _events(client) -> list:
    seen: list = []
    bus = client.app.state.bus
    original = bus.publish

    async def spy(event):
        seen.append(event)
        return await original(event)

    bus.publish = spy
    return seen


def test_link_unlink_integrations_parity(stack: Stack, svc):
    events = _events(svc)
    R = "/account/{member}"
    seq = [("POST", "amazon", {"config": {"secret": "s3cr3t"}, "value": "123456789012"}),
           ("POST", "nessus-import", {"config": {}, "value": "", "role": "imports/nessus-import/x.nessus"}),
           ("POST", "github", {"config": "nope"}),                             # 400 config must be a dict
           ("DELETE", "amazon", {"value": "999"}),                             # 404
           ("DELETE", "amazon", {"key": "#account#someone#amazon#1"}),         # 400
           ("DELETE", "amazon", {"value": "123456789012", "config": {}}),
           ("DELETE", "nessus-import", {"key": f"#account#{stack.user}#nessus-import#"}),
           ("POST", "account", {}),                                              # 400 bad member
           ("POST", "github", "{bad json")]
    for method, member, body in seq:
        assert_same(parity(svc, stack, account.handler, method, f"/account/{member}", body, resource=R,
                           path_params={"member": member}))
    assert [(e.data["member"], e.data["linked"]) for e in events] == [
        ("amazon", True), ("nessus-import", True), ("amazon", False), ("nessus-import", False)]
    # the payload carries the row, so the account service's #account# read model lists it like legacy
    first = events[0].data
    assert first["key"] == f"#account#{stack.user}#amazon#123456789012" and first["value"] == "123456789012"
    assert first["config"] == {"secret": "s3cr3t"} and first["updated"]
    assert events[1].data["role"] == "imports/nessus-import/x.nessus"


def test_people_and_notification_members_are_refused(stack: Stack, svc):
    for member, owner in (("bob@example.com", "account"), ("hook", "notification"), ("alert", "notification")):
        st, body = call_service(svc, stack, "POST", f"/account/{member}", {})
        assert st == 400 and owner in body["message"]


def test_inbound_hook_parity(stack: Stack, svc):
    stack.call(account.handler, "POST", "/account/hook", {"value": "pin-9"}, resource="/account/hook")
    enc = base64.b64encode(stack.user.encode()).decode().rstrip("=")
    R = "/hook/{username}/{pin}"
    for path, body in ((f"/hook/{enc}/wrong", {"dns": "w.com", "name": "x"}),     # 401
                       (f"/hook/{enc}/pin-9", {"dns": "w.com"}),                  # 400: name missing
                       ("/hook/%%%/pin-9", {"dns": "w.com", "name": "x"}),         # 400: not base64
                       (f"/hook/{base64.b64encode(b'a#b').decode()}/pin-9", {"dns": "w.com", "name": "x"})):
        parts = path.split("/")
        assert_same(parity(svc, stack, hook.handler, "PUT", path, body, token=None, resource=R,
                           path_params={"username": parts[2], "pin": parts[3]}))
    # success: same shape (entities written through the owners' write path)
    body = {"dns": "w.com", "name": "1.1.1.1", "finding": "exposed-admin"}
    (ls, lb), (ns, nb) = parity(svc, stack, hook.handler, "PUT", f"/hook/{enc}/pin-9", body, token=None,
                                resource=R, path_params={"username": enc, "pin": "pin-9"})
    assert ls == ns == 200 and set(lb) == set(nb) == {"assets", "risks"}
    assert normalize(lb["assets"][0])["key"] == nb["assets"][0]["key"] == "#asset#w.com#1.1.1.1"
    assert nb["risks"][0]["status"] == "TI" and nb["risks"][0]["source"] == "webhook"


def test_hook_peers_over_http_with_circuit_breaker(stack: Stack):
    calls: list[tuple[str, str, str | None]] = []
    down = {"notification": False}

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append((request.url.host, request.url.path, request.headers.get("account")))
        assert request.headers["authorization"].startswith("Bearer ")
        if request.url.host == "notification":
            if down["notification"]:
                return httpx.Response(503)
            return httpx.Response(200, json={"valid": request.url.params["pin"] == "p1"})
        if request.url.path == "/asset":
            return httpx.Response(200, json=[{"key": "#asset#d.com#n", "dns": "d.com"}])
        if request.url.path == "/attribute":
            return httpx.Response(200, json={"attributes": [{"key": "#attribute#source#webhook#asset#d.com#n"}]})
        return httpx.Response(200, json={"risks": [{"key": "#risk#d.com#f", "status": "TI"}]})

    with kit.service(create_app, settings=_settings()) as client:
        client.app.state.peers = HttpHookPeers("http://notification", "http://assets", "http://risks",
                                               client.app.state.service_token, transport=httpx.MockTransport(handle),
                                               breaker=BreakerConfig(failure_threshold=2, cooldown=60))
        enc = base64.b64encode(b"owner@example.com").decode()
        st, out = call_service(client, stack, "PUT", f"/hook/{enc}/p1", {"dns": "d.com", "name": "n", "finding": "f"},
                               token=None)
        assert st == 200 and out["risks"][0]["status"] == "TI"
        assert [(h, p) for h, p, _ in calls] == [("notification", "/internal/api/hook"), ("assets", "/asset"),
                                                 ("assets", "/attribute"), ("risks", "/risk")]
        assert {a for _, p, a in calls if p != "/internal/api/hook"} == {"owner@example.com"}
        assert call_service(client, stack, "PUT", f"/hook/{enc}/p2", {"dns": "d", "name": "n"}, token=None)[0] == 401
        down["notification"] = True
        before = len(calls)
        for _ in range(2):  # GET is retried (3 tries) → the breaker opens after 2 failures
            st, out = call_service(client, stack, "PUT", f"/hook/{enc}/p1", {"dns": "d", "name": "n"}, token=None)
            assert st == 503
        assert "circuit open" in out["message"]
        tried = len(calls) - before
        st, _ = call_service(client, stack, "PUT", f"/hook/{enc}/p1", {"dns": "d", "name": "n"}, token=None)
        assert st == 503 and len(calls) - before == tried  # fails fast: no call while open


def test_migration_mapping():
    m = IntegrationHubMigration(table_prefix="")
    assert m.to_new({"username": "a@x", "key": "#account#a@x#amazon#1"})[0] == "integration-hub-integrations"
    for key in ("#account#a@x#bob@x#", "#account#a@x#hook#p", "#account#a@x#alert#", "#job#a#b#c"):
        assert m.to_new({"username": "a@x", "key": key}) is None
    assert m.to_new({"username": "bob@x", "key": "#account#a@x#amazon#1"}) is None  # mirror rows are not ours
