"""The controller as a cluster workload: two real `chariot-migrate controller` processes on the
real Redis. Exactly one acts; the other is a ready standby. SIGKILL of the leader: the standby
takes over within the lease and carries on from the same history (no step taken twice). What an
operator records in separate CLI processes (`approve`; `data backfill` and `data verify` against a
real moto server) is seen by the controller process through the Redis state store alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from conftest import Proc, cli
from conftest import eventually as wait_for

from chariot_migrate.rollout.store import open_state_store
from chariot_migrate.rollout.windows import RedisWindowStore, SideStats, bucket_of

pytestmark = pytest.mark.integration

LEASE_MS = 2000

ROUTES = """\
version: 1
bucket_by: [header:account]
legacy: {invoker: http, url: "http://127.0.0.1:9"}
services:
  svc: {phase: 1, url: "http://127.0.0.1:9", percent: 1, dual_write: "on", slo: {p95_ms: 1000}}
routes:
  - {path: /items, methods: [GET], service: svc}
plan:
  steps: [1, 5, 25, 50, 100]
  interval_s: 0.5
  gates: {window_s: 600, min_samples: 5, min_match_rate: null, max_latency_ratio: null,
          no_new_signatures: false, require_verify_clean: true}
  step_gates:
    "50": {approval: true}
