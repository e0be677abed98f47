"""deploy/prometheus: the alert rules (plain file and PrometheusRule) pass `promtool check rules`,
fire on the series they are meant for (`promtool test rules`), only read metrics the code
exports, and the ServiceMonitor/PodMonitor select the objects of deploy/k8s."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import prometheus_tool
from test_deploy_grafana import exported_metrics, metric_names, selectors

from chariot_migrate.proxy.metrics import split_families

REPO = Path(__file__).resolve().parents[3]
PROM = REPO / "deploy" / "prometheus"
RULES = PROM / "rules.yml"
BASE = REPO / "deploy" / "k8s" / "base"


@pytest.fixture(scope="module")
def promtool() -> str:
    return prometheus_tool("promtool")


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_the_plain_rules_file_passes_promtool_check_rules(promtool):
    r = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(rules())} rules found" in r.stdout


def test_the_prometheusrule_holds_the_same_groups_and_passes_promtool(promtool, tmp_path):
    [doc] = docs(PROM / "prometheusrule.yaml")
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"], \
        "prometheusrule.yaml is stale: regenerate it from deploy/prometheus/rules.yml"
    extracted = tmp_path / "from-prometheusrule.yml"
    extracted.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
    r = subprocess.run([promtool, "check", "rules", str(extracted)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_check_rules_rejects_a_broken_rule(promtool, tmp_path):
    # Guards the guard: a bad expression must fail, or the checks above prove nothing.
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [{"alert": "A", "expr": "sum(rate(x[5m])"}]}]}))
    r = subprocess.run([promtool, "check", "rules", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0


UNIT_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # two proxy replicas sample the same shared outbox: 3 dead letters, not 6
      - series: 'dual_write_dead_letters{{service="account",direction="to_new",pod="a"}}'
        values: '0 3 3 3 3'
      - series: 'dual_write_dead_letters{{service="account",direction="to_new",pod="b"}}'
        values: '0 3 3 3 3'
      # the new side: 100 requests/min of which 10 fail; legacy healthy
      - series: 'http_request_duration_seconds_count{{service="risk",side="new",status_code="500"}}'
        values: '0+10x20'
      - series: 'http_request_duration_seconds_count{{service="risk",side="new",status_code="200"}}'
        values: '0+90x20'
      # a healthy service: no alert
      - series: 'http_request_duration_seconds_count{{service="account",side="new",status_code="200"}}'
        values: '0+100x20'
    alert_rule_test:
      - eval_time: 3m
        alertname: ChariotMigrateDeadLetters
        exp_alerts:
          - exp_labels: {{severity: critical, service: account, direction: to_new}}
            exp_annotations:
              summary: "account: 3 dual-write replays dead-lettered (to_new)"
              description: "Writes that did not reach the other side: `chariot-migrate dual-write dead --service account`, fix, then retry them. A rollback would lose them until then."
      - eval_time: 12m
        alertname: ChariotMigrateNewSideErrorRateHigh
        exp_alerts:
          - exp_labels: {{severity: critical, service: risk}}
            exp_annotations:
              summary: "risk: new side answers more than 1 % 5xx"
              description: "risk's new side failed 10% of its requests over 5 minutes. The rollout controller rolls back on its own gate; run `chariot-migrate rollback risk` if it is not running."
      - eval_time: 3m
        alertname: ChariotMigrateNewSideErrorRateHigh
        exp_alerts: []
"""


def test_the_alerts_fire_on_the_series_they_are_for(promtool, tmp_path):
    t = tmp_path / "rules_test.yml"
    t.write_text(UNIT_TESTS.format(rules=RULES))
    r = subprocess.run([promtool, "test", "rules", str(t)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_metric_a_rule_reads_is_exported_with_those_labels():
    known = exported_metrics()
    for fam in split_families({}):
        known[fam.name] = {"service", "stage"}
    for rule in rules():
        for name in metric_names(rule["expr"]):
            assert name in known, f"{rule['alert']}: {name} is not a metric the code exports"
        for name, labels in selectors(rule["expr"]):
            assert labels <= known[name], f"{rule['alert']}: {name} has no label(s) {labels - known[name]}"
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_servicemonitor_and_podmonitor_select_the_proxy_admin_port_and_the_services():
    objs = {d["kind"]: d for d in docs(PROM / "servicemonitor.yaml")}
    sm, pm = objs["ServiceMonitor"], objs["PodMonitor"]
    k8s = [d for p in [BASE / "proxy.yaml", *sorted((BASE / "services").glob("*.yaml"))] for d in docs(p)]
    want = sm["spec"]["selector"]["matchLabels"]
    services = [o for o in k8s if o["kind"] == "Service" and want.items() <= o["metadata"]["labels"].items()]
    assert "proxy-admin" in {s["metadata"]["name"] for s in services}
    admin = next(s for s in services if s["metadata"]["name"] == "proxy-admin")
    assert sm["spec"]["endpoints"][0]["port"] == "admin" in {p["name"] for p in admin["spec"]["ports"]}
    assert sm["spec"]["endpoints"][0]["authorization"]["credentials"] == {"name": "chariot-migrate-auth",
                                                                          "key": "admin-token"}
    want = pm["spec"]["selector"]["matchLabels"]
    pods = {o["metadata"]["name"]: o["spec"]["template"] for o in k8s if o["kind"] == "Deployment"
            and want.items() <= o["spec"]["template"]["metadata"]["labels"].items()}
    assert len(pods) == 8 and "proxy" not in pods
    for name, tpl in pods.items():
        assert pm["spec"]["podMetricsEndpoints"][0]["port"] in {p["name"] for c in tpl["spec"]["containers"]
                                                                for p in c.get("ports", [])}, name
