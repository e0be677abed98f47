"""plan.analysis: config validation (one line naming the line), query templates, the pure gate rule
over Prometheus readings, the HTTP edge (respx), and the controller holding/rolling back on it."""

from __future__ import annotations

import httpx
import pytest
import respx

from chariot_migrate.rollout.analysis import AnalysisConfig, MetricCheck, MetricReading, render_query
from chariot_migrate.rollout.evidence import EvidenceSource, StaticDataEvidence
from chariot_migrate.rollout.gates import Evidence, GateConfig, evaluate
from chariot_migrate.rollout.prometheus import PrometheusClient
from chariot_migrate.routes.loader import RoutesError, parse_routes

BASE = """\
version: 1
legacy: {invoker: http, url: "http://127.0.0.1:9"}
services:
  account: {phase: 1}
routes:
  - {path: /token, methods: [POST], service: account}
plan:
  analysis:
    prometheus: http://prom:9090
    metrics:
"""


def parse(metrics: str):
    return parse_routes(BASE + metrics, "routes.yaml")


def test_a_valid_analysis_section_loads_and_fills_in_placeholders():
    cfg = parse('      - name: err\n        query: sum(rate(x{service="{{service}}",s="{{ step }}"}[{{window}}]))\n'
                '        max: 0.01\n        on_fail: hold\n')
    from chariot_migrate.rollout.plan import Plan

    a = Plan.from_routes(cfg).analysis
    assert a.prometheus == "http://prom:9090" and a.metrics[0].on_fail == "hold"
    q = render_query(a.metrics[0].query, service="account", window_s=299.2, step="25")
    assert q == 'sum(rate(x{service="account",s="25"}[300s]))'


@pytest.mark.parametrize(("metrics", "line", "message"), [
    ("      - {name: err, query: up}\n", 11, "needs max or min"),
    ("      - {name: err, query: up, max: 1, on_fail: explode}\n", 11, "on_fail"),
    ("      - {name: err, query: up, max: 1}\n      - {name: err, query: up, min: 0}\n", 8, "used twice"),
    ("      - {name: err, query: 'x[{{windw}}]', max: 1}\n", 11, "unknown placeholder {{windw}}"),
    ("      - {name: err, query: up, max: 1, maxx: 2}\n", 11, "unknown key 'maxx'"),
    ("      - {name: err, query: up, min: 3, max: 1}\n", 11, "min 3 is above max 1"),
])
def test_a_bad_analysis_section_is_one_line_naming_the_line(metrics, line, message):
    with pytest.raises(RoutesError) as e:
        parse(metrics)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"routes.yaml:{line}: plan.analysis") and message in msg


def test_metrics_without_prometheus_and_prometheus_without_metrics_are_refused():
    with pytest.raises(ValueError, match="need a prometheus URL"):
        AnalysisConfig(metrics=[MetricCheck(name="e", query="up", max=1)])
    with pytest.raises(ValueError, match="at least one metric"):
        AnalysisConfig(prometheus="http://p:9090")
    with pytest.raises(ValueError, match="http:// or https://"):
        AnalysisConfig(prometheus="prom:9090", metrics=[MetricCheck(name="e", query="up", max=1)])


ERR = MetricCheck(name="new-error-rate", query="q1", max=0.01, on_fail="rollback")
P95 = MetricCheck(name="p95-ratio", query="q2", max=2.0, on_fail="hold")
VOL = MetricCheck(name="requests", query="q3", min=100, on_fail="hold")
G = GateConfig(min_samples=100)


def ev(*pairs, **kw) -> Evidence:
    return Evidence(prometheus=True, metrics=tuple(pairs), **kw)


def reading(check: MetricCheck, value=None, error=None) -> tuple:
    return (check, MetricReading(check.name, check.query, value, error))


def test_metrics_within_their_bounds_promote_and_show_value_against_bound():
    r = evaluate(G, ev(reading(ERR, 0.001), reading(P95, 1.2), reading(VOL, 500)))
    assert r.decision == "promote"
    lines = [c.line() for c in r.checks]
    assert "ok  new-error-rate: 0.001 (threshold <= 0.01)" in lines
    assert "ok  requests: 500 (threshold >= 100)" in lines
    # the built-in request-window checks are replaced (they would hold: no built-in samples here)
    assert not {"samples", "new-side error rate"} & {c.name for c in r.checks}


def test_a_breach_follows_on_fail_rollback_or_hold():
    r = evaluate(G, ev(reading(ERR, 0.2), reading(P95, 1.0)))
    assert r.decision == "rollback" and "new-error-rate: 0.2 (threshold <= 0.01)" in r.reason
    r = evaluate(G, ev(reading(ERR, 0.0), reading(P95, 3.5)))
    assert r.decision == "hold" and "p95-ratio: 3.5 (threshold <= 2)" in r.reason
    r = evaluate(G, ev(reading(ERR, 0.0), reading(VOL, 12)))
    assert r.decision == "hold" and "requests: 12 (threshold >= 100)" in r.reason


def test_no_data_and_no_answer_hold_never_promote_even_when_on_fail_is_rollback():
    r = evaluate(G, ev(reading(ERR, None)))
    assert r.decision == "hold" and "new-error-rate: no data" in r.reason
    r = evaluate(G, ev(reading(ERR, float("nan"))))  # 0/0: no traffic
    assert r.decision == "hold" and "no data" in r.reason
    r = evaluate(G, ev(reading(ERR, error="Prometheus at http://p did not answer: ConnectError")))
    assert r.decision == "hold" and "did not answer" in r.reason


