"""The hot path's stages with in-memory sides: the decision's reason reaches the access log,
draining goes through decide_side, and add-ons that do not apply to a route are never called."""

import json
import os

import httpx
import pytest

from chariot_migrate.proxy.accesslog import AccessLog
from chariot_migrate.proxy.app import ProxyApp
from chariot_migrate.rollout.evidence import StaticDataEvidence
from chariot_migrate.rollout.operations import Operations
from chariot_migrate.rollout.store import open_state_store
from chariot_migrate.routes.loader import load_table
from chariot_migrate.transport import HttpResponse

ROUTES = """\
version: 1
stage_prefix: /chariot
bucket_by: [header:account]
legacy: {invoker: http, url: "http://127.0.0.1:9"}
services:
  risk-assessment: {phase: 3, url: "http://127.0.0.1:9", dual_write: "on"}
routes:
  - {path: /risk, methods: [GET], service: risk-assessment}
"""


class FakeSide:
    async def send(self, request, timeout):
        return HttpResponse(200, [("content-type", "application/json")], b"{}")

    async def aclose(self):
        pass


class Counting:
    """An add-on that acts only on shadowed services; counts every hook call it gets."""

    def __init__(self):
        self.calls = 0

    def applies(self, route, state):
        return route is not None and state is not None and state.shadow_bp > 0

    async def before(self, ex):
        self.calls += 1

    def needs_body(self, ex):
        self.calls += 1
        return False

    async def response(self, ex):
        self.calls += 1

    def done(self, ex):
        self.calls += 1

    async def start(self):
        return None

    async def aclose(self):
        return None


@pytest.fixture
async def proxy(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARIOT_MIGRATE_OPERATOR_TOKEN", "op-secret")
    p = tmp_path / "routes.yaml"
    p.write_text(ROUTES)
    store = open_state_store(f"sqlite:///{tmp_path}/s.db")
    app = ProxyApp(p, store, access_log_enabled=True)
    counting = Counting()
    app.addons.append(counting)
    await app.startup()
    r, w = os.pipe()
    os.set_blocking(r, False)
    app.access = AccessLog(fd=w)
    app.transports.legacy = FakeSide()
    app.transports.services["risk-assessment"] = FakeSide()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy")

    def log_lines():
        app.access.flush()
        return [json.loads(line) for line in os.read(r, 1 << 20).decode().splitlines()]

    ops = Operations(store, load_table(p).config, data_evidence=StaticDataEvidence())
    yield app, client, ops, counting, log_lines
    await client.aclose()
    await app.shutdown()
    os.close(r)
    os.close(w)


async def test_the_access_log_records_the_reason_of_the_decision(proxy):
    app, client, ops, _, log_lines = proxy
    ops.shift("risk-assessment", 100)
    ops.pin("risk-assessment", "stay@x.com", "legacy")
    await app.state.poll()
    await client.get("/chariot/risk", headers={"account": "a@x.com"})
    await client.get("/chariot/risk", headers={"account": "stay@x.com"})
    await client.get("/chariot/risk", headers={"account": "a@x.com", "x-migrate-target": "legacy",
                                               "x-migrate-token": "op-secret"})
    await client.get("/chariot/nowhere")
    got = [(line["side"], line["decision"], line["route"]) for line in log_lines()]
    assert got == [("new", "bucket", "/risk"), ("legacy", "pinned", "/risk"), ("legacy", "override", "/risk"),
                   ("legacy", "bucket", "unmatched")]


async def test_an_account_with_writes_on_their_way_to_its_side_is_drained_to_the_other(proxy):
    app, client, ops, _, log_lines = proxy
    ops.shift("risk-assessment", 100)
    await app.state.poll()
    waiting = {("a@x.com", "risk-assessment", "new")}

    async def pending_toward(account, service, target):
        return (account, service, target) in waiting

    app._pending_toward = pending_toward
    r = await client.get("/chariot/risk", headers={"account": "a@x.com"})
    assert r.headers["x-migrate-side"] == "legacy"
    other = await client.get("/chariot/risk", headers={"account": "b@x.com"})
    assert other.headers["x-migrate-side"] == "new"
    waiting.add(("a@x.com", "risk-assessment", "legacy"))  # pending both ways: nowhere better to go
    assert (await client.get("/chariot/risk", headers={"account": "a@x.com"})).headers["x-migrate-side"] == "new"
    assert [line["decision"] for line in log_lines()] == ["draining", "bucket", "bucket"]


async def test_an_add_on_that_does_not_apply_to_the_route_is_never_called(proxy):
    app, client, ops, counting, _ = proxy
    await client.get("/chariot/risk", headers={"account": "a@x.com"})
    assert counting.calls == 0
    ops.set_shadow("risk-assessment", 100)
    await app.state.poll()
    await client.get("/chariot/risk", headers={"account": "a@x.com"})
    assert counting.calls == 4  # before, needs_body, response, done: once each
    await client.get("/chariot/nowhere")  # no route: no service state, nothing to shadow
    assert counting.calls == 4
