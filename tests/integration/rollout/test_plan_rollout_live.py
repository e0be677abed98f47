"""The migration plan end to end: real echo upstreams, the real proxy process, a background load,
and `chariot-migrate rollout/advance/approve/plan/phase-report/routes export` as subprocesses
sharing the proxy's state store and working directory (so the default metrics and shadow stores
under .chariot-migrate/ are the proxy's). Tiny windows keep it fast.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import Proc, cli
from conftest import eventually as wait_for

from chariot_migrate.rollout.store import open_state_store

pytestmark = pytest.mark.integration

ROUTES = """\
version: 1
bucket_by: [header:account]
legacy: {{invoker: http, url: "{legacy}"}}
services:
  first: {{phase: 1, url: "{new}", slo: {{p95_ms: 1000}}, dual_write: "on"}}
  second: {{phase: 2, url: "{new}", dual_write: "on"}}
routes:
  - {{path: /items, methods: [GET], service: first}}
  - {{path: /other, methods: [GET], service: second}}
shadow:
  noise_sample_rate: 0.2
  min_samples: 10
  rules:
    # what legitimately differs between the two echo processes
    ignore: ["$.side", "$.pid", "$.headers.host", "$.headers.x-migrate-shadow", "header:x-side"]
plan:
  steps: [shadow, 1, 5, 25, 50, 100]
  interval_s: 1
  gates: {{window_s: 4, min_samples: 20, min_pairs: 10, max_error_rate: 0.05, min_match_rate: 0.95,
           max_latency_ratio: 5, latency_slack_ms: 50}}
  step_gates:
    "5": {{window_s: 8, min_samples: 4}}     # 1 % of the accounts sends few requests
    "25": {{min_samples: 8}}
{extra_step_gates}
"""


class Load:
    """Background GETs through the proxy from many accounts; counts answers per side and status."""

    def __init__(self, url: str, path: str = "/items", accounts: int = 1000, pause_s: float = 0.0) -> None:
        self.url, self.path, self.accounts, self.pause_s = url, path, accounts, pause_s
        self.stop = threading.Event()
        self.statuses: dict[tuple[str, int], int] = {}
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(2)]

    def _run(self, k: int) -> None:
        i = k
        with httpx.Client(base_url=self.url, timeout=5) as c:
            while not self.stop.is_set():
                try:
                    r = c.get(self.path, headers={"account": f"user{i % self.accounts}@example.com"})
                    key = (r.headers.get("x-migrate-side", "?"), r.status_code)
                    self.statuses[key] = self.statuses.get(key, 0) + 1
                except httpx.HTTPError:
                    pass
                i += 2
                if self.pause_s:
                    time.sleep(self.pause_s)  # why: paces the load (a request rate, not a wait)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5)


@pytest.fixture
def live(tmp_path, procs, start_proxy):
    """Factory: echo legacy + echo new (with flag files) + proxy on a routes.yaml with the plan."""

    def make(extra_step_gates: str = ""):
        fail, extra = tmp_path / "new-fails", tmp_path / "new-extra"
        legacy = Proc(cli("example-upstream", "legacy", "--port", "0"))
        procs.append(legacy)
        new = Proc(cli("example-upstream", "new", "--port", "0"),
                   env={"ECHO_FAIL_FLAG": str(fail), "ECHO_EXTRA_FLAG": str(extra)})
        procs.append(new)
        legacy.wait_http()
        new.wait_http()
        routes = tmp_path / "routes.yaml"
        routes.write_text(ROUTES.format(legacy=legacy.url, new=new.url, extra_step_gates=extra_step_gates))
        proxy = start_proxy(routes)
        return proxy, routes, fail, extra

    return make


def run(tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """A short CLI command, in-process (the real Typer app, cwd = the proxy's) — a subprocess costs
    ~1 s of interpreter start-up each; the long-running `rollout` controller runs as a subprocess."""
    from typer.testing import CliRunner

    from chariot_migrate.cli.main import app

    with contextlib.chdir(tmp_path):
        res = CliRunner().invoke(app, [*args, "--routes", str(tmp_path / "routes.yaml"), "--state",
                                       state_url(tmp_path)])
    r = subprocess.CompletedProcess(args, res.exit_code, res.stdout, res.stderr)
    if check:
        assert r.returncode == 0, f"{r.stdout}{r.stderr}{res.exception!r}"
    return r


def state_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/state.db"


def start_rollout(tmp_path: Path, service: str, max_ticks: int) -> subprocess.Popen:
    return subprocess.Popen(cli("rollout", service, "--interval", "1", "--max-ticks", str(max_ticks), "--routes",
                                str(tmp_path / "routes.yaml"), "--state", state_url(tmp_path)),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def history(tmp_path: Path, service: str):
    store = open_state_store(state_url(tmp_path))
    try:
        return store.history(service, 500)
    finally:
        store.close()


def percent(tmp_path: Path, service: str) -> float:
    store = open_state_store(state_url(tmp_path))
    try:
        s = store.get(service)
        return s.percent if s else 0.0
    finally:
        store.close()


def finish(p: subprocess.Popen) -> str:
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return out + err


def test_healthy_side_is_promoted_through_every_step_and_the_approval_step_waits(tmp_path, live):
    proxy, routes, _, _ = live('    "100": {approval: true}')
    with Load(proxy.url) as load:
        ctl = start_rollout(tmp_path, "first", max_ticks=80)
        try:
            wait_for(lambda: percent(tmp_path, "first") == 50, 45, "the controller to reach 50 %")
            # 100 % needs a human: the controller holds, and says so in the history
            wait_for(lambda: any("waiting for approval" in h.reason for h in history(tmp_path, "first")), 15,
                     "a recorded approval hold")
            time.sleep(1.5)  # why: "it waits" is an absence: a few controller ticks pass and it must not promote
            assert percent(tmp_path, "first") == 50
            out = run(tmp_path, "plan").stdout
            assert "first" in out and "approval" in out
            run(tmp_path, "approve", "first")
            wait_for(lambda: percent(tmp_path, "first") == 100, 20, "the approved promotion to 100 %")
            assert ctl.wait(15) == 0  # the plan is complete: rollout exits by itself
        finally:
            log = finish(ctl)
    assert load.statuses.get(("new", 200), 0) > 0 and not any(s >= 500 for _, s in load.statuses)
    hist = history(tmp_path, "first")
    promotes = [h.action for h in hist if h.action.startswith("promote")]
    assert promotes == ["promote → shadow", "promote → 1", "promote → 5", "promote → 25", "promote → 50",
                        "promote → 100"], log
    assert all(h.actor == "rollout-controller" for h in hist if h.action.startswith("promote"))
    assert any(h.actor != "rollout-controller" and h.action == "approve 100" for h in hist)
    last = next(h for h in hist if h.action == "promote → 100")
    assert last.evidence["decision"] == "promote" and {c["name"] for c in last.evidence["checks"]} >= {
        "samples", "new-side error rate", "new p95 within SLO", "noise-adjusted match rate"}

    report = run(tmp_path, "phase-report", "first", "--format", "md", "--since", "10m").stdout
    assert "# Phase report: first" in report and "| new |" in report and "promote → 100" in report
    run(tmp_path, "phase-report", "first", "--format", "html", "-o", str(tmp_path / "r.html"), "--since", "10m")
    assert "<svg" in (tmp_path / "r.html").read_text()
    vs = yaml.safe_load(run(tmp_path, "routes", "export", "--format", "istio").stdout)
    http = {h["name"]: h for h in vs["spec"]["http"]}
    first = next(h for n, h in http.items() if n.startswith("first"))
    assert first["route"] == [{"destination": {"host": "first"}, "weight": 100}]
    envoy = json.loads(run(tmp_path, "routes", "export", "--format", "envoy").stdout)
    first_envoy = next(r for r in envoy["virtual_hosts"][0]["routes"] if r["name"].startswith("first"))
    assert first_envoy["route"]["weighted_clusters"]["clusters"] == [
        {"name": "first", "weight": 10000}]


def test_error_jump_at_25_percent_is_rolled_back_within_one_interval(tmp_path, live):
    proxy, routes, fail, _ = live('    "50": {approval: true}')
    run(tmp_path, "shadow", "first", "100")
    run(tmp_path, "shift", "first", "5", "-m", "start the test at 5 %")
    with Load(proxy.url):
        ctl = start_rollout(tmp_path, "first", max_ticks=40)
        try:
            wait_for(lambda: percent(tmp_path, "first") == 25, 30, "the promotion to 25 %")
            wait_for(lambda: any("waiting for approval" in h.reason for h in history(tmp_path, "first")), 15,
                     "the hold before 50 %")
            fail.write_text("boom")
            broke = time.time()
            wait_for(lambda: percent(tmp_path, "first") < 25, 10, "the rollback", interval=0.05)
            took = time.time() - broke
        finally:
            ctl.terminate()
            log = finish(ctl)
    rb = next(h for h in history(tmp_path, "first") if h.action.startswith("rollback"))
    assert rb.action == "rollback → 5%" and rb.actor == "rollout-controller", log
    assert "new-side error rate" in rb.reason and rb.evidence["decision"] == "rollback"
    assert rb.after["percent_bp"] == 500 and rb.after["shadow_bp"] == 10_000
    # errors reach the window at the proxy's next flush (≤ 2 s); the controller acts on its next tick (1 s)
    assert took < 2.0 + 1.0 + 1.5, took
    out = run(tmp_path, "history", "first").stdout
    assert "rollback" in out and "error rate" in out


def test_a_new_mismatch_signature_holds_the_rollout(tmp_path, live):
    proxy, routes, _, extra = live()
    run(tmp_path, "shadow", "first", "100")
    run(tmp_path, "shift", "first", "25")
    extra.write_text("a field legacy never returned")
    with Load(proxy.url) as load:
        # the mismatching copies reach the new side before the controller's first tick
        wait_for(lambda: load.statuses.get(("new", 200), 0) >= 20, what="load on the new side")
        ctl = start_rollout(tmp_path, "first", max_ticks=7)
        log = finish(ctl)
    assert percent(tmp_path, "first") == 25, log
    holds = [h for h in history(tmp_path, "first") if h.action.startswith("hold")]
    assert holds and any("no new mismatch signature" in h.reason and "$.extra" in h.reason for h in holds), log
    assert not [h for h in history(tmp_path, "first") if h.action.startswith(("promote", "rollback"))]


def test_too_few_samples_hold_instead_of_promoting(tmp_path, live):
    proxy, routes, _, _ = live()
    run(tmp_path, "shadow", "first", "100")
    run(tmp_path, "shift", "first", "25")
    with Load(proxy.url, accounts=1000, pause_s=0.25) as load:  # ~8 requests/s, ~2/s on the new side: < 20 in 4 s
        wait_for(lambda: load.statuses, what="the load's first answers")
        log = finish(start_rollout(tmp_path, "first", max_ticks=5))
    assert percent(tmp_path, "first") == 25, log
    holds = [h for h in history(tmp_path, "first") if h.action.startswith("hold")]
    assert len(holds) == 1, log  # recorded once, although the measured count changed every tick
    assert "samples:" in holds[0].reason and "threshold >= 20" in holds[0].reason
    r = run(tmp_path, "advance", "first", check=False)
    assert r.returncode == 3 and "samples" in r.stdout


def test_phase_order_violation_is_refused_without_force(tmp_path):
    (tmp_path / "routes.yaml").write_text(ROUTES.format(legacy="http://127.0.0.1:9", new="http://127.0.0.1:9",
                                                        extra_step_gates=""))
    assert "shadow" in run(tmp_path, "advance", "second").stdout  # shadowing is always allowed
    r = run(tmp_path, "advance", "second", check=False)
    assert r.returncode == 3 and "earlier phase unfinished: first (phase 1) is at 0%" in r.stdout
    r = run(tmp_path, "shift", "second", "5", check=False)
    assert r.returncode == 1 and "cannot leave shadow while an earlier phase is unfinished" in r.stderr
    r = run(tmp_path, "advance", "second", "--force", check=False)
    assert r.returncode == 1 and "--force needs a --reason" in r.stderr
    # forced: the phase order no longer blocks, the gates still do (no traffic here)
    r = run(tmp_path, "advance", "second", "--force", "--reason", "first is blocked on a vendor", check=False)
    assert r.returncode == 3 and "earlier phase" not in r.stdout and "samples" in r.stdout
    run(tmp_path, "shift", "second", "5", "--force", "--reason", "first is blocked on a vendor")
    h = history(tmp_path, "second")[-1]
    assert h.action == "shift (forced)" and h.reason == "first is blocked on a vendor"
    assert percent(tmp_path, "second") == 5
    out = run(tmp_path, "plan").stdout
    assert "first" in out and "second" in out
