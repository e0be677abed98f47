"""The hot path with in-memory transports (no sockets): routing, sides, limits, error mapping."""

import json
import textwrap

import httpx
import pytest

from chariot_migrate.proxy.app import ProxyApp
from chariot_migrate.rollout.evidence import StaticDataEvidence
from chariot_migrate.rollout.operations import Operations
from chariot_migrate.rollout.store import open_state_store
from chariot_migrate.routes.loader import load_table
from chariot_migrate.transport import HttpRequest, HttpResponse, UpstreamError

ROUTES = textwrap.dedent("""\
    version: 1
    stage_prefix: /chariot
    bucket_by: [header:account, jwt:email]
    legacy: {invoker: http, url: "http://127.0.0.1:9"}
    defaults: {max_body_bytes: 1000}
    services:
      account: {phase: 1, url: "http://127.0.0.1:9", dual_write: "on"}
      risk-assessment: {phase: 3, url: "http://127.0.0.1:9", timeout_s: 0.5, dual_write: "on"}
    routes:
      - {path: /token, methods: [GET], service: account, public: true}
      - {path: /risk, methods: [PUT, DELETE, GET], service: risk-assessment}
    """)


class FakeSide:
    def __init__(self, name, fail=None):
        self.name, self.fail, self.seen = name, fail, []

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.seen.append((request, timeout))
        if self.fail:
            raise UpstreamError(self.fail, f"{self.name} failed")
        body = json.dumps({"side": self.name, "path": request.path, "body": request.body.decode()}).encode()
        return HttpResponse(200, [("content-type", "application/json"), ("connection", "close")], body)

    async def aclose(self):
        pass


@pytest.fixture
async def proxy(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARIOT_MIGRATE_OPERATOR_TOKEN", "op-secret")
    p = tmp_path / "routes.yaml"
    p.write_text(ROUTES)
    store = open_state_store(f"sqlite:///{tmp_path}/s.db")
    app = ProxyApp(p, store, access_log_enabled=False)
    await app.startup()
    legacy, new = FakeSide("legacy"), FakeSide("new")
    app.transports.legacy = legacy
    app.transports.services["risk-assessment"] = new
    app.transports.services["account"] = new
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy")
    ops = Operations(store, load_table(p).config, data_evidence=StaticDataEvidence())
    yield app, client, legacy, new, ops
    await client.aclose()
    await app.shutdown()


async def refresh(app):
    await app.state.poll()


async def test_everything_starts_on_legacy_and_stage_prefix_is_stripped(proxy):
    app, client, legacy, new, _ = proxy
    r = await client.put("/chariot/risk", headers={"account": "a@x.com"}, content=b'{"key":"k"}')
    assert r.status_code == 200 and r.json() == {"side": "legacy", "path": "/risk", "body": '{"key":"k"}'}
    assert r.headers["x-migrate-side"] == "legacy" and "connection" not in r.headers
    assert legacy.seen[0][0].function is None and legacy.seen[0][1] == 29.0  # legacy timeout default


async def test_shift_moves_accounts_and_pins_override(proxy):
    app, client, legacy, new, ops = proxy
    ops.shift("risk-assessment", 100)
    ops.pin("risk-assessment", "stay@x.com", "legacy")
    await refresh(app)
    r1 = await client.get("/chariot/risk", headers={"account": "a@x.com"})
    r2 = await client.get("/chariot/risk", headers={"account": "STAY@x.com"})
    assert (r1.json()["side"], r2.json()["side"]) == ("new", "legacy")
    assert new.seen[0][1] == 0.5  # the service's timeout


async def test_unmatched_route_goes_to_legacy(proxy):
    app, client, legacy, new, ops = proxy
    ops.shift("account", 100)
    await refresh(app)
    r = await client.get("/chariot/something/else")
    assert r.json()["side"] == "legacy" and r.headers["x-migrate-side"] == "legacy"


async def test_operator_override_needs_the_operator_token(proxy):
    app, client, legacy, new, _ = proxy
    r = await client.get("/chariot/risk", headers={"account": "a@x.com", "x-migrate-target": "new"})
    assert r.json()["side"] == "legacy"
    r = await client.get("/chariot/risk", headers={"account": "a@x.com", "x-migrate-target": "new",
                                                   "x-migrate-token": "op-secret"})
    assert r.json()["side"] == "new"
    forwarded = dict(new.seen[-1][0].headers)
    assert "x-migrate-token" not in forwarded and "x-migrate-target" not in forwarded


async def test_oversize_body_is_413_without_touching_an_upstream(proxy):
    app, client, legacy, new, _ = proxy
    r = await client.put("/chariot/risk", content=b"x" * 1001)
    assert r.status_code == 413 and "exceeds 1000 bytes" in r.json()["error"]
    assert legacy.seen == [] and new.seen == []


async def test_traversal_is_400_without_touching_an_upstream(proxy):
    app, client, legacy, new, _ = proxy
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "method": "GET", "path": "/chariot/risk/../admin", "query_string": b"",
             "headers": [], "scheme": "http", "client": ("127.0.0.1", 1)}
    await app(scope, receive, send)
    assert sent[0]["status"] == 400 and b"dot segments" in sent[1]["body"]
    assert legacy.seen == []


@pytest.mark.parametrize("kind,status", [("connect", 502), ("timeout", 504), ("protocol", 502)])
async def test_upstream_failure_maps_to_json_error(proxy, kind, status):
    app, client, legacy, new, _ = proxy
    app.transports.legacy = FakeSide("legacy", fail=kind)
    r = await client.get("/chariot/risk", headers={"account": "a@x.com"})
    assert r.status_code == status
    assert r.json() == {"error": "legacy failed", "side": "legacy"}


async def test_delete_body_is_forwarded(proxy):
    app, client, legacy, new, _ = proxy
    r = await client.request("DELETE", "/chariot/risk", content=b'{"key":"#risk#a#b"}', headers={"account": "a@x.com"})
    assert r.json()["body"] == '{"key":"#risk#a#b"}'


async def test_bad_routes_reload_keeps_old_table(proxy, tmp_path):
    app, client, legacy, new, _ = proxy
    import os
    import time

    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.replace("service: account, public", "service: nobody, public"))
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert await app.routes.check() is False
    assert "unknown service 'nobody'" in app.routes.last_error
    r = await client.get("/chariot/token")
    assert r.status_code == 200  # still routed by the old table
