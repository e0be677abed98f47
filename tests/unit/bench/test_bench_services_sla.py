"""services-sla: verdicts per route (pure), the goals they become, and when the group runs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.report import BenchReport, Machine, goal_lines, render_sla_table, sla_goals
from bench.run import plan
from bench.services_sla import GROUP, ROUTES, SlaReport, SlaRoute, judge_route
from bench.stats import LoadResult

ACCOUNT = SlaRoute("account", "GET", "/my?key=%23account%23", None, 100.0)


def load(rps: float, p95_ms: float, errors: int = 0, seconds: float = 10.0) -> LoadResult:
    return LoadResult(requests=round(rps * seconds), duration_us=int(seconds * 1e6), errors=errors,
                      p50_us=int(p95_ms * 500), p95_us=int(p95_ms * 1000), p99_us=int(p95_ms * 1500))


def test_routes_are_the_issue_s_three_read_routes_with_their_slos() -> None:
    assert {(r.service, r.method, r.p95_ms) for r in ROUTES} == {
        ("account", "GET", 100.0), ("asset-discovery", "POST", 500.0), ("risk-assessment", "POST", 200.0)}


def test_met_only_when_throughput_latency_and_errors_all_hold() -> None:
    assert judge_route(ACCOUNT, load(1200, 80)).met
    slow = judge_route(ACCOUNT, load(1200, 150))
    assert not slow.met and slow.rps_met and not slow.p95_met and "1.5× the SLO" in slow.verdict
    short = judge_route(ACCOUNT, load(250, 80))
    assert not short.met and not short.rps_met and "4.0× short" in short.verdict
    failing = judge_route(ACCOUNT, load(1200, 80, errors=1))
    assert not failing.met and not failing.errors_met


def test_a_run_without_requests_is_not_a_pass() -> None:
    nothing = LoadResult(requests=0, duration_us=10_000_000, p50_us=0, p95_us=0, p99_us=0)
    assert not judge_route(ACCOUNT, nothing, target_rps=0).met


@given(rps=st.floats(1, 5000), p95=st.floats(0.1, 5000), errors=st.integers(0, 3))
def test_verdict_is_the_conjunction_of_the_three_targets(rps: float, p95: float, errors: int) -> None:
    measured = load(rps, p95, errors)
    res = judge_route(ACCOUNT, measured)
    assert res.met == (measured.rps >= 1000 and measured.p95_us <= 100_000 and errors == 0 and measured.requests > 0)
    assert res.verdict.startswith("met" if res.met else "missed")


def test_goals_and_table_show_each_route() -> None:
    sla = SlaReport(duration_s=10, connections=50, routes=[judge_route(r, load(300, 400)) for r in ROUTES])
    goals = sla_goals(sla)
    assert len(goals) == 9 and all(g.binding for g in goals)
    by = {g.name: g for g in goals}
    assert by["sla_account_p95_ms"].met is False and by["sla_asset-discovery_p95_ms"].met is True
    assert by["sla_account_rps"].met is False and by["sla_account_errors"].met is True
    report = BenchReport(date="d", git_commit="c", git_dirty=False, machine=Machine(cores=2), mode="full",
                         loader="wrk", scenarios=[], goals=goals, services_sla=sla)
    lines = goal_lines(report)
    assert any("300 req/s (target ≥ 1000 req/s) → MISSED" in line for line in lines)
    assert render_sla_table(sla).row_count == 3
    assert sla_goals(None) == [] and sla_goals(SlaReport(duration_s=1, connections=1, error="x")) == []


def test_group_runs_in_the_full_run_and_with_only_never_in_quick_or_smoke() -> None:
    scenarios, skipped, with_sla = plan("full", None)
    assert with_sla and scenarios
    for mode in ("quick", "smoke"):
        scenarios, skipped, with_sla = plan(mode, None)
        assert not with_sla and GROUP in [n for n, _ in skipped]
    scenarios, skipped, with_sla = plan("full", [GROUP])
    assert with_sla and scenarios == [] and skipped == []
    scenarios, _, with_sla = plan("quick", [GROUP, "direct-c50"])
    assert with_sla and [s.name for s in scenarios] == ["direct-c50"]
    _, _, with_sla = plan("full", ["direct-c50"])
    assert not with_sla
