"""Controller over fake evidence: promote / hold / rollback, holds recorded once, human wins,
halt after an automatic rollback, phase order, compare-and-set."""

import time

import pytest

from chariot_migrate.rollout import state as st
from chariot_migrate.rollout.controller import RolloutController, halting_rollback, last_traffic_change
from chariot_migrate.rollout.evidence import StaticDataEvidence
from chariot_migrate.rollout.gates import Evidence
from chariot_migrate.rollout.operations import Operations
from chariot_migrate.rollout.plan import Plan
from chariot_migrate.rollout.state import HistoryEntry
from chariot_migrate.rollout.store import open_state_store
from chariot_migrate.routes.models import RoutesFile

GOOD = Evidence(new_requests=100, new_errors=0, new_p95_ms=5, legacy_p95_ms=5, pairs=100, match_rate=1.0)
FEW = Evidence(new_requests=3, pairs=3, match_rate=1.0)
BAD = Evidence(new_requests=100, new_errors=40, new_p95_ms=5, legacy_p95_ms=5, pairs=100, match_rate=1.0)


class FakeEvidence:
    def __init__(self) -> None:
        self.now = GOOD
        self.calls: list[tuple[str, float, bool]] = []

    def gather(self, service, since_ts, *, slo_p95_ms, shadow_step, step=""):
        self.calls.append((service, since_ts, shadow_step))
        return self.now


def make(tmp_path, plan=None, services=None):
    cfg = RoutesFile.model_validate({
        "legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
        "services": services or {"a": {"phase": 1, "dual_write": "on"}, "b": {"phase": 2, "dual_write": "on"}},
        "plan": plan or {"steps": ["shadow", 1, 5, 25, 50, 100], "gates": {"min_samples": 10, "min_pairs": 10}},
    })
    ops = Operations(open_state_store(f"sqlite:///{tmp_path}/state.db"), cfg, data_evidence=StaticDataEvidence())
    ev = FakeEvidence()
    return RolloutController(ops, Plan.from_routes(cfg), ev), ops, ev


def pct(ops, svc="a"):
    return ops.store.get(svc).percent


def test_healthy_side_walks_every_step(tmp_path):
    ctl, ops, _ = make(tmp_path)
    seen = []
    for _ in range(10):
        t = ctl.tick("a")
        seen.append(t.applied)
        if t.decision == "done":
            break
    assert seen == ["shadow", "1", "5", "25", "50", "100", None]
    s = ops.store.get("a")
    assert s.percent == 100 and s.shadow_percent == 100 and s.stage == "new"
    assert [h.action for h in ops.history("a")] == ["promote → shadow", "promote → 1", "promote → 5",
                                                    "promote → 25", "promote → 50", "promote → 100"]
    assert all(h.actor == "rollout-controller" for h in ops.history("a"))
    assert ops.history("a")[-1].evidence["decision"] == "promote"


def test_too_few_samples_holds_and_records_the_hold_once(tmp_path):
    ctl, ops, ev = make(tmp_path)
    ctl.tick("a")  # → shadow
    ev.now = FEW
    for _ in range(5):
        t = ctl.tick("a")
        assert t.decision == "hold" and "samples: 3" in t.reason
    ev.now = Evidence(new_requests=4, pairs=4, match_rate=1.0)  # measured value changes, same failing gate
    ctl.tick("a")
    holds = [h for h in ops.history("a") if h.action.startswith("hold")]
    assert len(holds) == 1 and "samples" in holds[0].reason and holds[0].evidence["checks"]
    assert pct(ops) == 0
    ev.now = Evidence(**{**GOOD.__dict__, "new_signatures": ("sig",)})  # a different reason: recorded
    ctl.tick("a")
    assert len([h for h in ops.history("a") if h.action.startswith("hold")]) == 2


def test_breach_rolls_back_to_the_last_safe_step_with_evidence(tmp_path):
    ctl, ops, ev = make(tmp_path)
    for _ in range(4):
        ctl.tick("a")  # shadow, 1, 5, 25
    assert pct(ops) == 25
    ev.now = BAD
    t = ctl.tick("a")
    assert t.decision == "rollback" and t.applied == "5%" and pct(ops) == 5
    h = ops.history("a")[-1]
    assert h.action == "rollback → 5%" and "new-side error rate" in h.reason and "40.00%" in h.reason
    assert h.evidence["decision"] == "rollback"
    assert ops.store.get("a").shadow_percent == 100  # shadow stays on for diagnosis
    # still failing: further down, then 0 %
    ctl.tick("a")
    ctl.tick("a")
    assert pct(ops) == 0


def test_no_flapping_after_an_automatic_rollback_until_a_human_acts(tmp_path):
    ctl, ops, ev = make(tmp_path)
    for _ in range(4):
        ctl.tick("a")
    ev.now = BAD
    ctl.tick("a")
    ev.now = GOOD  # fixed, but nobody said so
    t = ctl.tick("a")
    assert t.decision == "hold" and "halted after the automatic rollback" in t.reason and pct(ops) == 5
    assert ctl.tick("a").decision == "hold"
    ops.approve("a", "25", actor="alice")  # a human resumes
    t = ctl.tick("a")
    assert t.decision == "promote" and pct(ops) == 25


def test_advance_mode_resumes_and_never_records_holds(tmp_path):
    ctl, ops, ev = make(tmp_path)
    for _ in range(3):
        ctl.tick("a")
    ev.now = BAD
    ctl.tick("a")
    ev.now = FEW
    n = len(ops.history("a"))
    t = ctl.tick("a", record=False, resume=True)
    assert t.decision == "hold" and len(ops.history("a")) == n
    ev.now = BAD
    assert ctl.tick("a", record=False, resume=True).decision == "rollback" and len(ops.history("a")) == n
    ev.now = GOOD
    t = ctl.tick("a", record=False, resume=True)
    assert t.applied is not None


