"""The benchmark harness end to end, on real processes: a tiny run, an interrupted run, the loader."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.loadgen import run_load_blocking
from bench.scenarios import FEATURE_SCENARIOS, GOALS, all_scenarios

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.integration


def _bench_env(tmp_path: Path) -> dict[str, str]:
    # TMPDIR: the harness's work dir (process logs, routes.yaml, state) lands under tmp_path, so
    # leftover processes can be found by their command lines.
    return {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}


def _leftovers(marker: str) -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            found.append(f"{entry.name}: {cmd[:200]}")
    return found


def _wait_no_leftovers(marker: str, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _leftovers(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)  # why: a poll's interval; the caller asserts on the leftovers returned
    return left


def test_smoke_run_measures_every_scenario_and_stops_everything(tmp_path):
    out = tmp_path / "latest.json"
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)], cwd=ROOT,
                          env=_bench_env(tmp_path), capture_output=True, text=True,
                          timeout=120)  # a hang guard: every scenario runs, granian proxies included
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())

    wired = [s.name for s in all_scenarios() if s.wired]
    by = {s["name"]: s for s in doc["scenarios"]}
    assert sorted(by) == sorted(wired)
    for name in wired:
        assert by[name]["rps"] > 0, name
        assert by[name]["errors"] == 0, (name, by[name])
        assert by[name]["p50_us"] <= by[name]["p95_us"] <= by[name]["p99_us"]
        assert by[name]["cpu_us_per_req"] > 0, name
    # The services-SLA and data groups (a whole stack; 10 k–100 k rows) only run in full
    # `make bench`: listed as skipped here.
    skipped = {s["name"] for s in doc["skipped"]} - {"services-sla", "data"}
    assert {"services-sla", "data"} <= {s["name"] for s in doc["skipped"]}
    assert skipped == {s.name for s in FEATURE_SCENARIOS if not s.wired}
    # The run says where and what it measured.
    assert len(doc["git_commit"]) == 40 and doc["date"] and doc["machine"]["cores"] >= 1
    assert doc["loader"].split()[0] in ("wrk", "builtin")
    assert {g["name"] for g in doc["goals"]} == {g.name for g in GOALS}
    assert all(g["value"] is not None for g in doc["goals"])
    # Bucketing really split the traffic, metrics and access logs were on, shadow copies were made.
    for key, sides in doc["checks"].items():
        if key.startswith("bucketing_"):
            assert sides["legacy"] > 0 and sides["new"] > 0, key
    assert doc["checks"]["proxy_log_lines"]["routing_w1"] >= by["proxy-w1-c50"]["requests"]
    counters = doc["checks"]["proxy_counters"]
    assert counters["routing_w2"]["proxy_requests_total"] >= by["proxy-w2-c50"]["requests"]
    # The table was printed with the ratios.
    assert "proxy-w2-c50" in proc.stdout and "vs bare" in proc.stdout
    assert _wait_no_leftovers(str(tmp_path)) == []
    blind = sorted(k for k, v in counters.items() if not v.get("proxy_requests_total"))
    assert not blind, f"no request metrics on the admin port for {blind}"
    assert counters["routing_w1"]["proxy_requests_total"] >= by["proxy-w1-c50"]["requests"]
    if "shadow100_w1" in counters:
        assert counters["shadow100_w1"].get("shadow_submitted", 0) > 0
    if "dualwrite_w1" in counters:
        assert counters["dualwrite_w1"].get("dual_write_appended", 0) > 0


def test_interrupted_run_stops_every_process(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "bench.run", "--smoke", "--out", str(tmp_path / "x.json"),
                             "--only", "direct-c50", "proxy-w1-c50"],
                            cwd=ROOT, env=_bench_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # interrupt once everything is up and load is running
            if "round 1" in line:
                break
        else:
            pytest.fail(f"bench ended before loading: exit {proc.wait()}")
        assert _leftovers(str(tmp_path)), "expected the servers to be running"
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        assert proc.wait(30) == 130, rest
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "interrupted" in rest
    assert _wait_no_leftovers(str(tmp_path)) == []
    assert not (tmp_path / "x.json").exists()


def test_builtin_loader_against_a_real_upstream(start_echo):
    echo = start_echo("bench-loader")
    r = run_load_blocking(echo.url + "/bench/1", 4, 0.5, write_share=0.5)
    assert r.requests > 0 and r.errors == 0 and r.non2xx == 0
    assert 0 < r.p50_us <= r.p95_us <= r.p99_us


def test_builtin_loader_counts_failures(start_echo):
    echo = start_echo("bench-loader-503")
    # Non-2xx answers count as errors (like wrk's status errors); so do refused connections.
    failing = run_load_blocking(echo.url + "/bench/1", 2, 0.3, headers={"x-echo-status": "503"})
    assert failing.requests > 0 and failing.non2xx == failing.requests == failing.errors
    refused = run_load_blocking("http://127.0.0.1:9/", 2, 0.3)  # discard port: nothing listens
    assert refused.requests == 0 and refused.errors > 0
