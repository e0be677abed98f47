"""``POST /export/report`` answers alike on legacy's report function and the reporting service:
the same 400s (formats pdf|zip only, risk states, title, body shape), and for a good request the
same answer ``{"key": "#job#<id>#system#report", "job": {... JP ...}}`` with the file already
written, the job readable with ``GET /my?key=<job key>`` and the report text the same."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
import svc_c_testkit as kit
from hypothesis import given
from hypothesis import strategies as st
from svc_c_testkit import Stack, assert_same, call_service, normalize, parity

from chariot_migrate.legacy import asset, blobs, report, risk, search, store
from chariot_migrate.model import report as rules
from chariot_migrate.services.kit.events import Event
from chariot_migrate.services.reporting.app import ReportingSettings, create_app

stack, _moto_stack = kit.stack, kit._moto_stack


@pytest.fixture
def svc(stack: Stack):
    with kit.service(create_app, settings=ReportingSettings.from_env("reporting")) as client:
        yield client


def _risks(s: Stack, svc) -> None:
    """The same risks on both sides: legacy rows through its risk function, the service's read model
    through the events the risk-assessment service publishes."""
    s.call(asset.handler, "PUT", "/asset", {"group": "x.com", "identifier": "x.com"})
    for name, status in (("cve-a", "TH"), ("cve-b", "TL"), ("cve-c", "TM")):
        assert s.call(risk.handler, "PUT", "/risk", {"key": "#asset#x.com#x.com", "name": name, "status": status})[0] == 200
    assert s.call(risk.handler, "PUT", "/risk", {"key": "#risk#x.com#cve-c", "status": "RM"})[0] == 200
    for row in store.query_all(s.user, "#risk#"):
        data = {k: row[k] for k in ("key", "dns", "name", "status") if k in row}
        svc.portal.call(svc.app.state.apply_event, Event.new("risk.assessed", s.user, data))


def _without_id(body: Any) -> Any:
    """The answer with its job id (uuid, and its first 8 characters in the path) made neutral."""
    job_id = body["job"]["id"]
    return normalize(_replace_id(body, job_id))


def _replace_id(value: Any, job_id: str) -> Any:
    if isinstance(value, str):
        return value.replace(job_id, "<id>").replace(job_id[:8], "<id8>")
    if isinstance(value, dict):
        return {k: _replace_id(v, job_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_id(v, job_id) for v in value]
    return value


@pytest.mark.parametrize("bad", [{"export_format": "docx"}, {"export_format": "md"}, {"export_format": "json"},
                                 {"status_filter": ["X"]}, {"status_filter": ["OH"]}, {"config": {"title": ""}},
                                 {"config": {"title": "t" * 201}}, {"risk_keys": "nope"}, [1], "not json", ""])
def test_bad_requests_answer_alike(stack: Stack, svc, bad):
    (status, body), _ = parity(svc, stack, report.handler, "POST", "/export/report", bad)
    assert_same(parity(svc, stack, report.handler, "POST", "/export/report", bad))
    assert status == 400 and body["message"]


@pytest.mark.parametrize("fmt", ["zip", "pdf"])
def test_export_answers_alike_and_the_job_is_readable(stack: Stack, svc, fmt):
    _risks(stack, svc)
    request = {"status_filter": ["O", "T"], "export_format": fmt, "customer_email": stack.user,
               "group_by": "attack_surface", "config": {"title": "Q3 Findings", "client_name": "Example Co",
                                                        "draft": False}}
    (ls, lb), (ns, nb) = parity(svc, stack, report.handler, "POST", "/export/report", request)
    assert ls == ns == 200
    assert _without_id(lb) == _without_id(nb)
    assert rules.is_job_key(nb["key"]) and nb["job"]["status"].startswith("JP#")
    assert nb["job"]["config"]["risks"] == "2" and nb["job"]["config"]["output"].endswith(f".{fmt}")
    # the job is readable where the client polls it (GET /my?key=<job key>), already passed
    legacy_found = stack.call(search.handler, "GET", "/my", query={"key": lb["key"]})
    new_found = call_service(svc, stack, "GET", "/my", query={"key": nb["key"]})
    assert legacy_found[0] == new_found[0] == 200
    assert _without_id({"job": legacy_found[1]["jobs"][0]}) == _without_id({"job": new_found[1]["jobs"][0]})
    # the file exists on both sides, with the same report text
    legacy_blob = blobs.read(stack.user, lb["job"]["config"]["output"])
    new_blob = svc.app.state.blobs.read(stack.user, nb["job"]["config"]["output"])
    file_status, _ = call_service(svc, stack, "GET", "/file", query={"name": nb["job"]["config"]["output"]})
    assert file_status == 200
    if fmt == "pdf":
        assert legacy_blob == new_blob and new_blob.startswith(b"%PDF-1.4") and b"cve-a" in new_blob
    else:
        texts = []
        for blob in (legacy_blob, new_blob):
            with zipfile.ZipFile(io.BytesIO(blob)) as z:
                texts.append(z.read("report.md").decode())
        assert texts[0] == texts[1] and "# Q3 Findings" in texts[1] and "- key: #risk#x.com#cve-b" in texts[1]


def test_replay_adopts_the_primary_job_id(stack: Stack, svc):
    """A dual-write replay of legacy's answer keeps legacy's job id (so both stores hold one job)."""
    primary = "0f0e0d0c-0000-4000-8000-000000000001"
    assert rules.adopted_job_id({"key": rules.job_key(primary), "job": {}}) == primary
    assert rules.adopted_job_id({"id": primary}) == primary
    assert rules.adopted_job_id({"key": "#job#a.com#a.com#nuclei"}) is None and rules.adopted_job_id(None) is None
    assert rules.output_path("Q3 Findings!", primary, "zip") == "home/reports/q3-findings-0f0e0d0c.zip"


@given(st.text(min_size=1).filter(lambda s: "#" not in s))
def test_job_key_round_trip(job_id):
    key = rules.job_key(job_id)
    assert rules.is_job_key(key) and rules.adopted_job_id({"key": key}) == job_id
    assert not rules.is_job_key(f"#job#{job_id}#x#system#report")
