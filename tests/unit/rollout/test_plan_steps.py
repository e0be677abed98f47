"""Plan: step math (current / next / safe step), validation, phase order (pure)."""

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from chariot_migrate.rollout import state as st
from chariot_migrate.rollout.plan import (
    DEFAULT_STEPS,
    Plan,
    current_index,
    next_step,
    phase_blockers,
    safe_step,
    step_label,
)
from chariot_migrate.rollout.state import ServiceState
from chariot_migrate.routes.loader import RoutesError, parse_routes
from chariot_migrate.routes.models import RoutesFile

STEPS = list(DEFAULT_STEPS)


def S(percent=0.0, shadow=0.0, stage=None):
    s = st.set_shadow(st.shift(ServiceState(service="svc"), percent), shadow)
    return s.model_copy(update={"stage": stage}) if stage else s


@pytest.mark.parametrize("state,label,nxt,safe", [
    (S(), "legacy", "shadow", "0"),
    (S(shadow=100), "shadow", "1", "0"),
    (S(shadow=5), "shadow", "1", "0"),  # any shadow counts as the shadow step
    (S(1, 100), "1", "5", "0"),
    (S(5, 100), "5", "25", "1"),
    (S(25, 100), "25", "50", "5"),
    (S(30, 100), "25", "50", "5"),  # a human's 30 % stands on 25
    (S(50, 100), "50", "100", "25"),
    (S(100, 100), "100", "retired", "50"),
    (S(100, 100, "retired"), "retired", None, "100"),
    (S(0.5, 0), "shadow", "1", "0"),  # on the new side at all: past legacy
])
def test_current_next_safe(state, label, nxt, safe):
    assert step_label(state, STEPS) == label
    assert next_step(state, STEPS) == nxt
    assert safe_step(state, STEPS) == safe


def test_custom_steps_without_shadow():
    steps = ["10", "100"]
    assert next_step(S(), steps) == "10" and current_index(S(), steps) == -1
    assert next_step(S(10), steps) == "100" and safe_step(S(100), steps) == "10"
    assert next_step(S(100), steps) is None


@given(hs.integers(0, 6))
def test_apply_next_step_advances_exactly_one(i):
    # walk to step i through the plan, then one more: the index moves by exactly one
    s = ServiceState(service="svc")
    for _ in range(i):
        s = st.apply_step(s, next_step(s, STEPS))
    assert current_index(s, STEPS) == i - 1
    nxt = next_step(s, STEPS)
    s2 = st.apply_step(s, nxt)
    assert current_index(s2, STEPS) == i and step_label(s2, STEPS) == nxt


@given(hs.integers(0, 10_000), hs.integers(0, 10_000))
def test_safe_step_is_below_the_current_one(pbp, sbp):
    s = ServiceState(service="svc", percent_bp=pbp, shadow_bp=sbp)
    s = s.model_copy(update={"stage": st.derive_stage(s)})
    safe = float(safe_step(s, STEPS))
    assert safe < max(s.percent, 0.01) or s.percent == 0
    assert safe == 0 or current_index(st.shift(s, safe), STEPS) == current_index(s, STEPS) - 1


@given(hs.lists(hs.integers(1, 100), min_size=1, max_size=6, unique=True))
def test_any_rising_percentages_validate(ps):
    ps = sorted(ps)
    plan = Plan.model_validate({"steps": ["shadow", *ps]})
    assert plan.steps == ["shadow", *[str(p) for p in ps]]


@pytest.mark.parametrize("bad,msg", [
    ({"steps": ["1", "shadow"]}, "'shadow' can only be the first step"),
    ({"steps": [5, 1]}, "percentage steps must rise"),
    ({"steps": [0, 1]}, "percentage steps must rise"),
    ({"steps": ["half"]}, "must be 'shadow', a percentage or 'retired'"),
    ({"steps": ["retired", 100]}, "'retired' can only be the last step"),
    ({"step_gates": {"50": {"aproval": True}}}, "step_gates.50: aproval"),
    ({"step_gates": {"7": {"approval": True}}}, "'7' is not a step of the plan"),
    ({"gates": {"max_error_rate": 2}}, "less than or equal to 1"),
    ({"services": {"svc": {"step_gates": {"25": {"min_samples": -1}}}}}, "services.svc.step_gates.25: min_samples"),
    ({"interval_s": 0}, "greater than 0"),
])
def test_plan_validation_errors(bad, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        Plan.model_validate(bad)


def test_bad_plan_in_routes_yaml_is_refused_with_its_line():
    text = """version: 1
legacy: {invoker: http, url: "http://127.0.0.1:9"}
services: {svc: {phase: 1}}
plan:
  steps: [shadow, 1, 50, 100]
  step_gates:
    "50": {aproval: true}
"""
    with pytest.raises(RoutesError, match=r"routes.yaml:\d+: plan.*aproval"):
        parse_routes(text)


def test_gates_merge_in_order_global_step_service_service_step():
    plan = Plan.model_validate({
        "gates": {"min_samples": 100, "max_error_rate": 0.01},
        "step_gates": {"50": {"min_samples": 200, "approval": True}},
        "services": {"svc": {"gates": {"max_error_rate": 0.05}, "step_gates": {"50": {"min_samples": 300}}}},
    })
    g = plan.gates_for("svc", "50")
    assert (g.min_samples, g.max_error_rate, g.approval) == (300, 0.05, True)
    assert plan.gates_for("svc", "25").min_samples == 100 and plan.gates_for("other", "50").min_samples == 200


def test_from_routes_rejects_unknown_service():
    cfg = RoutesFile.model_validate({"legacy": {"invoker": "http", "url": "http://x"}, "services": {"a": {"phase": 1}},
                                     "plan": {"services": {"b": {}}}})
    with pytest.raises(ValueError, match="unknown service"):
        Plan.from_routes(cfg)


def test_phase_blockers():
    cfg = RoutesFile.model_validate({"legacy": {"invoker": "http", "url": "http://x"},
                                     "services": {"a": {"phase": 1}, "b": {"phase": 2}, "c": {"phase": 3}}})
    assert phase_blockers(cfg, {}, "a") == []
    assert phase_blockers(cfg, {}, "c") == ["a (phase 1) is at 0%", "b (phase 2) is at 0%"]
    states = {"a": S(100), "b": S(50)}
    assert phase_blockers(cfg, states, "c") == ["b (phase 2) is at 50%"]
    states["b"] = S(100, stage="retired")
    assert phase_blockers(cfg, states, "c") == []
