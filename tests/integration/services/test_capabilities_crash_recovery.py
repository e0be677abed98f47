"""Jobs left running by a crash are resumed: a real capabilities process is SIGKILLed while its
jobs are JR (their peer write hangs: risk-assessment is SIGSTOPped), then started again; every
job reaches a final state through the recovery pass (expired leases), and no lease is left."""

from __future__ import annotations

import json
import os
import signal
import uuid

import boto3
import graph_procs_kit as kit
import httpx
import pytest
import redis
import svc_c_procs

from chariot_migrate.model.capabilities import PORT_FINDINGS, open_ports
from chariot_migrate.services.capabilities.recovery import LEASE_PARTITION

pytestmark = pytest.mark.integration
LEASE_S = "1.5"


@pytest.fixture(scope="module")
def estate():
    with kit.moto_with_signing_key() as e:
        yield e


def _risky_hosts(n: int) -> list[str]:
    found = [f"h{i}.crash.com" for i in range(400)
             if any(str(p) in PORT_FINDINGS for p in open_ports(f"h{i}.crash.com"))]
    return found[:n]


def _scan_jobs(estate, table: str) -> list[dict]:
    ddb = boto3.resource("dynamodb", endpoint_url=estate["endpoint"], region_name="us-east-1")
    items, kwargs = [], {}
    while True:
        page = ddb.Table(table).scan(**kwargs)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_sigkill_with_jobs_running_then_restart_finishes_every_job(estate, procs):
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    env = kit.env_for(estate, prefix)
    caps_env = {"CHARIOT_CAPABILITIES_JOB_LEASE_S": LEASE_S, "CHARIOT_CAPABILITIES_PEER_TIMEOUT_S": "60"}
    stopped: list[int] = []
    try:
        ports = svc_c_procs.listeners(("asset-discovery", "risk-assessment", "capabilities"))
        url = svc_c_procs.urls(ports)
        peers = {"CHARIOT_CAPABILITIES_ASSET_URL": url["asset-discovery"],
                 "CHARIOT_CAPABILITIES_RISK_URL": url["risk-assessment"]}
        started = svc_c_procs.start_all({
            "asset-discovery": {},
            "risk-assessment": {"CHARIOT_RISK_ASSESSMENT_ASSET_DISCOVERY_URL": url["asset-discovery"]},
            "capabilities": peers | caps_env,
        }, env, ports)
        procs.extend(started.values())
        assets, risks, caps = started["asset-discovery"], started["risk-assessment"], started["capabilities"]
        users = [f"u{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(3)]
        hosts = _risky_hosts(2)
        clients = {u: httpx.Client(headers=kit.headers(estate["key"], u), timeout=15) for u in users}

        def status(c: httpx.Client, base: str, k: str) -> str:
            found = c.get(base + "/my", params={"key": k, "exact": "true"}).json().get("jobs", [])
            return found[0]["status"] if found else ""

        # each account: two assets with their open ports (portscan jobs that pass)
        for c in clients.values():
            for h in hosts:
                assert c.put(assets.url + "/asset", json={"group": "crash.com", "identifier": h}).status_code == 200
                k = c.post(caps.url + "/job", json={"key": f"#asset#crash.com#{h}", "capabilities": ["portscan"]}
                           ).json()[0]["key"]
                assert kit.eventually(lambda c=c, k=k: status(c, caps.url, k).startswith("JP#"), 20)
        # risk-assessment hangs: nuclei jobs block writing their risks, so they stay JR
        os.killpg(risks.popen.pid, signal.SIGSTOP)
        stopped.append(risks.popen.pid)
        nuclei: dict[str, list[str]] = {}
        for u, c in clients.items():
            nuclei[u] = [c.post(caps.url + "/job", json={"key": f"#asset#crash.com#{h}", "capabilities": ["nuclei"]}
                                ).json()[0]["key"] for h in hosts]
        for u, c in clients.items():
            assert kit.eventually(lambda c=c, k=nuclei[u][0]: status(c, caps.url, k).startswith("JR#"), 15)
        caps.stop(signal.SIGKILL)
        assert caps.popen.returncode == -signal.SIGKILL
        jobs_table = f"{prefix}capabilities-jobs"
        left = {(i["username"], i["key"]): i for i in _scan_jobs(estate, jobs_table)}
        codes = [left[(u, k)]["status"][:2] for u in users for k in nuclei[u]]
        assert set(codes) <= {"JR", "JQ"} and codes.count("JR") >= len(users), codes  # the crash left them running
        assert len([i for i in left.values() if i["username"] == LEASE_PARTITION]) >= codes.count("JR")
        os.killpg(risks.popen.pid, signal.SIGCONT)
        stopped.remove(risks.popen.pid)

        # restart capabilities on a new socket
        sock = svc_c_procs.listeners(("capabilities",))
        again = svc_c_procs.start_all({"capabilities": peers | caps_env}, env, sock)["capabilities"]
        procs.append(again)
        for u, c in clients.items():
            for k in nuclei[u]:
                assert kit.eventually(lambda c=c, k=k: status(c, again.url, k)[:2] in ("JP", "JF"), 30), (
                    status(c, again.url, k), "".join(again.stderr_lines)[-3000:])
                assert status(c, again.url, k).startswith("JP#")  # resumed and run to the end
            found = c.post(risks.url + "/my", json={"node": {"labels": ["Risk"]}}).json().get("risks", [])
            expected = {PORT_FINDINGS[str(p)][0].lower() for h in hosts for p in open_ports(h) if str(p) in PORT_FINDINGS}
            assert {x["name"].lower() for x in found} == expected
        assert kit.eventually(lambda: not [i for i in _scan_jobs(estate, jobs_table)
                                           if i["username"] == LEASE_PARTITION], 10)
        # JR jobs are only picked up by the recovery pass (a restart resumes JQ ones by itself);
        # each nuclei job announces its end exactly once (the killed runs never did)
        rds = redis.Redis.from_url(kit.REDIS_URL)
        try:
            done = [json.loads(f[b"event"]) for _, f in rds.xrange(f"{prefix}chariot:events:job.completed")]
        finally:
            rds.close()
        ended = sorted((e["account"], e["data"]["key"], e["data"]["status"][:2]) for e in done
                       if e["data"]["capability"] == "nuclei")
        assert ended == sorted((u, k, "JP") for u in users for k in nuclei[u])
        for c in clients.values():
            c.close()
    finally:
        for pid in stopped:
            os.killpg(pid, signal.SIGCONT)
        kit.clean_redis(prefix)
