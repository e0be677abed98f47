"""Gates: every check, rollback vs hold, approval (pure)."""

from hypothesis import given
from hypothesis import strategies as hs

from chariot_migrate.rollout.gates import Evidence, GateConfig, evaluate

G = GateConfig(window_s=60, min_samples=100, max_error_rate=0.01, max_latency_ratio=2.0, latency_slack_ms=10,
               min_match_rate=0.99, min_pairs=50, max_backlog=10, max_dead_letters=0)
HEALTHY = Evidence(new_requests=500, new_errors=0, new_p95_ms=40, legacy_p95_ms=50, pairs=400, match_rate=1.0,
                   backlog=0, dead_letters=0, slo_p95_ms=100)


def failing(r):
    return {c.name for c in r.checks if not c.ok}


def test_healthy_evidence_promotes():
    r = evaluate(G, HEALTHY)
    assert r.decision == "promote" and not failing(r)


def test_too_few_samples_holds_and_names_the_gate():
    r = evaluate(G, Evidence(**{**HEALTHY.__dict__, "new_requests": 20}))
    assert r.decision == "hold" and failing(r) == {"samples"}
    assert "samples: 20 (threshold >= 100)" in r.reason


def test_error_rate_breach_with_enough_samples_rolls_back():
    r = evaluate(G, Evidence(**{**HEALTHY.__dict__, "new_errors": 50}))
    assert r.decision == "rollback" and "new-side error rate" in r.reason and "10.00%" in r.reason


def test_a_few_errors_among_too_few_samples_hold():
    r = evaluate(G, Evidence(**{**HEALTHY.__dict__, "new_requests": 20, "new_errors": 1}))
    assert r.decision == "hold"  # 1 error could still be within 1 % of 100 samples


def test_errors_beyond_the_whole_budget_roll_back_before_min_samples():
    # 2 errors > 1 % of 100: whatever the next 80 answers are, the step has failed.
    r = evaluate(G, Evidence(**{**HEALTHY.__dict__, "new_requests": 20, "new_errors": 2}))
    assert r.decision == "rollback"


def test_p95_over_slo_rolls_back():
    r = evaluate(G, Evidence(**{**HEALTHY.__dict__, "new_p95_ms": 150, "legacy_p95_ms": 140}))
    assert r.decision == "rollback" and failing(r) == {"new p95 within SLO"}


def test_latency_ratio_rolls_back_only_beyond_the_slack():
    worse = Evidence(**{**HEALTHY.__dict__, "new_p95_ms": 90, "legacy_p95_ms": 30})
    assert evaluate(G, worse).decision == "rollback"
    assert failing(evaluate(G, worse)) == {"p95 vs legacy"}
    tiny = Evidence(**{**HEALTHY.__dict__, "new_p95_ms": 5, "legacy_p95_ms": 1})  # 5x, but 4 ms: resolution
    assert evaluate(G, tiny).decision == "promote"
    assert evaluate(G.model_copy(update={"max_latency_ratio": None}), worse).decision == "promote"


def test_match_rate_below_minimum_holds():
    r = evaluate(G, Evidence(**{**HEALTHY.__dict__, "match_rate": 0.9}))
    assert r.decision == "hold" and failing(r) == {"noise-adjusted match rate"}


def test_match_rate_not_judged_with_too_few_pairs_except_at_shadow_step():
    few = Evidence(**{**HEALTHY.__dict__, "pairs": 10, "match_rate": 0.5})
    assert evaluate(G, few).decision == "promote"
    shadow = Evidence(**{**few.__dict__, "shadow_step": True, "new_requests": 10})
    r = evaluate(G.model_copy(update={"min_samples": 5}), shadow)
    assert r.decision == "hold" and "10 pairs" in r.reason


def test_new_signature_holds():
    r = evaluate(G, Evidence(**{**HEALTHY.__dict__, "new_signatures": ("GET /x|$.extra|extra|str",)}))
    assert r.decision == "hold" and failing(r) == {"no new mismatch signature"} and "$.extra" in r.reason


def test_backlog_dead_letters_and_verify():
    assert failing(evaluate(G, Evidence(**{**HEALTHY.__dict__, "backlog": 11}))) == {"dual-write backlog"}
    assert failing(evaluate(G, Evidence(**{**HEALTHY.__dict__, "dead_letters": 1}))) == {"dead letters"}
    gv = G.model_copy(update={"require_verify_clean": True})
    assert failing(evaluate(gv, HEALTHY)) == {"data verify clean"}  # never ran: not clean
    assert evaluate(gv, Evidence(**{**HEALTHY.__dict__, "verify_clean": False})).decision == "hold"
    assert evaluate(gv, Evidence(**{**HEALTHY.__dict__, "verify_clean": True})).decision == "promote"
    # not measured (no outbox configured): not evaluated
    assert evaluate(G, Evidence(**{**HEALTHY.__dict__, "backlog": None, "dead_letters": None})).decision == "promote"


def test_approval_waits_until_approved_and_only_after_the_gates_pass():
    ga = G.model_copy(update={"approval": True})
    r = evaluate(ga, HEALTHY)
    assert r.decision == "hold" and "approval" in r.reason
    assert evaluate(ga, HEALTHY, approved=True).decision == "promote"
    # approval never overrides a failing gate
    assert evaluate(ga, Evidence(**{**HEALTHY.__dict__, "new_requests": 5}), approved=True).decision == "hold"


def test_breach_outranks_hold():
    r = evaluate(G, Evidence(**{**HEALTHY.__dict__, "new_errors": 100, "match_rate": 0.5}))
    assert r.decision == "rollback"
    assert failing(r) == {"new-side error rate", "noise-adjusted match rate"}
    assert "match rate" not in r.reason  # the reason names what caused the rollback


def test_evidence_dict_carries_every_check():
    d = evaluate(G, HEALTHY).evidence()
    assert d["decision"] == "promote" and {c["name"] for c in d["checks"]} >= {"samples", "new-side error rate"}


@given(n=hs.integers(0, 5000), errors=hs.integers(0, 5000), min_samples=hs.integers(1, 1000),
       max_rate=hs.floats(0, 1))
def test_never_promotes_with_too_few_samples_or_too_many_errors(n, errors, min_samples, max_rate):
    errors = min(errors, n)
    g = GateConfig(min_samples=min_samples, max_error_rate=max_rate, min_match_rate=None)
    r = evaluate(g, Evidence(new_requests=n, new_errors=errors))
    if r.decision == "promote":
        assert n >= min_samples and errors / n <= max_rate
    if r.decision == "rollback":  # a rollback is always justified by the errors seen so far
        assert errors / max(n, min_samples) > max_rate or (n >= min_samples and errors / n > max_rate)
