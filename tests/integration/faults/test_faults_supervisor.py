"""The supervisor `up` runs (cli/supervisor.py): its restart decision as a property, and the real
thing on real processes — restart with backoff and one line each time, give up after repeated
quick crashes and say so, never touch the children that keep running."""

from __future__ import annotations

import sys
import time

import pytest
from faults_kit import wait_for
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.cli.supervisor import Child, RestartPolicy, Supervisor, restart_decision

pytestmark = pytest.mark.integration
POLICY = RestartPolicy(base_delay_s=0.05, max_delay_s=0.2, max_crashes=3, stable_s=5)


@given(st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=30))
def test_backoff_grows_is_bounded_and_gives_up_only_on_quick_crashes_in_a_row(run_times):
    policy = RestartPolicy()
    crashes, last_delay = 0, 0.0
    for ran in run_times:
        crashes, delay = restart_decision(policy, crashes, ran)
        quick_streak = crashes  # exits in a row, each within stable_s of its start
        if ran >= policy.stable_s:
            assert crashes == 1 and delay == policy.base_delay_s
        if quick_streak > policy.max_crashes:
            assert delay is None
            break
        assert delay is not None and policy.base_delay_s <= delay <= policy.max_delay_s
        if crashes > 1:
            assert delay >= last_delay
        last_delay = delay


def _child(tmp_path, name: str, code: str) -> Child:
    return Child(name, [sys.executable, "-c", code], {}, tmp_path / "logs")


def test_restarts_a_crashing_child_then_gives_up_and_leaves_the_others_running(tmp_path):
    crasher = _child(tmp_path, "crasher", "import sys; print('{\"ready\": 1}', flush=True); sys.exit(3)")
    steady = _child(tmp_path, "steady", "import time; print('{\"ready\": 1}', flush=True); time.sleep(60)")  # why: stays up
    lines: list[str] = []
    sup = Supervisor([crasher, steady], lines.append, POLICY)
    try:
        for c in (crasher, steady):
            c.start()
        steady_pid = steady.popen.pid
        wait_for(lambda: sup.tick() or crasher.given_up, timeout=20, interval=0.02, what="the supervisor to give up")
        restarts = [ln for ln in lines if "restarting it in" in ln]
        assert len(restarts) == POLICY.max_crashes, lines
        assert all(ln.startswith("crasher exited (exit status 3)") for ln in restarts)
        assert "restarting it in 0.05 s" in restarts[0] and "restarting it in 0.1 s" in restarts[1]
        assert "giving up on it" in lines[-1] and "the rest of the stack keeps running" in lines[-1]
        assert len(lines) == POLICY.max_crashes + 1  # one line per exit, nothing else
        # Given up: no more restarts; the other child was never touched.
        time.sleep(0.3)  # why: "no more restarts" is an absence; past the 0.05-0.1 s backoffs a restart would show
        sup.tick()
        assert len(lines) == POLICY.max_crashes + 1
        assert steady.poll() is None and steady.popen.pid == steady_pid
    finally:
        for c in (crasher, steady):
            c.stop()


def test_a_child_that_ran_long_enough_starts_a_new_streak(tmp_path):
    policy = RestartPolicy(base_delay_s=0.05, max_delay_s=0.2, max_crashes=1, stable_s=0.3)
    flaky = _child(tmp_path, "flaky", "import time; time.sleep(0.5)")  # runs past stable_s, then exits
    lines: list[str] = []
    sup = Supervisor([flaky], lines.append, policy)
    try:
        flaky.start()
        wait_for(lambda: sup.tick() or len(lines) >= 3, timeout=20, interval=0.02, what="three exits")
        assert not flaky.given_up and all("restarting it in 0.05 s" in ln for ln in lines), lines
    finally:
        flaky.stop()
