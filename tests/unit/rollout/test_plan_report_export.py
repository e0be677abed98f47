"""phase_report rendering (md + self-contained html) and `routes export` builders."""

import json
import re
import time

import pytest
import yaml

from chariot_migrate.cli.export_cmd import (
    Split,
    export_routes,
    percent_weights,
    render_alb,
    render_envoy,
    render_istio,
    search_to_fullmatch,
)
from chariot_migrate.rollout.controller import RolloutController
from chariot_migrate.rollout.evidence import EvidenceSource, StaticDataEvidence
from chariot_migrate.rollout.operations import OperationError, Operations
from chariot_migrate.rollout.phase_report import (
    Prices,
    build_phase_report,
    estimate_monthly_cost,
    render_html,
    render_markdown,
)
from chariot_migrate.rollout.plan import Plan
from chariot_migrate.rollout.store import open_state_store
from chariot_migrate.rollout.windows import SideStats, SQLiteWindowStore, bucket_of
from chariot_migrate.routes.models import RoutesFile

CFG = RoutesFile.model_validate({
    "stage_prefix": "/chariot",
    "legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
    "services": {"account": {"phase": 1, "slo": {"p95_ms": 100}, "dual_write": "on"}, "risk": {"phase": 2}},
    "plan": {"steps": ["shadow", 1, 50, 100], "costs": {"lambda_memory_gb": 1.0, "container_replicas": 3}},
    "routes": [
        {"path": "/token", "methods": ["GET"], "service": "account"},
        {"path": "/my", "methods": ["GET"], "service": "account", "match": {"query": {"key": "^#account#"}}},
        {"path": "/account/{member}", "methods": ["POST", "DELETE"], "service": "account",
         "match": {"path": {"member": "@"}}},
        {"path": "/account/hook", "methods": ["POST"], "service": "risk"},
        {"path": "/risk", "methods": ["GET", "PUT"], "service": "risk"},
        {"path": "/my", "methods": ["POST"], "service": "risk", "match": {"body": {"node.labels[0]": "^Risk$"}}},
        {"path": "/files/{key+}", "methods": ["GET"], "service": "risk"},
    ],
})


@pytest.fixture
def ctl(tmp_path):
    ops = Operations(open_state_store(f"sqlite:///{tmp_path}/s.db"), CFG, data_evidence=StaticDataEvidence())
    win = SQLiteWindowStore(tmp_path / "m.db")
    now = int(time.time())
    # bucket upper edges (the buckets shared with Prometheus): 30 ms → 50, 12 ms → 25
    win.add({("account", "legacy", now - 5): SideStats(600, 6, {bucket_of(30): 600}),
             ("account", "new", now - 5): SideStats(400, 0, {bucket_of(12): 400})})
    ops.set_shadow("account", 100, actor="alice", reason="start <comparing>")
    ops.shift("account", 50, actor="alice", reason="canary")
    return RolloutController(ops, Plan.from_routes(CFG), EvidenceSource(win, None, verify_dir=tmp_path / "v"))


def test_phase_report_markdown_has_every_section(ctl):
    d = build_phase_report(ctl, CFG, ctl.plan, "account", since="1h")
    md = render_markdown(d)
    # no shadow comparisons: no latency (the request windows' bucket edges are not passed off as one)
    for part in ("# Phase report: account (phase 1)", "## Latency and errors", "| legacy | 600 | 6 | 1.00% | 0 | n/a |",
                 "| new | 400 | 0 | 0.00% | 0 | n/a |", "SLO: p95 ≤ 100 ms", "No shadow comparisons recorded",
                 "Dual-write backlog: n/a", "Last `data verify`: not run", "## Estimated monthly cost",
                 "Observed: 1,000 requests over ", "Less than a day was observed",
                 "lambda_memory_gb=1.0", "container_replicas=3", "## Step history", "| alice | shift |"):
        assert part in md, part
    assert d["step"] == "50" and d["next"]["step"] == "100"
    # the observed period is the 5 s since the first request, not the 1 h window asked for
    cost = d["cost"]
    assert cost["observed_requests"] == 1000 and 5 <= cost["observed_s"] < 6.5
    assert re.search(r"Observed: 1,000 requests over [56] s \(first at ", md)
    assert cost["requests_per_month"] == pytest.approx(1000 / cost["observed_s"] * 30 * 86400, rel=0.02)


