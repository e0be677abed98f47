"""SIGTERM drains a service: a request in flight when the signal arrives is answered in full, new
connections are refused from then on, what the request queued is flushed, and the process exits 0
within seconds (what a Kubernetes rolling update needs: no dropped request, no lost work).

Real parts only: `chariot-migrate service run` processes, a moto server, Redis Streams. The slow
request is honest: the service's AWS endpoint is a relay that holds moto's answers.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest
import redis
import svc_c_procs
from chariot_services_procs import REDIS_URL, ROOT, bearer, clean_redis, moto_estate, service_env
from conftest import Proc, cli, eventually
from slow_relay import SlowRelay

pytestmark = pytest.mark.integration

HOLD_S = 1.5  # each DynamoDB answer the relay holds while a request is in flight


@pytest.fixture(scope="module")
def estate():
    with moto_estate() as e:
        yield e


@pytest.fixture
def relay(estate):
    host, _, port = estate["endpoint"].removeprefix("http://").partition(":")
    r = SlowRelay(host, int(port))
    yield r
    r.close()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_answers_the_request_in_flight_then_exits_0(estate, relay):
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    owner = f"o{uuid.uuid4().hex[:6]}@example.com"
    proc = Proc(cli("service", "run", "configuration", "--port", "0", "--routes", str(ROOT / "routes.yaml")),
                env=service_env(estate, prefix, AWS_ENDPOINT_URL=relay.url))
    try:
        proc.wait_http("/health")
        with httpx.Client(base_url=proc.url, timeout=30) as http:
            assert http.get("/ready").status_code == 200  # tables made, signing key loaded (fast relay)
        relay.delay_s = HOLD_S

        def put_setting() -> tuple[httpx.Response, float]:
            with httpx.Client(base_url=proc.url, timeout=30) as http:
                r = http.put("/setting", json={"name": "drain", "value": "kept"}, headers=bearer(estate["key"], owner))
                return r, time.monotonic()

        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(put_setting)
            assert relay.holding.wait(10), "the request never reached DynamoDB"
            sigterm_at = time.monotonic()
            proc.popen.send_signal(signal.SIGTERM)
            # From now on nothing new gets in, while the old request is still being served.
            deadline = sigterm_at + 1.0
            while not _refused(proc.port) and time.monotonic() < deadline:
                time.sleep(0.05)  # why: a poll bounded by the 1 s the refusal is allowed to take
            refused_at = time.monotonic()
            assert _refused(proc.port), "still accepting connections a second after SIGTERM"
            assert not in_flight.done(), "the request finished before the test could check new connections"
            response, answered_at = in_flight.result(timeout=30)

        # The client got the whole, correct answer after the signal (not a reset, not a 503).
        assert response.status_code == 200, response.text
        assert response.json()["key"] == "#setting#drain" and response.json()["value"] == "kept"
        assert answered_at - sigterm_at > 0.5 and refused_at < answered_at
        rc = proc.popen.wait(timeout=10)
        exited_at = time.monotonic()
        assert rc == 0, f"exit code {rc}: {''.join(proc.stderr_lines)[-2000:]}"
        assert exited_at - sigterm_at < HOLD_S * 4 + 3, exited_at - sigterm_at

        # What the request did is durable, and its event left before the process did.
        relay.delay_s = 0
        ddb = boto3.resource("dynamodb", endpoint_url=estate["endpoint"], region_name="us-east-1")
        table = next(t for t in ddb.tables.all() if t.name.startswith(prefix))
        assert table.get_item(Key={"username": owner, "key": "#setting#drain"})["Item"]["value"] == "kept"
        rds = redis.Redis.from_url(REDIS_URL)
        try:
            events = [json.loads(f[b"event"]) for _, f in rds.xrange(f"{prefix}chariot:events:config.changed")]
        finally:
            rds.close()
        assert [(e["account"], e["data"]["name"], e["data"].get("value")) for e in events] == [(owner, "drain", "kept")]
    finally:
        proc.stop()
        clean_redis(prefix)


def test_sigterm_finishes_the_jobs_already_queued(estate, relay, procs):
    """POST /job answers once the job is queued; the saga runs in the background. A SIGTERM right
    after the answer must not strand it: the job runs to its end before the process exits."""
    from chariot_migrate.model.capabilities import open_ports

    prefix = f"it{uuid.uuid4().hex[:8]}-"
    names = ("asset-discovery", "risk-assessment", "capabilities")
    ports = svc_c_procs.listeners(names)
    url = svc_c_procs.urls(ports)
    try:
        started = svc_c_procs.start_all({
            "asset-discovery": {},
            "risk-assessment": {"CHARIOT_RISK_ASSESSMENT_ASSET_DISCOVERY_URL": url["asset-discovery"]},
            # Only capabilities' own DynamoDB calls go through the relay (slow once the job is queued).
            "capabilities": {"CHARIOT_CAPABILITIES_ASSET_URL": url["asset-discovery"],
                             "CHARIOT_CAPABILITIES_RISK_URL": url["risk-assessment"], "AWS_ENDPOINT_URL": relay.url},
        }, service_env(estate, prefix), ports)
        procs.extend(started.values())
        caps = started["capabilities"]
        user = f"u{uuid.uuid4().hex[:8]}@example.com"
        name = next(f"h{i}.drain.com" for i in range(100) if open_ports(f"h{i}.drain.com"))
        key = f"#asset#drain.com#{name}"
        with httpx.Client(headers=bearer(estate["key"], user), timeout=30) as http:
            eventually(lambda: http.get(caps.url + "/ready").status_code == 200, timeout=20, what="capabilities /ready")
            assert http.put(url["asset-discovery"] + "/asset", json={"group": "drain.com", "identifier": name}
                            ).status_code == 200
            relay.delay_s = 0.3
            queued = http.post(caps.url + "/job", json={"key": key, "capabilities": ["portscan"]})
        assert queued.status_code == 200 and queued.json()[0]["status"].startswith("JQ#"), queued.text
        job_key = queued.json()[0]["key"]
        caps.popen.send_signal(signal.SIGTERM)
        sigterm_at = time.monotonic()

        jobs = boto3.resource("dynamodb", endpoint_url=estate["endpoint"], region_name="us-east-1").Table(
            f"{prefix}capabilities-jobs")

        def status() -> str:
            return jobs.get_item(Key={"username": user, "key": job_key}).get("Item", {}).get("status", "")

        assert status()[:2] in ("JQ", "JR"), status()  # still to do when the signal arrived
        rc = caps.popen.wait(timeout=30)
        assert rc == 0, f"exit code {rc}: {''.join(caps.stderr_lines)[-2000:]}"
        assert time.monotonic() - sigterm_at < 25
        assert status().startswith("JP#"), status()  # passed: started, ran, results applied, finished
        rds = redis.Redis.from_url(REDIS_URL)
        try:
            done = [json.loads(f[b"event"]) for _, f in rds.xrange(f"{prefix}chariot:events:job.completed")]
        finally:
            rds.close()
        assert [(e["data"]["key"], e["data"]["status"][:2]) for e in done] == [(job_key, "JP")]
        with httpx.Client(headers=bearer(estate["key"], user), timeout=30) as http:
            attrs = http.post(url["asset-discovery"] + "/my", json={"node": {"labels": ["Attribute"]}}).json()
        assert sorted(a["value"] for a in attrs["attributes"] if a["source"] == key) == sorted(
            str(p) for p in open_ports(name))
    finally:
        clean_redis(prefix)


def test_workers_option_runs_that_many_processes_on_one_port_and_all_stop_on_sigterm(estate):
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    proc = Proc(cli("service", "run", "configuration", "--port", "0", "--workers", "2",
                    "--routes", str(ROOT / "routes.yaml")), env=service_env(estate, prefix))
    try:
        proc.wait_http("/health", timeout=60)
        workers = set()
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = {int(p) for p in Path(f"/proc/{proc.popen.pid}/task/{proc.popen.pid}/children")
                       .read_text().split()}
            time.sleep(0.2)  # why: a poll's interval; the assertion below reports the count found
        # The supervisor's children: the two workers (spawn may add a resource tracker).
        assert len(workers) >= 2
        with httpx.Client(base_url=proc.url, timeout=10) as http:
            assert all(http.get("/health").status_code == 200 for _ in range(10))
        tracker = {w for w in workers if "resource_tracker" in _cmdline(w)}
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(30) == 0
        # The supervisor joins its workers before it exits; multiprocessing's resource tracker
        # leaves when it sees the supervisor's end of its pipe close, a moment later.
        assert [w for w in workers - tracker if _running(w)] == []
        eventually(lambda: not any(_running(w) for w in tracker), 10, "the resource tracker to exit")
    finally:
        proc.stop()
        clean_redis(prefix)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has exited; only its parent has not reaped it yet)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
