"""failover_to_new: when legacy fails a safe request of a prepared service, the new side serves
it — counted, marked, counted against legacy's window; never for writes, never for a service
that is not prepared (the setting is ignored with the reason), never for an account whose writes
are still on their way to new."""

from __future__ import annotations

import textwrap

import httpx
import pytest
from test_proxy_app import FakeSide

from chariot_migrate.proxy.app import ProxyApp
from chariot_migrate.proxy.failover_new import NewFailover, decide
from chariot_migrate.proxy.windowing import WindowAddon
from chariot_migrate.rollout.safety import Verdict
from chariot_migrate.rollout.store import open_state_store
from chariot_migrate.routes.loader import load_table
from chariot_migrate.transport import HttpRequest, HttpResponse

ROUTES = textwrap.dedent("""\
    version: 1
    bucket_by: [header:account]
    legacy: {invoker: http, url: "http://127.0.0.1:9"}
    services:
      risk-assessment: {phase: 3, url: "http://127.0.0.1:9", failover_to_new: true}
      account: {phase: 1, url: "http://127.0.0.1:9"}
    routes:
      - {path: /risk, methods: [GET, PUT], service: risk-assessment}
      - {path: /account, methods: [GET], service: account}
    """)
UNPREPARED = Verdict(("dual write is off", "no backfill has run"), ("chariot-migrate prepare risk-assessment",))


def test_decide():
    assert decide("s", False, Verdict()) == (False, "failover_to_new is off")
    assert decide("s", True, Verdict())[0] is True
    assert decide("s", True, None)[0] is False  # not known yet: safe by default
    ok, why = decide("risk-assessment", True, UNPREPARED)
    assert not ok and why == ("failover_to_new for risk-assessment is ignored: it is not prepared (dual write is "
                              "off and no backfill has run); run `chariot-migrate prepare risk-assessment`")
    ok, why = decide("s", True, OSError("state store down"))
    assert not ok and "cannot be read (state store down)" in why


async def test_refresh_asks_only_for_services_that_want_it(tmp_path):
    p = tmp_path / "routes.yaml"
    p.write_text(ROUTES)
    cfg = load_table(p).config
    asked = []
    verdicts = {"risk-assessment": UNPREPARED}

    def compute(c, state_url, names):
        asked.append(names)
        return verdicts

    nf = NewFailover(lambda: cfg, None, compute=compute)
    assert not nf.allows("risk-assessment")  # before the first pass
    await nf.refresh()
    assert asked == [["risk-assessment"]] and not nf.allows("risk-assessment")
    assert "not prepared" in nf.snapshot()["risk-assessment"]["reason"]
    verdicts["risk-assessment"] = Verdict()
    await nf.refresh()
    assert nf.allows("risk-assessment") and not nf.allows("account")

    def broken(c, state_url, names):
        raise RuntimeError("boom")

    nf.compute = broken
    await nf.refresh()
    assert not nf.allows("risk-assessment")  # readiness unknown again: off


class Answer(FakeSide):
    """Legacy answering with a status (a Lambda error is a 502 from the invoker)."""

    def __init__(self, name, status):
        super().__init__(name)
        self.status = status

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.seen.append((request, timeout))
        return HttpResponse(self.status, [("content-type", "application/json")], b'{"message": "Internal server error"}')


@pytest.fixture
async def proxy(tmp_path):
    p = tmp_path / "routes.yaml"
    p.write_text(ROUTES)
    app = ProxyApp(p, open_state_store(f"sqlite:///{tmp_path}/s.db"), access_log_enabled=False)
    windows = WindowAddon(store=None, flush_interval_s=3600)  # type: ignore[arg-type]  # recorder only
    app.addons.append(windows)
    await app.startup()
    await app.new_failover.aclose()  # no background pass: the tests set readiness themselves
    new = FakeSide("new")
    app.transports.services["risk-assessment"] = new
    app.transports.services["account"] = new
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy")
    yield app, client, new, windows
    await client.aclose()
    await app.shutdown()


def _window(windows: WindowAddon) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for (service, side, _), s in windows.recorder.take().items():
        r, e = out.get(f"{service}/{side}", (0, 0))
        out[f"{service}/{side}"] = (r + s.requests, e + s.errors)
    return out


@pytest.mark.parametrize(("legacy_fails", "reason"), [("timeout", "legacy_timeout"), (502, "legacy_status_502"),
                                                      ("connect", "legacy_connect")])
async def test_a_failed_read_of_a_prepared_service_is_served_by_new(proxy, legacy_fails, reason):
    app, client, new, windows = proxy
    app.transports.legacy = Answer("legacy", legacy_fails) if isinstance(legacy_fails, int) else FakeSide(
        "legacy", fail=legacy_fails)
    app.new_failover.allowed = {"risk-assessment": True}
    r = await client.get("/risk", headers={"account": "a@x.com"})
    assert r.status_code == 200 and r.json()["side"] == "new"
    assert r.headers["x-migrate-side"] == "new" and r.headers["x-migrate-failover"] == reason
    assert len(new.seen) == 1
    assert _window(windows) == {"risk-assessment/legacy": (1, 1), "risk-assessment/new": (1, 0)}


async def test_writes_unprepared_services_and_other_services_never_fail_over_to_new(proxy):
    app, client, new, windows = proxy
    app.transports.legacy = FakeSide("legacy", fail="timeout")
    app.new_failover.allowed = {"risk-assessment": True}
    assert (await client.put("/risk", headers={"account": "a@x.com"}, content=b"{}")).status_code == 504  # a write
    assert (await client.get("/account", headers={"account": "a@x.com"})).status_code == 504  # not configured
    assert (await client.get("/risk")).status_code == 504  # no account: cannot check its writes
    app.new_failover.allowed = {"risk-assessment": False}  # configured but not prepared: ignored
    r = await client.get("/risk", headers={"account": "a@x.com"})
    assert r.status_code == 504 and "x-migrate-failover" not in r.headers
    assert new.seen == []


async def test_legacy_answers_that_are_answers_stand(proxy):
    app, client, new, windows = proxy
    app.transports.legacy = Answer("legacy", 404)
    app.new_failover.allowed = {"risk-assessment": True}
    assert (await client.get("/risk", headers={"account": "a@x.com"})).status_code == 404
    assert new.seen == []


async def test_no_failover_to_new_while_the_accounts_writes_are_on_their_way_there(proxy):
    app, client, new, windows = proxy
    app.transports.legacy = Answer("legacy", 503)
    app.new_failover.allowed = {"risk-assessment": True}
    waiting = {("a@x.com", "risk-assessment", "new")}

    async def pending_toward(account, service, target):
        return (account, service, target) in waiting

    app._pending_toward = pending_toward
    assert (await client.get("/risk", headers={"account": "a@x.com"})).status_code == 503
    assert (await client.get("/risk", headers={"account": "b@x.com"})).headers["x-migrate-side"] == "new"
    assert len(new.seen) == 1