def test_phase_report_html_is_self_contained_and_escaped(ctl):
    html = render_html(build_phase_report(ctl, CFG, ctl.plan, "account", since="1h"))
    assert html.startswith("<!doctype html>") and "<svg" in html and "<table>" in html
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)  # nothing fetched: opens offline
    assert "start &lt;comparing&gt;" in html and "<comparing>" not in html


def test_phase_report_refuses_unknown_service_and_bad_since(ctl):
    with pytest.raises(OperationError, match="unknown service"):
        build_phase_report(ctl, CFG, ctl.plan, "nope")
    with pytest.raises(OperationError, match="--since"):
        build_phase_report(ctl, CFG, ctl.plan, "account", since="soon")


def test_cost_estimate_uses_configured_prices():
    p = Prices(lambda_per_million_requests=1.0, lambda_per_gb_second=0.0, container_replicas=1,
               container_per_vcpu_hour=1.0, container_vcpu=1, container_per_gb_hour=0, container_memory_gb=0)
    c = estimate_monthly_cost(p, requests_per_s=1e6 / (30 * 86400), legacy_mean_ms=100)
    assert c == {"requests_per_month": 1_000_000, "lambda_usd": 1.0, "containers_usd": 730.0}


# --- routes export ----------------------------------------------------------------------------

SPLITS = {"account": Split("account", 2550, 10000, pins=2), "risk": Split("risk", 0, 5000)}


def test_search_regex_becomes_fullmatch_with_the_same_meaning():
    rx = search_to_fullmatch("^#account#")
    for text, want in (("#account#x", True), ("x#account#", False), ("#acc", False)):
        assert bool(re.fullmatch(rx, text)) == bool(re.search("^#account#", text)) == want
    assert search_to_fullmatch("(?=x)y") is None and search_to_fullmatch(r"(a)\1") is None


def test_export_order_follows_the_proxy_precedence():
    ids = [(r.template, r.service) for r in export_routes(CFG)]
    assert ids.index(("/account/hook", "risk")) < ids.index(("/account/{member}", "account"))
    assert ids.index(("/my", "account")) < ids.index(("/token", "account"))  # conditions first
    assert ids[-1] == ("/files/{key+}", "risk")


def test_percent_weights_sum_to_100():
    for bp in range(0, 10_001, 7):
        legacy, new = percent_weights(bp)
        assert legacy + new == 100 and abs(new - bp / 100) <= 0.5


def test_istio_virtual_service():
    text = render_istio(CFG, export_routes(CFG), SPLITS, name="chariot-api", namespace="prod", version=7)
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("per account" in h.lower() or "each account" in h.lower() for h in header)
    assert any("25.5% new is rounded to 26%" in h for h in header)
    assert any("body conditions" in h for h in header) and any("path-parameter" in h for h in header)
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == "networking.istio.io/v1beta1" and doc["kind"] == "VirtualService"
    assert doc["metadata"] == {"name": "chariot-api", "namespace": "prod"} and doc["spec"]["hosts"] == ["chariot-api"]
    internal, *http = doc["spec"]["http"]
    assert internal == {"name": "internal-api-404", "match": [{"uri": {"prefix": "/internal/api/"}},
                                                               {"uri": {"prefix": "/chariot/internal/api/"}}],
                        "directResponse": {"status": 404}}
    for h in http:
        assert sum(d["weight"] for d in h["route"]) == 100 and all(d["destination"]["host"] for d in h["route"])
        for m in h.get("match", []):
            assert set(m) <= {"uri", "method", "queryParams", "headers"}
            for v in m.values():
                assert isinstance(v, dict)
    by = {h["name"]: h for h in http}
    my = next(h for n, h in by.items() if n.startswith("account") and h["match"][0]["uri"] == {"exact": "/chariot/my"})
    assert my["match"][0]["queryParams"]["key"]["regex"].endswith(".*")
    assert {d["destination"]["host"]: d["weight"] for d in my["route"]} == {"legacy": 74, "account": 26}
    assert my["mirror"] == {"host": "account"} and my["mirrorPercentage"] == {"value": 100.0}
    # a write is never mirrored; risk at 0 % is legacy only with a 50 % mirror on reads
    risk_get = next(h for n, h in by.items() if n.endswith("-get") and h["match"][0]["uri"] == {"exact": "/chariot/risk"})
    risk_put = next(h for n, h in by.items() if n.endswith("-put") and h["match"][0]["uri"] == {"exact": "/chariot/risk"})
    assert risk_get["route"] == [{"destination": {"host": "legacy"}, "weight": 100}]
    assert risk_get["mirrorPercentage"] == {"value": 50.0} and "mirror" not in risk_put
    member = next(h for h in http if h["match"][0]["uri"].get("regex") == r"/chariot/account/[^/]+")
    assert member["route"] == [{"destination": {"host": "legacy"}, "weight": 100}]  # not expressible → legacy
    assert http[-1]["name"] == "default-legacy" and "match" not in http[-1]
    greedy = next(h for h in http if h["match"][0]["uri"].get("regex", "").endswith(".+"))
    assert re.fullmatch(greedy["match"][0]["uri"]["regex"], "/chariot/files/a/b.txt")


