"""Shadow comparison through the real proxy process, the report CLI, capture and replay."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest
from conftest import cli, eventually

pytestmark = pytest.mark.integration

ROUTES = """\
version: 1
bucket_by: [header:account]
legacy: {{invoker: http, url: "{legacy}"}}
services:
  risk-assessment: {{phase: 3, url: "{new}"}}
shadow:
  noise_sample_rate: 0.3
  min_samples: 30
routes:
  - {{path: /risk, methods: [GET, PUT], service: risk-assessment}}
"""


def run(tmp_path, *args):
    r = subprocess.run(cli(*args), capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_shadow_report_finds_the_real_difference_and_calls_the_rest_noise(tmp_path, start_echo, start_proxy):
    legacy, new = start_echo("legacy"), start_echo("new")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, new=new.url))
    capture = tmp_path / "capture.jsonl"
    proxy = start_proxy(routes)
    run(tmp_path, "shadow", "risk-assessment", "100", "--routes", str(routes), "--state", f"sqlite:///{tmp_path}/state.db")
    # why not a poll: the proxy exposes no applied-state version, and a probe request would itself
    # be shadowed and counted in the pairs asserted below; workers poll the state every 0.5 s
    time.sleep(1.2)
    with httpx.Client(base_url=proxy.url) as c:
        for i in range(200):
            r = c.get("/risk", headers={"account": f"u{i}@x.com"})
            assert r.status_code == 200 and r.json()["side"] == "legacy"  # primary unchanged
        # writes are never shadowed (their comparison is the dual-write replay)
        c.put("/risk", headers={"account": "w@x.com"}, content=b"{}")

    def compared() -> dict | None:  # the engine flushes every 0.5 s: the report fills up
        doc = json.loads(run(tmp_path, "report", "--format", "json", "--routes", str(routes)))
        routes_seen = [r for svc in doc["services"] for r in svc["routes"]]
        return doc if routes_seen and routes_seen[0]["pairs"] >= 195 else None

    doc = eventually(compared, timeout=15, interval=0.3, what="the shadow report to hold the compared pairs")
    (svc,) = doc["services"]
    (route,) = svc["routes"]
    assert 195 <= route["pairs"] <= 200 and route["aa_pairs"] > 20
    by_path = {(s["path"], s["kind"]): s for s in route["signatures"]}
    assert by_path[("$.side", "value")]["classification"] == "difference"
    # the echoed shadow marker differs between primary and any copy, A/A included: noise, unconfigured
    assert by_path[("$.headers.x-migrate-shadow", "extra")]["classification"] == "noise"
    # the copy carries the primary's correlation id (one trace), so it is no difference at all
    assert not any("x-correlation-id" in p for p, _ in by_path)
    assert route["exact_match_rate"] == 0.0

    html = tmp_path / "report.html"
    run(tmp_path, "report", "--format", "html", "-o", str(html), "--routes", str(routes))
    text = html.read_text()
    assert "<svg" in text and "<script src" not in text and "risk-assessment" in text
    md = run(tmp_path, "report", "--format", "md", "--routes", str(routes))
    assert "| " in md and "$.side" in md

    sig = by_path[("$.side", "value")]["signature"]
    run(tmp_path, "diffs", "ignore", sig, "--reason", "side name is expected to differ")
    doc2 = json.loads(run(tmp_path, "report", "--format", "json", "--routes", str(routes)))
    s2 = {s["signature"]: s for s in doc2["services"][0]["routes"][0]["signatures"]}
    assert s2[sig]["ignored"] is True
    assert "side name is expected" in (tmp_path / "shadow-ignores.yaml").read_text()
    _ = capture


def test_capture_then_replay_against_a_new_build(tmp_path, start_echo, start_proxy, procs):
    legacy, new = start_echo("legacy"), start_echo("new")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, new=new.url))
    capture = tmp_path / "capture.jsonl"
    from conftest import Proc

    proxy = Proc(cli("proxy", "--routes", str(routes), "--state", f"sqlite:///{tmp_path}/s.db", "--port", "0",
                     "--admin-port", "0", "--capture", str(capture)), cwd=tmp_path)
    procs.append(proxy)
    proxy.wait_http("/risk")
    for i in range(20):
        httpx.get(proxy.url + "/risk", headers={"account": f"c{i}@x.com", "authorization": "Bearer secret-token-123"})
    eventually(lambda: capture.exists() and len(capture.read_text().splitlines()) >= 20,
               what="the capture file to hold the 20 requests")
    lines = capture.read_text().splitlines()
    assert len(lines) >= 20
    assert "secret-token-123" not in capture.read_text()
    assert json.loads(lines[-1])["side"] == "legacy"
    doc = json.loads(run(tmp_path, "replay", str(capture), "--against", new.url, "--format", "json"))
    route = doc["services"][0]["routes"][0]
    assert route["pairs"] >= 20
    assert any(s["path"] == "$.side" for s in route["signatures"])