"""


@pytest.fixture
def env(tmp_path):
    prefix = f"test-ctl-{uuid.uuid4().hex[:10]}:"
    state = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    metrics = f"redis://127.0.0.1:6379/0?prefix={prefix}m:"
    (tmp_path / "routes.yaml").write_text(ROUTES)
    yield {"tmp": tmp_path, "state": state, "metrics": metrics, "prefix": prefix,
           "env": {"CHARIOT_MIGRATE_STATE_DIR": str(tmp_path / "sd"), "REDIS_NAMESPACE": ""}}
    r = redis.Redis()
    for k in r.scan_iter(prefix + "*"):
        r.delete(k)


class Traffic:
    """Healthy new-side request windows, as proxies would flush them, every 0.2 s."""

    def __init__(self, url: str) -> None:
        self.store, self.stop = RedisWindowStore(url), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            now = int(time.time())
            self.store.add({("svc", "new", now): SideStats(4, 0, {bucket_of(5): 4}),
                            ("svc", "legacy", now): SideStats(4, 0, {bucket_of(5): 4})})
            self.stop.wait(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)


def controller(env, name: str, procs) -> Proc:
    p = Proc(cli("controller", "svc", "--identity", name, "--lease-ms", str(LEASE_MS), "--health-port", "0",
                 "--routes", str(env["tmp"] / "routes.yaml"), "--state", env["state"],
                 "--metrics-store", env["metrics"]), cwd=env["tmp"], env=env["env"])
    procs.append(p)
    return p


def ready(p: Proc) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{p.port}/ready", timeout=2)


def history(env):
    s = open_state_store(env["state"])
    try:
        return s.history("svc", 1000)
    finally:
        s.close()


def percent(env) -> float:
    s = open_state_store(env["state"])
    try:
        st = s.get("svc")
        return st.percent if st else 1.0
    finally:
        s.close()


def test_two_controllers_one_acts_the_standby_takes_over_after_sigkill_and_no_step_is_taken_twice(env, procs):
    with Traffic(env["metrics"]):
        a = controller(env, "ctl-a", procs)
        wait_for(lambda: ready(a).json()["role"] == "leader", 10, "ctl-a to lead")
        b = controller(env, "ctl-b", procs)
        rb = ready(b)
        assert rb.status_code == 200 and rb.json()["role"] == "standby"  # ready to take over
        assert httpx.get(f"http://127.0.0.1:{b.port}/healthz").status_code == 200

        # No verify result yet: the leader holds (require_verify_clean) and records why, once.
        wait_for(lambda: any(h.action.startswith("hold") for h in history(env)), 10, "a hold for the verify gate")
        assert percent(env) == 1.0
        # A data-verify result written by another process into the Redis state store reaches the gate.
        code = ("from chariot_migrate.rollout.evidence import write_record; import sys, time; "
                "write_record('verify', 'svc', {'ok': True, 'at': time.time()}, sys.argv[1])")
        subprocess.run([sys.executable, "-c", code, env["state"]], check=True, env={**env["env"], "PATH": ""})
        wait_for(lambda: percent(env) == 25.0, 20, "the leader to promote to 25 %")
        time.sleep(1.5)  # why: the 50 % step waits for an approval; not promoting is an absence, ticks must pass
        assert percent(env) == 25.0

        a.stop(signal.SIGKILL, timeout=5)
        killed = time.time()
        wait_for(lambda: ready(b).json()["role"] == "leader", LEASE_MS / 1000 + 2, "ctl-b to take over")
        took_over = time.time() - killed
        assert took_over <= LEASE_MS / 1000 + 1.0, took_over

        # An approval recorded by a separate CLI process; the new leader takes the step, then the last.
        r = subprocess.run(cli("approve", "svc", "--routes", str(env["tmp"] / "routes.yaml"), "--state", env["state"]),
                           cwd=env["tmp"], env={**os.environ, **env["env"]}, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: percent(env) == 100.0, 20, "ctl-b to finish the plan")

        metrics = httpx.get(f"http://127.0.0.1:{b.port}/metrics").text
    hist = history(env)
    acted = [h for h in hist if h.actor == "rollout-controller"]
    steps = [(h.before["percent_bp"], h.after["percent_bp"]) for h in acted if h.before["percent_bp"] != h.after["percent_bp"]]
    assert steps == [(100, 500), (500, 2500), (2500, 5000), (5000, 10000)]  # each step once, in order
    leaders = [h.evidence["leader"] for h in acted]
    assert set(leaders) == {"ctl-a", "ctl-b"}
    switch = leaders.index("ctl-b")
    assert all(x == "ctl-a" for x in leaders[:switch]) and all(x == "ctl-b" for x in leaders[switch:])
    terms = [h.evidence["term"] for h in acted]
    assert terms[0] < terms[-1]  # the new leader acts in a later term
    assert 'migration_changes_total{action="shift",service="svc"} 4.0' in metrics
    assert 'migration_changes_total{action="approve",service="svc"} 1.0' in metrics
    assert "migration_controller_leader 1.0" in metrics


def test_a_stopped_leader_steps_down_at_once_and_sqlite_is_refused(env, procs):
    a = controller(env, "ctl-a", procs)
    wait_for(lambda: ready(a).json()["role"] == "leader", 10, "ctl-a to lead")
    key = f"{env['prefix']}{{lease:controller}}"
    assert redis.Redis().get(key).decode().endswith("|ctl-a")
    assert a.stop(signal.SIGTERM) == 0
    assert redis.Redis().get(key) is None  # released: a standby need not wait out the lease
    r = subprocess.run(cli("controller", "--routes", str(env["tmp"] / "routes.yaml"), "--state",
                           f"sqlite:///{env['tmp']}/s.db"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "needs a Redis state store" in r.stderr and "Traceback" not in r.stderr


DATA_ROUTES = """\
version: 1
bucket_by: [header:account]
legacy: {{invoker: http, url: "http://127.0.0.1:9", table: "legacy-{suffix}", region: us-east-1}}
services:
  svc: {{phase: 1, url: "http://127.0.0.1:9", percent: 1, dual_write: "on", slo: {{p95_ms: 1000}},
         migration: "cluster_widgets:MIGRATION"}}
routes:
  - {{path: /items, methods: [GET], service: svc}}
plan:
  steps: [1, 5, 25]
  interval_s: 0.5
  gates: {{window_s: 600, min_samples: 5, min_match_rate: null, max_latency_ratio: null,
           no_new_signatures: false}}   # the safety rule alone needs the backfill and verify records
