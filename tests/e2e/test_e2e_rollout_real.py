"""The migration plan on the real stacks: the account service goes shadow → 100 % under generated
traffic (bench/load_real.py: many accounts, each with its own API key, through the proxy), driven by
`chariot-migrate rollout account --interval 1` as a subprocess, with a human approval for the last
step and the phase report produced at the end.

The accounts are created in the legacy table (legacy's provisioning helper), so before anything is
shifted the account service gets them by `data backfill account` — the same path a real migration
takes. A test-local routes.yaml keeps the plan windows short.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from guard_harness import ROOT, Stack, StackMode, start_stack, wait_for
from real_stack_kit import cli_env, cm, cm_json, routes_copy, status_of

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SERVICE = "account"
ACCOUNTS = 200
PREFIX = "acct"  # with this prefix 2 emails and 3 key ids of 200 fall in the first 1 % (deterministic)
STEPS = ["shadow", "1", "5", "25", "50", "100"]

PLAN = {
    "services": {SERVICE: {"slo": {"p95_ms": 5000}}},  # a loaded 2-core test box, not production
    "shadow": {"noise_sample_rate": 1.0, "min_samples": 10},
    "plan": {
        "interval_s": 1,
        "gates": {"window_s": 6, "min_samples": 10, "min_pairs": 10, "max_error_rate": 0.02,
                  "min_match_rate": 0.95, "max_latency_ratio": 20, "latency_slack_ms": 1000},
        "services": {SERVICE: {"steps": STEPS, "step_gates": {
            # few accounts are in the first percents: a longer window, fewer samples
            "1": {"window_s": 15, "min_samples": 3}, "5": {"window_s": 10, "min_samples": 5}}}},
    },
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("rollout-real")
    s = start_stack(work, StackMode("rollout-real", services=True), routes=routes_copy(work / "routes.yaml", PLAN))
    try:
        yield s
    finally:
        s.stop()


def load_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.load_real", *args]


def test_account_goes_from_shadow_to_100_percent_under_load(stack, tmp_path):
    keys = tmp_path / "keys.json"
    p = subprocess.run(load_cmd("provision", "--moto", stack.moto, "--accounts", str(ACCOUNTS), "--prefix", PREFIX,
                                "--out", str(keys)), cwd=ROOT, env=cli_env(stack), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert len(json.loads(keys.read_text())) == ACCOUNTS
    # The account service has its own tables: `prepare` copies the new users and keys over (dual
    # write on first) for it and the services sharing its data, so the controller may move it.
    out = cm(stack, "prepare", SERVICE, "integration-hub", "notification", timeout=300).stdout
    assert f"{SERVICE} is prepared" in out
    verified = cm_json(stack, "data", "verify", SERVICE, "--json", state=False)
    assert verified["ok"] and verified["matched"] >= 2 * ACCOUNTS, verified

    load_log = tmp_path / "load.log"
    with open(load_log, "w") as log_file:
        load = subprocess.Popen(load_cmd("run", "--api", stack.api, "--keys", str(keys), "-c", "4", "--report-s", "5"),
                                cwd=ROOT, env=cli_env(stack), stdout=log_file, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    rollout_log = tmp_path / "rollout.log"
    rollout = None
    try:
        time.sleep(2)
        assert load.poll() is None, load_log.read_text()[-2000:]
        with open(rollout_log, "w") as rl:
            rollout = subprocess.Popen([str(Path(sys.executable).parent / "chariot-migrate"), "rollout", SERVICE,
                                        "--interval", "1", "--routes", str(stack.routes), "--state", stack.state_url],
                                       cwd=stack.workdir, env=cli_env(stack), stdout=rl, stderr=subprocess.STDOUT,
                                       text=True, start_new_session=True)

        def at_50() -> bool:
            assert rollout.poll() is None, rollout_log.read_text()[-3000:]
            return status_of(stack, SERVICE)["percent"] == 50.0

        wait_for(at_50, timeout=150, interval=1, what=f"{SERVICE} at 50 %; rollout log:\n"
                                                      + rollout_log.read_text()[-2000:])
        # The last traffic step waits for a human.
        wait_for(lambda: "waiting for approval" in rollout_log.read_text(), timeout=30, interval=1,
                 what="the controller holding for approval")
        assert status_of(stack, SERVICE)["percent"] == 50.0
        cm(stack, "approve", SERVICE, "-m", "e2e: phase 1 evidence reviewed")
        rc = rollout.wait(60)
        assert rc == 0, rollout_log.read_text()[-3000:]
    finally:
        if rollout is not None and rollout.poll() is None:
            rollout.send_signal(signal.SIGTERM)
            rollout.wait(10)
        load.send_signal(signal.SIGTERM)
        load.wait(20)

    log = rollout_log.read_text()
    state = status_of(stack, SERVICE)
    assert (state["stage"], state["percent"]) == ("new", 100.0), (state, log[-2000:])

    # Every step was taken by the controller on evidence, in order, with no rollback; the last one
    # after the approval.
    history = sorted(cm_json(stack, "history", SERVICE, "--json", "-n", "100"), key=lambda h: h["id"])
    assert not any(h["action"].startswith("rollback") for h in history), [h["action"] for h in history]
    steps = [(h["after"].get("shadow_bp"), h["after"].get("percent_bp")) for h in history
             if (h["before"].get("shadow_bp"), h["before"].get("percent_bp"))
             != (h["after"].get("shadow_bp"), h["after"].get("percent_bp"))]
    assert [bp for _, bp in steps] == [0, 100, 500, 2500, 5000, 10000], history
    assert steps[0][0] == 10000  # shadow 100 % first
    movers = {h["actor"] for h in history if h["before"].get("percent_bp") != h["after"].get("percent_bp")}
    assert len(movers) == 1 and all(h["evidence"] for h in history
                                    if h["before"].get("percent_bp") != h["after"].get("percent_bp")), history

    # The generated traffic: many accounts, both sides served, no errors the client saw.
    lines = [json.loads(x) for x in load_log.read_text().splitlines() if x.startswith("{")]
    summary = next(x for x in lines if x["event"] == "load.summary")
    assert summary["errors"] == 0 and set(summary["statuses"]) == {"200"}, (summary, rollout_log.read_text()[-1500:])
    assert summary["sides"].get("new", 0) > 0 and summary["sides"].get("legacy", 0) > 0, summary

    # The phase report: the evidence that phase 1 is done.
    report = tmp_path / "phase-1.md"
    cm(stack, "phase-report", SERVICE, "-o", str(report))
    text = report.read_text()
    assert text.startswith(f"# Phase report: {SERVICE} (phase 1)"), text[:300]
    assert "Step **100**" in text and "noise-adjusted match 100.00%" in text, text[:3000]
    assert "promote → 100" in text and "approve 100" in text  # the step history, approval included
    html = tmp_path / "phase-1.html"
    cm(stack, "phase-report", SERVICE, "--format", "html", "-o", str(html))
    assert "<html" in html.read_text().lower()