def test_human_change_wins(tmp_path):
    ctl, ops, ev = make(tmp_path)
    for _ in range(4):
        ctl.tick("a")
    ops.rollback("a", actor="bob", reason="customer complaint")
    t = ctl.tick("a")  # starts from the human's 0 %, not from 25 %
    assert t.step == "shadow" and t.applied == "1" and pct(ops) == 1
    ops.shift("a", 50, actor="bob")
    t = ctl.tick("a")
    assert t.step == "50" and t.applied == "100"


def test_a_change_made_between_evaluation_and_apply_is_not_overwritten(tmp_path):
    ctl, ops, ev = make(tmp_path)
    for _ in range(3):
        ctl.tick("a")
    real_eval = ctl.evaluate

    def eval_then_human_acts(service, **kw):
        t = real_eval(service, **kw)
        ops.rollback(service, actor="bob", reason="now!")
        return t

    ctl.evaluate = eval_then_human_acts
    t = ctl.tick("a")
    assert t.decision == "hold" and "a human acted" in t.reason
    assert pct(ops) == 0 and ops.history("a")[-1].actor == "bob"


def test_window_starts_at_the_last_traffic_change_not_at_holds_or_approvals(tmp_path):
    ctl, ops, ev = make(tmp_path)
    ctl.tick("a")
    ctl.tick("a")  # → 1 %
    changed_at = ops.history("a")[-1].at
    ev.now = FEW
    ctl.tick("a")  # hold recorded (stamps the state)
    ops.approve("a", "5", actor="alice")  # approvals stamp too
    ctl.tick("a")
    since = ev.calls[-1][1]
    assert since == pytest.approx(max(changed_at, time.time() - ctl.plan.gates.window_s), abs=1)
    assert since < ops.store.get("a").updated_at


def test_phase_order_blocks_leaving_shadow_unless_forced(tmp_path):
    ctl, ops, ev = make(tmp_path)
    assert ctl.tick("b").applied == "shadow"  # shadowing is allowed
    t = ctl.tick("b")
    assert t.decision == "hold" and "earlier phase unfinished: a (phase 1) is at 0%" in t.reason
    assert pct(ops, "b") == 0
    t = ctl.tick("b", force_phase=True, force_reason="a is blocked on a vendor")
    assert t.applied == "1"
    h = ops.history("b")[-1]
    assert "forced" in h.action and "a is blocked on a vendor" in h.reason and h.evidence["forced_past"]


def test_approval_step_waits_for_approve(tmp_path):
    ctl, ops, ev = make(tmp_path, plan={"steps": ["shadow", 50, 100], "gates": {"min_samples": 10},
                                        "step_gates": {"100": {"approval": True}}})
    ctl.tick("a")
    ctl.tick("a")
    assert pct(ops) == 50
    for _ in range(3):
        t = ctl.tick("a")
        assert t.decision == "hold" and "approval" in t.reason
    assert pct(ops) == 50
    ops.approve("a", "100", actor="alice")
    assert ctl.tick("a").applied == "100"
    assert ops.store.get("a").approved_step == ""  # used up


def test_rollback_at_shadow_is_a_hold(tmp_path):
    ctl, ops, ev = make(tmp_path)
    ctl.tick("a")
    ev.now = Evidence(**{**BAD.__dict__, "shadow_step": True})
    t = ctl.tick("a")
    assert t.decision == "hold" and pct(ops) == 0


def test_run_stops_when_done_and_honours_max_ticks(tmp_path):
    ctl, ops, ev = make(tmp_path)
    ticks = []
    last = ctl.run("a", interval_s=1, on_tick=ticks.append, sleep=lambda s: None)
    assert last.decision == "done" and len(ticks) == 7
    ctl2, ops2, ev2 = make(tmp_path / "x")
    ev2.now = FEW
    assert ctl2.run("a", interval_s=1, max_ticks=3, sleep=lambda s: None).decision == "hold"


def _h(actor, action, before, after, at):
    return HistoryEntry(service="a", at=at, actor=actor, action=action, before=before, after=after)


def test_history_helpers():
    p0, p5 = {"percent_bp": 0, "shadow_bp": 10000, "stage": "shadow"}, {"percent_bp": 500, "shadow_bp": 10000,
                                                                       "stage": "canary"}
    hist = [_h("x", "shift", p0, p5, 10.0), _h("rollout-controller", "hold at 5", p5, p5, 20.0),
            _h("alice", "approve 25", p5, p5, 30.0)]
    assert last_traffic_change(hist, complete=True) == 10.0
    assert last_traffic_change(hist[1:], complete=False) == 20.0  # older than what was read: a safe stand-in
    assert last_traffic_change(hist[1:], complete=True) == 0.0
    rb = _h("rollout-controller", "rollback → 1%", p5, p0, 40.0)
    assert halting_rollback([*hist, rb]) is rb
    assert halting_rollback([*hist, rb, _h("rollout-controller", "hold at 1", p0, p0, 50.0)]) is rb
    assert halting_rollback([*hist, rb, _h("bob", "shift", p0, p5, 50.0)]) is None


def test_shadow_step_can_require_approval(tmp_path):
    ctl, ops, ev = make(tmp_path, plan={"steps": ["shadow", 100], "step_gates": {"shadow": {"approval": True}}})
    assert ctl.tick("a").decision == "hold"
    ops.approve("a", "shadow", actor="alice")
    assert ctl.tick("a").applied == "shadow"
    _ = st