"""


@pytest.fixture
def moto_tables():
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    suffix = uuid.uuid4().hex[:8]
    ddb = boto3.resource("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                         aws_secret_access_key="x")
    for name, h, r in ((f"legacy-{suffix}", "username", "key"), (f"widgets-{suffix}", "owner", "widget_id")):
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": h, "KeyType": "HASH"}, {"AttributeName": r, "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": h, "AttributeType": "S"},
                                               {"AttributeName": r, "AttributeType": "S"}])
    legacy = ddb.Table(f"legacy-{suffix}")
    for i in range(3):
        legacy.put_item(Item={"username": "a@x.com", "key": f"#widget#w{i}", "name": f"widget {i}"})
    yield endpoint, suffix
    srv.stop()


def test_backfill_and_verify_recorded_by_cli_commands_reach_the_controller_process(env, moto_tables, procs):
    """The safety rule holds the controller (not prepared: no backfill, no verify); `data backfill`
    and `data verify`, separate CLI processes, record their results in the Redis state store; the
    controller process sees them there (no shared files: its state dir is its own) and promotes."""
    endpoint, suffix = moto_tables
    (env["tmp"] / "routes.yaml").write_text(DATA_ROUTES.format(suffix=suffix))
    here = str(Path(__file__).resolve().parent)
    common = {"PYTHONPATH": here, "CLUSTER_WIDGETS_SUFFIX": suffix, "AWS_ACCESS_KEY_ID": "x",
              "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    ctl_env = {**env["env"], **common, "CHARIOT_MIGRATE_STATE_DIR": str(env["tmp"] / "controller-dir")}
    laptop = {**os.environ, **env["env"], **common, "CHARIOT_MIGRATE_STATE_DIR": str(env["tmp"] / "laptop-dir")}
    with Traffic(env["metrics"]):
        a = Proc(cli("controller", "--identity", "ctl-a", "--lease-ms", str(LEASE_MS), "--health-port", "0",
                     "--routes", str(env["tmp"] / "routes.yaml"), "--state", env["state"],
                     "--metrics-store", env["metrics"]), cwd=env["tmp"], env=ctl_env)
        procs.append(a)
        held = wait_for(lambda: [h for h in history(env) if h.action.startswith("hold")], 15, "a hold")
        assert "not prepared" in held[0].reason and "backfill" in held[0].reason, held[0].reason
        time.sleep(1.0)  # why: "still held" is an absence: more ticks pass and the step must not be taken
        assert percent(env) == 1.0
        for cmd in (["data", "backfill", "svc"], ["data", "verify", "svc"]):
            r = subprocess.run(cli(*cmd, "--endpoint-url", endpoint, "--routes", str(env["tmp"] / "routes.yaml"),
                                   "--state", env["state"]), cwd=env["tmp"], env=laptop, capture_output=True,
                               text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: percent(env) == 25.0, 20, "the controller to promote once prepared")
    assert not (env["tmp"] / "laptop-dir" / "verify").exists()  # in the store, not in files
    s = open_state_store(env["state"])
    try:
        assert s.get_record("verify", "svc")["ok"] is True and s.get_record("backfill", "svc")["written"] == 3
    finally:
        s.close()


def test_a_leader_that_stops_renewing_is_replaced_and_never_acts_again(env, procs):
    """SIGSTOP (a long pause: GC, a frozen node) instead of a kill: the standby takes over within
    the lease; when the old leader wakes up it finds its term over and only watches."""
    with Traffic(env["metrics"]):
        a = controller(env, "ctl-a", procs)
        wait_for(lambda: ready(a).json()["role"] == "leader", 10, "ctl-a to lead")
        b = controller(env, "ctl-b", procs)
        wait_for(lambda: any(h.action.startswith("hold") for h in history(env)), 10, "ctl-a to act")
        os.killpg(a.popen.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: ready(b).json()["role"] == "leader", LEASE_MS / 1000 + 2, "ctl-b to take over")
        finally:
            os.killpg(a.popen.pid, signal.SIGCONT)
        took_over = len(history(env))
        code = ("from chariot_migrate.rollout.evidence import write_record; import sys, time; "
                "write_record('verify', 'svc', {'ok': True, 'at': time.time()}, sys.argv[1])")
        subprocess.run([sys.executable, "-c", code, env["state"]], check=True)
        wait_for(lambda: percent(env) == 25.0, 20, "ctl-b to promote")
        assert wait_for(lambda: ready(a).json()["role"] == "standby", 5, "ctl-a to know it was deposed")
    after = history(env)[took_over:]
    assert after and {h.evidence["leader"] for h in after} == {"ctl-b"}
