from __future__ import annotations

import io
import zipfile
from pathlib import Path

import legacy_testkit
import yaml
from legacy_testkit import Stack

from chariot_migrate.legacy import asset, blobs, functions, report, risk, search

stack, _moto_stack = legacy_testkit.stack, legacy_testkit._moto_stack  # fixtures

ROUTES_YAML = Path(__file__).resolve().parents[3] / "routes.yaml"


def test_every_function_routes_yaml_names_is_deployed_and_matches_the_route_map():
    table = yaml.safe_load(ROUTES_YAML.read_text())
    named = {(m, r["path"]): r["function"] for r in table["routes"] for m in r["methods"] if r.get("function")}
    assert set(named.values()) <= set(functions.FUNCTIONS)
    for (method, path), fn in named.items():
        template = path.replace("{principal}", "{username}")
        if (method, template) in functions.ROUTE_FUNCTIONS:
            assert functions.ROUTE_FUNCTIONS[(method, template)] == fn, (method, path)


def _risks(s: Stack) -> None:
    s.call(asset.handler, "PUT", "/asset", {"group": "r.com", "identifier": "r.com"})
    s.call(risk.handler, "PUT", "/risk", {"key": "#asset#r.com#r.com", "name": "CVE-2024-0001", "status": "TH"})
    s.call(risk.handler, "PUT", "/risk", {"key": "#asset#r.com#r.com", "name": "old issue", "status": "TL"})
    s.call(risk.handler, "PUT", "/risk", {"key": "#risk#r.com#old-issue", "status": "RL"})


def test_export_report_zip_writes_the_file_and_a_passed_job(stack: Stack):
    _risks(stack)
    st, body = stack.call(report.handler, "POST", "/export/report",
                          {"status_filter": ["T", "O"], "export_format": "zip", "config": {"title": "Q3 Findings"}})
    assert st == 200, body
    job = body["job"]
    assert body["key"] == job["key"] and job["status"].startswith("JP#") and job["config"]["risks"] == "1"
    path = job["config"]["output"]
    assert path.startswith("home/reports/q3-findings-") and path.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(blobs.read(stack.user, path))) as z:
        md = z.read("report.md").decode()
    assert "# Q3 Findings" in md and "#risk#r.com#CVE-2024-0001" in md and "old-issue" not in md
    st, found = stack.call(search.handler, "GET", "/my", query={"key": job["key"], "exact": "true"})
    assert [j["key"] for j in found["jobs"]] == [job["key"]]
    st, files = stack.call(search.handler, "GET", "/my", query={"key": f"#file#{path}", "exact": "true"})
    assert files["files"][0]["name"] == path


def test_export_report_pdf_and_bad_input(stack: Stack):
    _risks(stack)
    st, body = stack.call(report.handler, "POST", "/export/report", {"risk_keys": ["#risk#r.com#old-issue"]})
    assert st == 200 and body["job"]["config"]["risks"] == "1"
    data = blobs.read(stack.user, body["job"]["config"]["output"])
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF") and b"old-issue" in data
    for bad in ({"export_format": "docx"}, {"status_filter": ["X"]}, {"config": {"title": ""}}, [1]):
        st, err = stack.call(report.handler, "POST", "/export/report", bad)
        assert st == 400 and err["message"], (bad, err)
