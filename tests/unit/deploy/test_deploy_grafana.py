"""deploy/grafana/chariot-migrate.json: a Grafana dashboard whose queries use only metrics the
code exports (names and labels found by grepping Counter(/Histogram(/Gauge( in chariot_migrate/)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "deploy" / "grafana" / "chariot-migrate.json"
EXPECTED = REPO / "deploy" / "grafana" / "EXPECTED_METRICS.md"

_METRIC_TYPES = ("Counter", "Histogram", "Gauge", "Summary", "CounterMetricFamily", "GaugeMetricFamily")
_SUFFIXES = {"Counter": ("_total", "_created"), "Histogram": ("_bucket", "_count", "_sum", "_created"),
             "Summary": ("_count", "_sum", "_created"), "Gauge": ("",),
             "CounterMetricFamily": ("_total",), "GaugeMetricFamily": ("",)}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan", "le"}


def _definitions(source: str) -> list[tuple[str, str, set[str]]]:
    """(type, name, label names) of each prometheus_client metric constructed in ``source``.

    An AST walk instead of a regex: help strings contain parentheses and calls span lines.
    """
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if func not in _METRIC_TYPES or not node.args:
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        labels_node = node.args[2] if len(node.args) > 2 else next(
            (k.value for k in node.keywords if k.arg in ("labelnames", "labels")), None)
        labels = set()
        if isinstance(labels_node, ast.List | ast.Tuple):
            labels = {e.value for e in labels_node.elts if isinstance(e, ast.Constant)}
        out.append((func, first.value, labels))
    return out


def exported_metrics(root: Path = REPO / "chariot_migrate") -> dict[str, set[str]]:
    """Every series name the code can export → its label names (union over definitions)."""
    out: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        for kind, name, label_set in _definitions(path.read_text()):
            base = name.removesuffix("_total") if kind in ("Counter", "CounterMetricFamily") else name
            for suffix in _SUFFIXES[kind]:
                extra = {"le"} if suffix == "_bucket" else set()
                out.setdefault(base + suffix, set()).update(label_set | extra)
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (functions, keywords, labels and strings removed)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\[[^\]]*\]", "", e)  # range selectors, incl. [$__rate_interval]
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names) for each `metric{...}` selector."""
    out = []
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr):
        out.append((m.group(1), set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(2)))))
    return out


def grouping_labels(expr: str) -> set[str]:
    out: set[str] = set()
    for m in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        out |= {s.strip() for s in m.group(1).split(",") if s.strip()}
    return out


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def known_metrics() -> dict[str, set[str]]:
    return exported_metrics()