def test_envoy_route_configuration():
    doc = json.loads(render_envoy(CFG, export_routes(CFG), SPLITS))
    assert set(doc) == {"name", "virtual_hosts"}
    (vh,) = doc["virtual_hosts"]
    assert vh["domains"] == ["*"]
    assert [r.get("direct_response") for r in vh["routes"][:2]] == [{"status": 404}] * 2
    for r in vh["routes"][2:]:
        assert set(r) <= {"name", "match", "route", "metadata"}
        assert set(r["match"]) & {"path", "prefix", "safe_regex"}
        act = r["route"]
        if "weighted_clusters" in act:
            cl = act["weighted_clusters"]["clusters"]
            assert sum(c["weight"] for c in cl) == 10_000 and all(c["weight"] > 0 for c in cl)
        for mp in act.get("request_mirror_policies", []):
            f = mp["runtime_fraction"]["default_value"]
            assert f["denominator"] == "TEN_THOUSAND" and 0 < f["numerator"] <= 10_000 and mp["cluster"]
    my = next(r for r in vh["routes"] if r["match"].get("path") == "/chariot/my" and r["name"].startswith("account"))
    assert {c["name"]: c["weight"] for c in my["route"]["weighted_clusters"]["clusters"]} == {"legacy": 7450,
                                                                                              "account": 2550}
    assert my["match"]["query_parameters"][0]["name"] == "key"
    assert my["match"]["headers"][0] == {"name": ":method", "string_match": {"safe_regex": {"regex": "GET"}}}
    assert "per request" in my["metadata"]["filter_metadata"]["chariot-migrate"]["note"]
    assert vh["routes"][-1] == {"name": "default-legacy", "match": {"prefix": "/"}, "route": {"cluster": "legacy"}}


