"""plan.webhooks against a real HTTP receiver on 127.0.0.1: signed JSON events from the controller
and from human shifts/rollbacks, retries, pre-step hooks that hold a step, config validation."""

from __future__ import annotations

import logging

import pytest
from conftest import Receiver

from chariot_migrate.rollout import state as st
from chariot_migrate.rollout.controller import RolloutController
from chariot_migrate.rollout.evidence import StaticDataEvidence
from chariot_migrate.rollout.gates import Evidence
from chariot_migrate.rollout.operations import Operations
from chariot_migrate.rollout.plan import Plan
from chariot_migrate.rollout.store import open_state_store
from chariot_migrate.rollout.webhooks import SIGNATURE_HEADER, Notifier, Webhook, build_event, verify
from chariot_migrate.routes.loader import RoutesError, parse_routes
from chariot_migrate.routes.models import RoutesFile

SECRET = "s3cr3t-hmac-key"


@pytest.fixture
def rx():
    r = Receiver()
    yield r
    r.close()


GOOD = Evidence(new_requests=100, new_errors=0, new_p95_ms=5, legacy_p95_ms=5, pairs=100, match_rate=1.0)
BAD = Evidence(new_requests=100, new_errors=40, new_p95_ms=5, legacy_p95_ms=5, pairs=100, match_rate=1.0)


class FakeEvidence:
    def __init__(self) -> None:
        self.now = GOOD

    def gather(self, service, since_ts, *, slo_p95_ms, shadow_step, step=""):
        return self.now


def make(tmp_path, rx, hooks, monkeypatch, step_gates=None):
    monkeypatch.setenv("CHAT_SECRET", SECRET)
    cfg = RoutesFile.model_validate({
        "legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
        "services": {"a": {"phase": 1, "dual_write": "on"}},
        "plan": {"steps": ["shadow", 1, 5, 100], "gates": {"min_samples": 10, "min_pairs": 10},
                 "step_gates": step_gates or {}, "webhooks": hooks},
    })
    ops = Operations(open_state_store(f"sqlite:///{tmp_path}/state.db"), cfg, data_evidence=StaticDataEvidence())
    ops.notifier.backoff_s = 0.01
    ev = FakeEvidence()
    return RolloutController(ops, Plan.from_routes(cfg), ev), ops, ev


def chat(rx, **kw):
    return {"name": "chat", "url": rx.url + "/chat", "secret_env": "CHAT_SECRET", **kw}


