"""Pure parts of the benchmark harness: percentiles, round selection, ratios, verdicts, profiles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from bench.profile import parse_collapsed, summarise_collapsed
from bench.report import (
    BenchReport,
    Machine,
    compute_ratios,
    goal_lines,
    judge,
    render_table,
    scenario_result,
)
from bench.scenarios import GOALS, Scenario, all_scenarios, select_scenarios
from bench.stats import LoadResult, median_round, percentile, summarise

latencies = st.lists(st.floats(min_value=0, max_value=1e7, allow_nan=False), min_size=1, max_size=300)


@given(latencies)
def test_percentiles_are_ordered_members_within_range(values):
    ordered = sorted(values)
    p50, p95, p99, p100 = (percentile(ordered, q) for q in (50, 95, 99, 100))
    assert ordered[0] <= p50 <= p95 <= p99 <= p100 == ordered[-1]
    assert {p50, p95, p99} <= set(ordered)


@given(latencies)
def test_nearest_rank_leaves_at_most_half_the_values_below_the_median(values):
    ordered = sorted(values)
    p50 = percentile(ordered, 50)
    assert sum(v < p50 for v in ordered) < len(ordered) / 2
    assert sum(v <= p50 for v in ordered) >= len(ordered) / 2


def test_percentile_edges():
    assert percentile([], 50) == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarise_counts_requests_and_rounds_percentiles():
    r = summarise([3000.0, 1000.0, 2000.0, 4000.0], duration_us=2_000_000, errors=1, non2xx=1)
    assert (r.requests, r.p50_us, r.p99_us, r.errors) == (4, 2000, 4000, 1)
    assert r.rps == pytest.approx(2.0)


def _lr(requests: int, p50: int = 1000) -> LoadResult:
    return LoadResult(requests=requests, duration_us=1_000_000, p50_us=p50, p95_us=p50 * 2, p99_us=p50 * 3)


def test_median_round_keeps_one_whole_round():
    rounds = [_lr(100, p50=9), _lr(300, p50=7), _lr(200, p50=8)]
    chosen = median_round(rounds)
    assert chosen.requests == 200 and chosen.p50_us == 8  # latencies travel with their rps
    assert median_round([_lr(1), _lr(2)]).requests == 1
    with pytest.raises(ValueError):
        median_round([])


def _result(name: str, rps: int, p50: int = 1000, cpu: float | None = None):
    s = next(s for s in all_scenarios() if s.name == name)
    return scenario_result(s, [_lr(rps, p50)], [cpu] if cpu else None)


def test_ratios_against_the_baselines_of_the_same_run():
    results = [_result("direct-c50", 10000), _result("bare-w1-c50", 4000, cpu=150),
               _result("proxy-w1-c50", 3600, cpu=200), _result("direct-c10", 9000, p50=500),
               _result("proxy-w1-c10", 3000, p50=1700)]
    ratios = compute_ratios(results)
    assert ratios["proxy_vs_bare_w1"] == pytest.approx(0.9)
    assert ratios["proxy_vs_direct_w1"] == pytest.approx(0.36)
    assert ratios["proxy_vs_bare_cpu_w1"] == pytest.approx(0.75)
    assert ratios["proxy_added_p50_ms_c10"] == pytest.approx(1.2)
    assert "proxy_vs_bare_w2" not in ratios  # scenario not run: no ratio, never a made-up one
    verdicts = {g.name: g for g in judge(ratios)}
    assert verdicts["proxy_vs_bare_w1"].met is True
    assert verdicts["proxy_added_p50_ms_c10"].met is True
    assert verdicts["proxy_vs_bare_w2"].met is None


def test_every_goal_is_computable_from_the_scenario_list():
    # Goal names, ratio names and scenario names must agree, or a goal would silently never be judged.
    results = [scenario_result(s, [_lr(1000 + i)], [100.0]) for i, s in enumerate(all_scenarios())]
    ratios = compute_ratios(results)
    assert all(g.name in ratios for g in GOALS)
    names = [s.name for s in all_scenarios()]
    assert len(names) == len(set(names))


def test_verdict_lines_distinguish_missed_from_reported_only():
    ratios = {"proxy_vs_bare_w1": 0.5, "proxy_vs_bare_w2": 0.9, "proxy_added_p50_ms_c10": 3.0,
              "proxy_scaling_w2_vs_w1": 1.2}
    report = BenchReport(date="2026-01-01T00:00:00+00:00", git_commit="abc", git_dirty=False,
                         machine=Machine(cores=2), mode="smoke", loader="wrk",
                         scenarios=[_result("direct-c50", 10000), _result("bare-w1-c50", 4000),
                                    _result("proxy-w1-c50", 2000)],
                         ratios=ratios, goals=judge(ratios))
    lines = goal_lines(report)
    assert any("1 worker each: 0.50" in line and "MISSED" in line for line in lines)
    assert any("2 workers each: 0.90" in line and "→ met" in line for line in lines)
    assert any("3.00 ms" in line and "MISSED" in line for line in lines)
    assert any("2 workers / 1 worker: 1.20" in line and "reported only" in line for line in lines)
    assert any("not measured" in line for line in lines)  # CPU ratio: no CPU numbers given
    console = Console(record=True, width=160)
    console.print(render_table(report))
    text = console.export_text()
    assert "proxy-w1-c50" in text and "0.50" in text  # proxy vs bare, same workers


def test_scenario_selection_by_mode_and_name():
    full, skipped_full = select_scenarios("full")
    assert [s.name for s in full] == [s.name for s in all_scenarios() if s.wired]
    quick, skipped_quick = select_scenarios("quick")
    core = {"direct-c50", "bare-w1-c50", "proxy-w1-c50", "bare-w2-c50", "proxy-w2-c50", "direct-c10", "proxy-w1-c10"}
    assert core <= {s.name for s in quick} < {s.name for s in full}
    assert {n for n, _ in skipped_quick} == {s.name for s in full} - {s.name for s in quick} | {n for n, _ in skipped_full}
    picked, _ = select_scenarios("quick", ["proxy-w1-c1", "nope"])
    assert [s.name for s in picked] == ["proxy-w1-c1"]  # --only overrides the mode's selection


def test_a_profile_that_is_not_wired_is_skipped_with_its_reason(monkeypatch):
    import bench.scenarios as sc

    later = sc.ProxyProfile("later", wired=False, not_wired_reason="not in the proxy yet")
    monkeypatch.setattr(sc, "FEATURE_SCENARIOS", (Scenario("proxy-later-w1-c50", "proxy", 50, profile=later),))
    chosen, skipped = sc.select_scenarios("full")
    assert "proxy-later-w1-c50" not in {s.name for s in chosen}
    assert ("proxy-later-w1-c50", "not in the proxy yet") in skipped
    assert Scenario("x", "direct", 1).wired


COLLAPSED = """\
<module> (cm:1);Runner.run (asyncio/runners.py:118) 20
<module> (cm:1);Runner.run (asyncio/runners.py:118);ProxyApp._handle (chariot_migrate/proxy/app.py:10);HttpTransport.send (chariot_migrate/proxy/upstream.py:50);ClientSession._request (aiohttp/client.py:700) 50
<module> (cm:1);Runner.run (asyncio/runners.py:118);ProxyApp._handle (chariot_migrate/proxy/app.py:12);Logger.info (logging/__init__.py:1500);JsonFormatter.format (chariot_migrate/jsonlog.py:30) 20
<module> (cm:1);Runner.run (asyncio/runners.py:118);ProxyApp._handle (chariot_migrate/proxy/app.py:14) 10
garbage line without a count
"""


def test_profile_summary_self_steps_and_idle():
    assert len(parse_collapsed(COLLAPSED.splitlines())) == 4
    s = summarise_collapsed(COLLAPSED.splitlines())
    assert s["samples"] == 100 and s["idle_pct"] == 20.0
    top = {r["frame"]: r["pct"] for r in s["top_self"]}
    assert top["ClientSession._request (aiohttp/client.py)"] == 50.0  # line numbers merged
    steps = {r["frame"]: r["pct"] for r in s["under_handler"]}
    assert steps == {"HttpTransport.send (chariot_migrate/proxy/upstream.py)": 50.0,
                     "Logger.info (logging/__init__.py)": 20.0, "(its own code)": 10.0}
    areas = {a["area"]: a["pct"] for a in s["areas"]}
    assert areas["upstream client (aiohttp)"] == 50.0
    assert areas["JSON access log (chariot_migrate.jsonlog)"] == 20.0
    inclusive = {r["frame"] for r in s["top_inclusive"]}
    assert "Runner.run (asyncio/runners.py)" not in inclusive  # common trunk left out
    assert "HttpTransport.send (chariot_migrate/proxy/upstream.py)" in inclusive


def test_client_choice_ratios_keep_the_aiohttp_bare_forwarder_as_baseline():
    results = [_result("bare-w1-c50", 4000, cpu=200), _result("bare-reqwest-w1-c50", 5000, cpu=160),
               _result("proxy-w1-c50", 2400, cpu=400), _result("proxy-reqwest-w1-c50", 3600, cpu=250)]
    ratios = compute_ratios(results)
    assert ratios["bare_reqwest_vs_bare_w1"] == pytest.approx(1.25)  # what the client alone buys
    assert ratios["proxy_reqwest_vs_proxy_w1"] == pytest.approx(1.5)  # what it would buy the proxy
    assert ratios["proxy_reqwest_vs_proxy_cpu_w1"] == pytest.approx(1.6)
    assert ratios["proxy_reqwest_vs_bare_w1"] == pytest.approx(0.9)  # against the baseline
    assert ratios["proxy_reqwest_vs_bare_reqwest_w1"] == pytest.approx(0.72)  # against the same client


def test_server_choice_ratios_keep_the_uvicorn_bare_forwarder_as_baseline():
    results = [_result("bare-w1-c50", 4000, cpu=200), _result("proxy-w1-c50", 2000, cpu=400),
               _result("proxy-granian-w1-c50", 2500, cpu=320), _result("bare-granian-w1-c50", 5000, cpu=160),
               _result("bare-granian-rsgi-w1-c50", 5000, cpu=128)]
    ratios = compute_ratios(results)
    assert ratios["proxy_granian_vs_bare_w1"] == pytest.approx(0.625)  # against the baseline
    assert ratios["proxy_granian_vs_bare_cpu_w1"] == pytest.approx(0.625)
    assert ratios["proxy_granian_vs_proxy_w1"] == pytest.approx(1.25)  # what the server buys the proxy
    assert ratios["proxy_granian_vs_proxy_cpu_w1"] == pytest.approx(1.25)
    assert ratios["bare_granian_vs_bare_w1"] == pytest.approx(1.25)  # the server's share, no proxy work
    assert ratios["bare_granian_vs_bare_cpu_w1"] == pytest.approx(1.25)
    assert ratios["bare_granian_rsgi_vs_bare_granian_cpu_w1"] == pytest.approx(1.25)  # RSGI over the ASGI bridge
    assert "proxy_granian_vs_bare_w2" not in ratios  # not run: left out, never zero


def test_granian_proxy_scenarios_run_the_proxy_under_granian():
    from bench.scenarios import all_scenarios

    by = {s.name: s for s in all_scenarios()}
    assert by["proxy-granian-w1-c50"].profile.server == "granian" and by["proxy-granian-w2-c50"].workers == 2
    assert by["proxy-w1-c50"].profile.server == "uvicorn"  # the default proxy stays on uvicorn