def all_exprs(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(re.sub(r"label_values\((\w+),\s*\w+\)", r"\1", var["query"]["query"]))
    return exprs


def test_dashboard_has_grafana_fields(dashboard: dict) -> None:
    for field in ("title", "uid", "panels", "templating", "schemaVersion", "time"):
        assert field in dashboard, field
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["service"]["type"] == "query" and variables["service"]["includeAll"]
    graphs = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(graphs) >= 8
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in graphs:
        assert p["targets"] and p["title"] and p["gridPos"]["w"] <= 24
        for t in p["targets"]:
            assert t["expr"].strip() and t["refId"]
            if any("service" in labels for _, labels in selectors(t["expr"])):
                assert 'service=~"$service"' in t["expr"], f"{p['title']}: filter by the service variable"


def test_dashboard_covers_the_rollout_story(dashboard: dict) -> None:
    text = json.dumps(dashboard)
    assert "sum by (side) (rate(proxy_requests_total" in text  # traffic split
    assert 'histogram_quantile(0.95, sum by (le, side) (rate(http_request_duration_seconds_bucket' in text
    assert 'status_code=~\\"5..\\"' in text  # error rate


def test_every_metric_in_the_dashboard_is_exported_by_the_code(dashboard: dict) -> None:
    known = known_metrics()
    assert "proxy_requests_total" in known and "http_request_duration_seconds_bucket" in known
    used = set()
    for expr in all_exprs(dashboard):
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        missing = names - set(known)
        assert not missing, f"{sorted(missing)} not exported by chariot_migrate/ (see EXPECTED_METRICS.md): {expr}"
        used |= names
        labels_available = set().union(*(known[n] for n in names))
        for metric, labels in selectors(expr):
            assert labels <= known[metric], f"{metric} has no label(s) {labels - known[metric]}: {expr}"
        assert grouping_labels(expr) <= labels_available, f"grouping by unknown labels in {expr}"
    assert len(used) >= 6


def test_extractors_catch_made_up_metrics() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, side) (rate(shadow_match_total{service=~"$service",side="new"}'
            '[$__rate_interval]))) / on (service) group_left dual_write_made_up_backlog')
    assert metric_names(expr) == {"shadow_match_total", "dual_write_made_up_backlog"}
    assert selectors(expr) == [("shadow_match_total", {"service", "side"})]
    assert grouping_labels(expr) == {"le", "side"}
    assert not {"shadow_match_total", "dual_write_made_up_backlog"} & set(exported_metrics())


def test_exported_metrics_reads_definitions(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text('X = Histogram(\n    "lat_seconds", "doc",\n    ["service", "side"], buckets=B)\n'
                                   'Y = prometheus_client.Counter("hits_total", "doc (with parentheses)", labelnames=("route",))\nZ = Gauge("depth", "doc")\n'
                                   'c: Counter[str] = Counter()\n')
    got = exported_metrics(tmp_path)
    assert got["lat_seconds_bucket"] == {"service", "side", "le"}
    assert got["hits_total"] == {"route"} and "hits_total_total" not in got
    assert got["depth"] == set()


def test_expected_metrics_are_not_yet_in_the_dashboard(dashboard: dict) -> None:
    # Panels for these wait until the code exports them; when it does, move them into the board.
    expected = set(re.findall(r"`([a-z_]+(?:_total|_pending|_letters|_state|_ratio|_seconds|_percent|_stage))`",
                              EXPECTED.read_text()))
    assert {"dual_write_outbox_pending", "shadow_comparisons_total"} <= expected
    known = set(known_metrics())
    used = set().union(*(metric_names(e) for e in all_exprs(dashboard)))
    assert not ((expected & used) - known), "a panel uses a metric that is still only expected"


def test_backlog_is_not_multiplied_by_the_proxy_replicas(dashboard: dict) -> None:
    # every proxy pod reports the one shared outbox: collapse pods with max, then add services
    exprs = [e for e in all_exprs(dashboard) if "dual_write_outbox_pending" in e or "dual_write_dead_letters" in e]
    assert len(exprs) == 2
    for e in exprs:
        assert re.search(r"max by \(service, direction\) \(dual_write_(outbox_pending|dead_letters)\{", e), e
        assert not re.search(r"sum by \([^)]*\) \(dual_write_", e), e


def test_target_split_and_annotations_for_every_shift_rollback_and_approval(dashboard: dict) -> None:
    targets = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert any(e.startswith("max by (service) (migration_target_percent{") for e in targets)
    anns = {a["name"]: a for a in dashboard["annotations"]["list"] if "expr" in a}
    actions = {re.search(r'action="(\w+)"', a["expr"]).group(1) for a in anns.values()}
    assert actions == {"shift", "rollback", "approve"}
    for a in anns.values():
        assert a["enable"] and a["datasource"]["type"] == "prometheus"
        assert "migration_changes_total" in a["expr"] and 'service=~"$service"' in a["expr"]
    # the controller exports the counter the annotations read, with those actions
    from chariot_migrate.rollout.cluster import CHANGE_ACTIONS

    assert set(CHANGE_ACTIONS) == actions
    assert exported_metrics()["migration_changes_total"] == {"service", "action"}
