from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import svc_c_testkit as kit
from hypothesis import given
from hypothesis import strategies as st
from svc_c_testkit import Stack, assert_same, call_service, parity

from chariot_migrate.legacy import account
from chariot_migrate.services.kit.events import Event
from chariot_migrate.services.notification import delivery
from chariot_migrate.services.notification.app import NotificationSettings, create_app
from chariot_migrate.services.notification.migration import NotificationMigration

stack, _moto_stack = kit.stack, kit._moto_stack


class Hooks:
    """A local webhook receiver on 127.0.0.1:0; `plan` scripts the status of each request."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self.plan: list[int] = []
        self.redirect_to: str | None = None
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if outer.redirect_to and self.path == "/redirect":
                    self.send_response(307)
                    self.send_header("Location", outer.redirect_to)
                    self.end_headers()
                    return
                status = outer.plan.pop(0) if outer.plan else 200
                outer.received.append((self.path, json.loads(body)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def hooks():
    h = Hooks()
    yield h
    h.server.shutdown()


def _settings(allowed: str = "") -> NotificationSettings:
    return NotificationSettings.from_env("notification", notify_allowed_hosts=allowed, notify_backoff_s=0.01,
                                         notify_attempts=3)


@pytest.fixture
def svc(stack: Stack, hooks: Hooks):
    with kit.service(create_app, settings=_settings(f"127.0.0.1:{hooks.port}")) as client:
        yield client


def test_hook_and_alert_parity(stack: Stack, svc):
    H = "/account/hook"
    A = "/account/alert"
    seq = [("POST", H, {"config": {}, "value": "pin-1", "role": "readonly"}),
           ("POST", H, {"config": {}, "value": ""}),                     # 400: no pin
           ("POST", H, {"config": {}, "value": "pin-2"}),                # replaces pin-1
           ("DELETE", H, {"key": f"#account#{stack.user}#hook#pin-1", "member": "hook", "value": "pin-1"}),  # 404
           ("DELETE", H, {"key": "#account#someone@else#hook#pin-2"}),  # 400: not this account's row
           ("GET", A, None),
           ("POST", A, {"value": "OH", "config": {"url": "http://127.0.0.1:1/x"}}),
           ("POST", A, {"value": "JF", "config": {}, "role": "whatever"}),
           ("POST", A, "[1, 2]"),                                          # 400: not an object
           ("POST", A, {"value": 5}),                                      # 400: value must be a string
           ("GET", A, None),
           ("DELETE", A, {"value": "JF"}),
           ("DELETE", A, {"value": "JF"}),                                 # 404 now
           ("GET", A, None),
           ("DELETE", H, {"key": f"#account#{stack.user}#hook#pin-2", "member": "hook", "value": "pin-2"})]
    for method, path, body in seq:
        assert_same(parity(svc, stack, account.handler, method, path, body, resource=path))


def test_hook_and_alert_rows_are_announced_for_the_account_read_model(stack: Stack, svc):
    seen: list = []
    bus = svc.app.state.bus
    original = bus.publish

    async def spy(event):
        seen.append(event)
        return await original(event)

    bus.publish = spy
    call_service(svc, stack, "POST", "/account/hook", {"value": "p1"})
    call_service(svc, stack, "POST", "/account/hook", {"value": "p2"})  # replaces p1
    call_service(svc, stack, "POST", "/account/alert", {"value": "OH", "config": {"url": "http://x"}})
    call_service(svc, stack, "DELETE", "/account/alert", {"value": "OH"})
    assert [(e.data["member"], e.data["value"], e.data["linked"]) for e in seen] == [
        ("hook", "p1", True), ("hook", "p1", False), ("hook", "p2", True), ("alert", "OH", True), ("alert", "OH", False)]
    assert seen[0].data["key"] == f"#account#{stack.user}#hook#p1" and seen[0].data["role"] == "readonly"


def test_readonly_collaborator_and_auth_parity(stack: Stack, svc):
    reader = stack.other("reader")
    stack.call(account.handler, "POST", f"/account/{reader}", {"role": "readonly"}, resource="/account/{member}",
               path_params={"member": reader})
    # the service's membership lookup would ask the account service; answer like it here
    svc.app.state.auth.membership = lambda acct, who: "readonly" if (acct, who) == (stack.user, reader) else None
    for method, body in (("POST", {"value": "x"}), ("GET", None)):
        assert_same(parity(svc, stack, account.handler, method, "/account/alert", body, resource="/account/alert",
                           principal=reader, account=stack.user))
    assert_same(parity(svc, stack, account.handler, "GET", "/account/alert", resource="/account/alert", token=None))


def _event(account: str, type_: str, data: dict) -> Event:
    return Event.new(type_, account, data)


def _deliver(client, event: Event) -> list[dict]:
    return client.portal.call(client.app.state.notifier.handle, event)


def test_delivery_with_template_retries_and_log(stack: Stack, svc, hooks: Hooks):
    tmpl = '{"text": "{{ event.data.name }} is {{ event.data.status }}", "who": {{ event.account | tojson }}}'
    call_service(svc, stack, "POST", "/account/alert",
                 {"value": "OH", "config": {"url": hooks.url(), "template": tmpl}})
    call_service(svc, stack, "POST", "/account/alert", {"value": "JF", "config": {"url": hooks.url("/jobs")}})
    risk = _event(stack.user, "risk.assessed", {"key": "#risk#a.com#x", "dns": "a.com", "name": "x", "status": "OHF"[:2]})
    hooks.plan = [503, 200]  # first attempt fails, the retry lands
    [row] = _deliver(svc, risk)
    assert row["status"] == "delivered" and row["attempts"] == 2 and row["http_status"] == 200
    assert hooks.received == [("/hook", {"text": "x is OH", "who": stack.user})] * 2  # the 503 and the retry
    # a redelivered event (at-least-once bus) is not sent again
    assert _deliver(svc, risk) == []
    # risks of another status match nothing; a failed job matches the JF rule with the default template
    assert _deliver(svc, _event(stack.user, "risk.assessed", {"key": "#risk#a.com#y", "dns": "a.com", "name": "y",
                                                             "status": "TL"})) == []
    job = _event(stack.user, "job.completed", {"key": "#job#a.com#a.com#nuclei", "capability": "nuclei",
                                               "status": "JF#2026-01-01T00:00:00Z"})
    [row] = _deliver(svc, job)
    assert row["status"] == "delivered" and hooks.received[-1][1]["data"]["capability"] == "nuclei"
    st, log = call_service(svc, stack, "GET", "/notification/deliveries")
    assert st == 200 and {d["status"] for d in log["deliveries"]} == {"delivered"} and len(log["deliveries"]) == 2


def test_4xx_is_final_and_exhausted_retries_fail(stack: Stack, svc, hooks: Hooks):
    call_service(svc, stack, "POST", "/account/alert", {"value": "", "config": {"url": hooks.url()}})
    hooks.plan = [400]
    [row] = _deliver(svc, _event(stack.user, "risk.assessed", {"key": "#risk#b#c", "dns": "b", "name": "c",
                                                                "status": "TH"}))
    assert row["status"] == "failed" and row["attempts"] == 1 and row["http_status"] == 400
    hooks.plan = [500, 502, 503]
    [row] = _deliver(svc, _event(stack.user, "risk.assessed", {"key": "#risk#b#d", "dns": "b", "name": "d",
                                                                "status": "TH"}))
    assert row["status"] == "failed" and row["attempts"] == 3 and row["error"] == "HTTP 503"


def test_allowlist_and_redirects_are_enforced(stack: Stack, svc, hooks: Hooks):
    call_service(svc, stack, "POST", "/account/alert",
                 {"value": "T", "config": {"url": "http://127.0.0.2:9/steal?token=secret"}})
    call_service(svc, stack, "POST", "/account/alert", {"value": "TH", "config": {"url": hooks.url("/redirect")}})
    hooks.redirect_to = "http://127.0.0.3:9/elsewhere"
    rows = _deliver(svc, _event(stack.user, "risk.assessed", {"key": "#risk#b#e", "dns": "b", "name": "e",
                                                               "status": "TH"}))
    by_status = {r["status"] for r in rows}
    assert by_status == {"refused"} and hooks.received == []
    assert all("secret" not in json.dumps(r) for r in rows)  # the log never keeps query strings
    assert any("not in NOTIFY_ALLOWED_HOSTS" in r["error"] for r in rows)
    assert any("redirect to another host refused" in r["error"] for r in rows)


def test_events_reach_the_notifier_through_the_bus(stack: Stack, svc, hooks: Hooks):
    call_service(svc, stack, "POST", "/account/alert", {"value": "OC", "config": {"url": hooks.url("/bus")}})
    event = _event(stack.user, "risk.assessed", {"key": "#risk#z#q", "dns": "z", "name": "q", "status": "OC"})
    svc.portal.call(svc.app.state.bus.publish, event)
    svc.portal.call(svc.app.state.bus.drain)
    assert [p for p, _ in hooks.received] == ["/bus"]


def test_internal_pin_check_needs_a_service_token(stack: Stack, svc):
    call_service(svc, stack, "POST", "/account/hook", {"value": "pin-7"})
    q = {"account": stack.user, "pin": "pin-7"}
    assert call_service(svc, stack, "GET", "/internal/api/hook", query=q)[0] == 403  # a user token
    internal = svc.app.state.service_token()
    assert call_service(svc, stack, "GET", "/internal/api/hook", query=q, token=internal) == (200, {"valid": True})
    assert call_service(svc, stack, "GET", "/internal/api/hook", query={**q, "pin": "nope"},
                        token=internal) == (200, {"valid": False})


def test_pure_rules():
    assert delivery.matches({"value": "O", "config": {"url": "u"}}, "risk.assessed", {"status": "OH"})
    assert not delivery.matches({"value": "O", "config": {}}, "risk.assessed", {"status": "OH"})
    assert not delivery.matches({"value": "", "config": {"url": "u", "events": ["job.completed"]}},
                                "risk.assessed", {"status": "OH"})
    with pytest.raises(delivery.DeliveryRefused, match="scheme"):
        delivery.check_target("file:///etc/passwd", frozenset({"localhost"}))
    with pytest.raises(delivery.DeliveryRefused, match="template error"):
        delivery.render({"config": {"template": "{{ nope.x }}"}}, {})
    m = NotificationMigration(table_prefix="")
    assert m.to_new({"username": "a@x", "key": "#account#a@x#hook#p"})[0] == "notification-accounts"
    assert m.to_new({"username": "a@x", "key": "#account#a@x#bob@x#"}) is None
    assert m.to_new({"username": "bob@x", "key": "#account#a@x#alert#p"}) is None


hosts = st.sampled_from(["127.0.0.1", "localhost", "evil.example", "10.0.0.1", "[::1]", "hooks.example.com"])


@given(st.sampled_from(["http", "https", "ftp", "file", "gopher"]), hosts, st.one_of(st.none(), st.integers(1, 65535)),
       st.text(max_size=20), st.frozensets(st.sampled_from(["127.0.0.1:8443", "hooks.example.com", "localhost:80"])))
def test_only_allowlisted_http_targets_pass(scheme, host, port, path, allowlist):
    url = f"{scheme}://{host}{':' + str(port) if port else ''}/{path}"
    try:
        delivery.check_target(url, allowlist)
    except (delivery.DeliveryRefused, ValueError):
        return
    from urllib.parse import urlsplit

    p = urlsplit(url)
    effective = p.port or (443 if p.scheme == "https" else 80)
    assert p.scheme in ("http", "https")
    assert p.hostname in allowlist or f"{p.hostname}:{effective}" in allowlist