def test_alb_listener_rules():
    doc = json.loads(render_alb(CFG, export_routes(CFG), SPLITS, target_groups={"account": "arn:aws:tg/account"}))
    assert any("each account" in c for c in doc["Comment"]) and any("cannot mirror" in c for c in doc["Comment"])
    prios = [r["Priority"] for r in doc["Rules"]]
    assert prios == list(range(1, len(prios) + 1))
    internal, *rules = doc["Rules"]
    assert internal["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "404"
    assert internal["Conditions"][0]["PathPatternConfig"]["Values"] == ["/internal/api/*", "/chariot/internal/api/*"]
    assert not any("/api/v1/" in v for r in rules for c in r["Conditions"] for v in c.get("PathPatternConfig", {}).get("Values", []))
    for r in rules:
        fields = {c["Field"] for c in r["Conditions"]}
        assert fields == {"path-pattern", "http-request-method"}
        (action,) = r["Actions"]
        assert action["Type"] == "forward"
        tgs = action["ForwardConfig"]["TargetGroups"]
        assert sum(t["Weight"] for t in tgs) == 100 and all(0 < t["Weight"] <= 999 for t in tgs)
    token = next(r for r in doc["Rules"] if r["Conditions"][0]["PathPatternConfig"]["Values"] == ["/chariot/token"])
    assert {t["TargetGroupArn"]: t["Weight"] for t in token["Actions"][0]["ForwardConfig"]["TargetGroups"]} == {
        "TARGET_GROUP_ARN_legacy": 74, "arn:aws:tg/account": 26}
    # regex query conditions are not expressible on ALB: that route is legacy-only there
    my = next(r for r in doc["Rules"] if r["Conditions"][0]["PathPatternConfig"]["Values"] == ["/chariot/my"])
    assert [t["Weight"] for t in my["Actions"][0]["ForwardConfig"]["TargetGroups"]] == [100]
    assert doc["DefaultActions"][0]["ForwardConfig"]["TargetGroups"][0]["TargetGroupArn"] == "TARGET_GROUP_ARN_legacy"


VERSIONED = RoutesFile.model_validate({
    "stage_prefix": "/chariot",
    "legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
    "services": {"asset": {"phase": 1}},
    "routes": [
        {"path": "/assets", "methods": ["GET"], "service": "asset", "versions": ["v1", "v2"],
         "deprecation": {"since": "2026-01-01", "sunset": "2027-01-01"}},
        {"path": "/assets/{key}", "methods": ["GET"], "service": "asset"},
    ],
})


def test_exports_carry_api_versions_deprecation_and_the_internal_404():
    """What the proxy serves (routes.matcher.split_version) the exports serve: v1 under the stage and
    under /api/v1 rewritten to the stage, /api/v2 as received, Deprecation/Sunset on the answers."""
    splits = {"asset": Split("asset", 5000)}
    dep = dict(VERSIONED.routes[0].deprecation.headers())
    http = yaml.safe_load(render_istio(VERSIONED, export_routes(VERSIONED), splits))["spec"]["http"]
    by_uri = {json.dumps(h["match"][0]["uri"]): h for h in http if "match" in h and "route" in h}
    stage, v1, v2 = (by_uri[json.dumps({"exact": p})] for p in ("/chariot/assets", "/api/v1/assets", "/api/v2/assets"))
    assert "rewrite" not in stage and "rewrite" not in v2
    rw = v1["rewrite"]["uriRegexRewrite"]
    assert re.sub(rw["match"], rw["rewrite"], "/api/v1/assets") == "/chariot/assets"
    for h in (stage, v1, v2):
        assert h["headers"] == {"response": {"add": dep}} and "deprecation" in dep and "sunset" in dep
    one = by_uri[json.dumps({"regex": r"/api/v1/assets/[^/]+"})]
    assert "headers" not in one and re.fullmatch(one["match"][0]["uri"]["regex"], "/api/v1/assets/x")
    assert json.dumps({"regex": r"/api/v2/assets/[^/]+"}) not in by_uri  # that route has only v1

    routes = json.loads(render_envoy(VERSIONED, export_routes(VERSIONED), splits))["virtual_hosts"][0]["routes"]
    v1e = next(r for r in routes if r["match"].get("path") == "/api/v1/assets")
    rx = v1e["route"]["regex_rewrite"]
    assert re.sub(rx["pattern"]["regex"], rx["substitution"], "/api/v1/assets") == "/chariot/assets"
    assert {h["header"]["key"]: h["header"]["value"] for h in v1e["response_headers_to_add"]} == dep
    assert any(r["match"].get("path") == "/api/v2/assets" and "regex_rewrite" not in r["route"] for r in routes)

    alb = json.loads(render_alb(VERSIONED, export_routes(VERSIONED), splits))
    paths = [v for r in alb["Rules"] for c in r["Conditions"] for v in c.get("PathPatternConfig", {}).get("Values", [])]
    assert "/api/v2/assets" in paths and "/chariot/assets" in paths and "/api/v1/assets" not in paths
    assert any("cannot rewrite" in c for c in alb["Comment"])