def test_the_other_gates_still_apply_with_prometheus():
    r = evaluate(G.merged({"approval": True}), ev(reading(ERR, 0.0)))
    assert r.decision == "hold" and "approval" in r.reason
    r = evaluate(G, ev(reading(ERR, 0.0), backlog=500))
    assert r.decision == "hold" and "dual-write backlog" in r.reason


def test_the_shadow_step_is_judged_by_shadow_pairs_not_prometheus():
    r = evaluate(G, ev(reading(ERR, 0.0), shadow_step=True, pairs=3))
    assert r.decision == "hold" and "samples: 3" in r.reason


# --- the HTTP edge ----------------------------------------------------------------------------

def vector(*values):
    return {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": {}, "value": [1.0, str(v)]} for v in values]}}


@respx.mock
def test_client_reads_one_value_from_the_standard_query_api():
    route = respx.get("http://prom:9090/api/v1/query").mock(return_value=httpx.Response(200, json=vector(0.25)))
    r = PrometheusClient("http://prom:9090/").query("err", "sum(up)", at=1700000000.5)
    assert r == MetricReading("err", "sum(up)", 0.25)
    assert route.calls.last.request.url.params["query"] == "sum(up)"
    assert route.calls.last.request.url.params["time"] == "1700000000.500"


@respx.mock
@pytest.mark.parametrize(("answer", "value", "error"), [
    (httpx.Response(200, json=vector()), None, None),  # empty: no data
    (httpx.Response(200, json=vector("NaN")), None, None),
    (httpx.Response(200, json={"status": "success", "data": {"resultType": "scalar", "result": [1, "4"]}}), 4.0, None),
    (httpx.Response(200, json=vector(1, 2)), None, "returned 2 series"),
    (httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": "parse error"}), None,
     "refused the query: bad_data: parse error"),
    (httpx.Response(502, text="bad gateway"), None, "HTTP 502"),
    (httpx.ConnectError("refused"), None, "did not answer: ConnectError"),
])
def test_client_turns_every_answer_into_a_plain_reading(answer, value, error):
    respx.get("http://prom:9090/api/v1/query").mock(side_effect=[answer])
    r = PrometheusClient("http://prom:9090").query("m", "q")
    assert r.value == value
    assert (r.error is None) if error is None else (error in r.error)


# --- gathered with the controller's evidence ---------------------------------------------------

class FakeProm:
    def __init__(self, values):
        self.values, self.asked = values, []

    def query(self, name, query, at):
        self.asked.append((name, query, at))
        v = self.values[name]
        return MetricReading(name, query, error=v) if isinstance(v, str) else MetricReading(name, query, v)


class NoWindows:
    def query(self, service, since_ts, now=None):
        return {}


def test_evidence_source_fills_in_the_window_since_the_last_change_and_the_step():
    a = AnalysisConfig(prometheus="http://p:9090", metrics=[
        MetricCheck(name="err", query='rate(x{service="{{service}}",step="{{step}}"}[{{window}}])', max=0.01)])
    prom = FakeProm({"err": 0.0})
    src = EvidenceSource(NoWindows(), analysis=a, prometheus=prom, clock=lambda: 1000.0)
    e = src.gather("account", 880.0, slo_p95_ms=100, shadow_step=False, step="5")
    assert prom.asked == [("err", 'rate(x{service="account",step="5"}[120s])', 1000.0)]
    assert e.prometheus and e.metrics[0][1].value == 0.0
    assert evaluate(G, e).decision == "promote"
    # at the shadow step nothing is asked
    prom.asked.clear()
    src.gather("account", 880.0, slo_p95_ms=100, shadow_step=True, step="1")
    assert prom.asked == []


def test_controller_holds_with_the_reason_when_prometheus_does_not_answer_and_rolls_back_on_breach(tmp_path):
    from chariot_migrate.rollout import state as st
    from chariot_migrate.rollout.controller import RolloutController
    from chariot_migrate.rollout.operations import Operations
    from chariot_migrate.rollout.plan import Plan
    from chariot_migrate.rollout.store import open_state_store
    from chariot_migrate.routes.models import RoutesFile

    cfg = RoutesFile.model_validate({
        "legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
        "services": {"a": {"phase": 1, "dual_write": "on"}},
        "plan": {"steps": ["shadow", 1, 5, 100], "gates": {"min_samples": 10, "min_match_rate": None},
                 "analysis": {"prometheus": "http://127.0.0.1:9", "metrics": [
                     {"name": "err", "query": "q", "max": 0.01, "on_fail": "rollback"}]}},
    })
    plan = Plan.from_routes(cfg)
    prom = FakeProm({"err": "Prometheus at http://127.0.0.1:9 did not answer: ConnectError"})
    ops = Operations(open_state_store(f"sqlite:///{tmp_path}/s.db"), cfg, data_evidence=StaticDataEvidence())
    ops.apply("a", lambda s: st.shift(s, 5.0), actor="me", action="shift", reason="test")
    ctl = RolloutController(ops, plan, EvidenceSource(NoWindows(), analysis=plan.analysis, prometheus=prom))
    t = ctl.tick("a")
    assert t.decision == "hold" and "did not answer" in t.reason and ops.store.get("a").percent == 5
    assert "did not answer" in ops.history("a")[-1].reason
    prom.values["err"] = 0.5
    t = ctl.tick("a")
    assert t.decision == "rollback" and t.applied == "1%" and ops.store.get("a").percent == 1
    checks = ops.history("a")[-1].evidence["checks"]
    assert checks[0]["name"] == "err" and checks[0]["measured"] == "0.5" and checks[0]["threshold"] == "<= 0.01"