def test_controller_events_are_signed_json_with_evidence_and_chat_text(tmp_path, rx, monkeypatch):
    ctl, ops, ev = make(tmp_path, rx, [chat(rx)], monkeypatch, step_gates={"100": {"approval": True}})
    ctl.tick("a")  # → shadow
    ctl.tick("a")  # → 1
    (path, headers, doc, body) = rx.got[-1]
    assert doc["event"] == "promoted" and doc["service"] == "a"
    assert (doc["from_percent"], doc["to_percent"], doc["from_step"], doc["to_step"]) == (0.0, 1.0, "shadow", "1")
    assert doc["actor"] == "rollout-controller" and doc["reason"] == "all gates passed"
    assert {c["name"] for c in doc["evidence"]["checks"]} >= {"samples", "new-side error rate"}
    assert doc["text"] == "[chariot-migrate] a promoted 0% → 1% by rollout-controller: all gates passed"
    assert verify(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify("other", body, headers[SIGNATURE_HEADER])

    ctl.tick("a")  # → 5
    ctl.tick("a")  # 100 needs approval: approval_needed, once
    ctl.tick("a")
    kinds = [d["event"] for d in rx.events()]
    assert kinds == ["promoted", "promoted", "promoted", "approval_needed"]
    assert "needs approval for 5% → 100%" in rx.events()[-1]["text"]

    ev.now = BAD  # breach at 5 %: rolled back to 1 %
    ctl.tick("a")
    last = rx.events()[-1]
    assert last["event"] == "rolled_back" and (last["from_percent"], last["to_percent"]) == (5.0, 1.0)
    assert "new-side error rate" in last["reason"]

    ev.now = Evidence(new_requests=3, pairs=3, match_rate=1.0)  # too few samples: held, once
    ctl.tick("a")
    ctl.tick("a")
    assert [d["event"] for d in rx.events()][-1] == "held"
    assert [d["event"] for d in rx.events()].count("held") == 1


def test_human_shift_and_rollback_are_events_too_with_who_and_why(tmp_path, rx, monkeypatch):
    ctl, ops, _ = make(tmp_path, rx, [chat(rx, events=["promoted", "rolled_back"])], monkeypatch)
    ops.shift("a", 5, actor="alice", reason="[ops-123] canary")
    ops.rollback("a", actor="bob", reason="pager")
    a, b = rx.events()
    assert (a["event"], a["from_percent"], a["to_percent"], a["actor"], a["reason"]) == (
        "promoted", 0.0, 5.0, "alice", "[ops-123] canary")
    assert (b["event"], b["from_percent"], b["to_percent"], b["actor"], b["reason"]) == (
        "rolled_back", 5.0, 0.0, "bob", "pager")


def test_failed_deliveries_are_retried_and_the_secret_is_never_logged(tmp_path, rx, monkeypatch, caplog):
    rx.script["/chat"] = [500, 503, 200]
    monkeypatch.setenv("CHAT_SECRET", SECRET)
    n = Notifier([Webhook(**chat(rx))], sleep=lambda s: None)
    [d] = n.emit(build_event("held", "a", from_percent=1, to_percent=5, actor="me", reason="x"))
    assert d.ok and d.attempts == 3 and len(rx.events()) == 3
    rx.script["/chat"] = [400]  # a client error is not retried
    with caplog.at_level(logging.WARNING):
        [d] = n.emit(build_event("held", "a", from_percent=1, to_percent=5, actor="me", reason="x"))
    assert not d.ok and d.attempts == 1 and d.status == 400
    assert "not delivered" in caplog.text and SECRET not in caplog.text
    monkeypatch.delenv("CHAT_SECRET")
    with caplog.at_level(logging.WARNING):
        [d] = n.emit(build_event("held", "a", from_percent=1, to_percent=5, actor="me", reason="x"))
    assert not d.ok and "CHAT_SECRET is not set" in d.error and len(rx.events()) == 4


def test_pre_step_hooks_gate_the_step(tmp_path, rx, monkeypatch):
    hooks = [chat(rx), {"name": "load-test", "type": "pre-step", "url": rx.url + "/run", "timeout_s": 0.5}]
    ctl, ops, _ = make(tmp_path, rx, hooks, monkeypatch)
    rx.script["/run"] = [500]
    t = ctl.tick("a")
    assert t.decision == "hold" and "pre-step hook load-test: HTTP 500 (threshold 2xx)" in t.reason
    assert ops.store.get("a") is None or ops.store.get("a").shadow_percent == 0
    [asked] = rx.events("/run")
    assert asked["event"] == "pre-step" and asked["to_step"] == "shadow" and asked["service"] == "a"
    assert rx.events()[-1]["event"] == "held"

    rx.script["/run"] = [200]
    rx.delay["/run"] = 1.0  # too slow: a timeout holds too
    t = ctl.tick("a")
    assert t.decision == "hold" and "no answer within 0.5 s" in t.reason

    rx.delay["/run"] = 0
    t = ctl.tick("a")
    assert t.applied == "shadow"
    assert any(c.name == "pre-step hook load-test" and c.ok for c in t.result.checks)
    assert rx.events()[-1]["event"] == "promoted"


def test_advance_runs_pre_step_hooks_too(tmp_path, rx, monkeypatch):
    hooks = [{"name": "load-test", "type": "pre-step", "url": rx.url + "/run"}]
    ctl, ops, _ = make(tmp_path, rx, hooks, monkeypatch)
    ops.apply("a", lambda s: st.shift(st.set_shadow(s, 100), 1), actor="me", action="shift", reason="t")
    rx.script["/run"] = [502]
    t = ctl.tick("a", record=False, resume=True)
    assert t.decision == "hold" and "HTTP 502" in t.reason and ops.store.get("a").percent == 1


BASE = """\
version: 1
legacy: {invoker: http, url: "http://127.0.0.1:9"}
services:
  account: {phase: 1}
routes:
  - {path: /token, methods: [POST], service: account}
plan:
  webhooks:
"""


@pytest.mark.parametrize(("hooks", "message"), [
    ("    - {name: chat, url: 'hooks.example.com/x'}\n", "must be an http:// or https:// URL"),
    ("    - {name: chat, url: 'http://x', events: [promoted, exploded]}\n", "events"),
    ("    - {name: t, type: pre-step, url: 'http://x', events: [held]}\n", "takes no events"),
    ("    - {name: chat, url: 'http://x', secret_env: 'abc def!'}\n", "must name an environment variable"),
    ("    - {name: chat, url: 'http://x'}\n    - {name: chat, url: 'http://y'}\n", "used twice"),
])
def test_a_bad_webhooks_section_is_one_line_naming_the_line(hooks, message):
    with pytest.raises(RoutesError) as e:
        parse_routes(BASE + hooks, "routes.yaml")
    assert "\n" not in str(e.value) and str(e.value).startswith("routes.yaml:") and message in str(e.value)
    assert "plan.webhooks" in str(e.value)


def test_events_report_the_split_as_it_was_not_the_step_label(tmp_path, rx, monkeypatch):
    ctl, ops, _ = make(tmp_path, rx, [chat(rx)], monkeypatch)
    ops.apply("a", lambda s: st.shift(st.set_shadow(s, 100), 3), actor="me", action="shift", reason="t")  # step "1"
    t = ctl.tick("a")
    assert t.applied == "5"
    last = rx.events()[-1]
    assert (last["from_step"], last["from_percent"], last["to_percent"]) == ("1", 3.0, 5.0)
    assert "a promoted 3% → 5%" in last["text"]


def test_the_shadow_step_is_named_in_the_text():
    doc = build_event("promoted", "a", from_percent=0, to_percent=0, actor="me", reason="ok", to_step="shadow")
    assert doc["text"] == "[chariot-migrate] a promoted 0% → 0% (step shadow) by me: ok"
