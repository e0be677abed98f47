"""capabilities as a real process next to real asset-discovery and risk-assessment processes
(moto server, Redis Streams): a job runs as a saga and its results land in the owners' stores."""

from __future__ import annotations

import json
import uuid

import graph_procs_kit as kit
import httpx
import pytest
import redis
import svc_c_procs

from chariot_migrate.model.capabilities import PORT_FINDINGS, open_ports

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def estate():
    with kit.moto_with_signing_key() as e:
        yield e


def test_capabilities_process_runs_jobs_through_peers(estate, procs):
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    env = kit.env_for(estate, prefix)
    try:
        names = ("asset-discovery", "risk-assessment", "capabilities")
        ports = svc_c_procs.listeners(names)
        url = svc_c_procs.urls(ports)
        started = svc_c_procs.start_all({
            "asset-discovery": {},
            "risk-assessment": {"CHARIOT_RISK_ASSESSMENT_ASSET_DISCOVERY_URL": url["asset-discovery"]},
            "capabilities": {"CHARIOT_CAPABILITIES_ASSET_URL": url["asset-discovery"],
                             "CHARIOT_CAPABILITIES_RISK_URL": url["risk-assessment"]},
        }, env, ports)
        procs.extend(started.values())
        assets, risks, caps = started["asset-discovery"], started["risk-assessment"], started["capabilities"]
        user = f"u{uuid.uuid4().hex[:8]}@example.com"
        h = kit.headers(estate["key"], user)
        name = next(f"h{i}.run.com" for i in range(100) if any(str(p) in PORT_FINDINGS for p in open_ports(f"h{i}.run.com")))
        key = f"#asset#run.com#{name}"
        with httpx.Client(headers=h, timeout=15) as c:
            assert kit.eventually(lambda: c.get(caps.url + "/ready").status_code == 200)
            assert c.put(assets.url + "/asset", json={"group": "run.com", "identifier": name}).status_code == 200
            r = c.post(caps.url + "/job", json={"key": key, "capabilities": ["portscan"]})
            assert r.status_code == 200 and r.json()[0]["status"].startswith("JQ#")
            job_key = r.json()[0]["key"]

            def status(k: str) -> str:
                found = c.get(caps.url + "/my", params={"key": k, "exact": "true"}).json().get("jobs", [])
                return found[0]["status"] if found else ""

            assert kit.eventually(lambda: status(job_key).startswith("JP#"), 20), status(job_key)
            attrs = c.post(assets.url + "/my", json={"node": {"labels": ["Attribute"]}}).json()["attributes"]
            assert sorted(a["value"] for a in attrs if a["source"] == key) == sorted(str(p) for p in open_ports(name))
            # nuclei on the asset turns the risky open ports into risks in risk-assessment
            r = c.post(caps.url + "/job", json={"key": key, "capabilities": ["nuclei"]})
            nuclei_key = r.json()[0]["key"]
            assert kit.eventually(lambda: status(nuclei_key).startswith("JP#"), 20), c.get(
                caps.url + "/my", params={"key": nuclei_key, "exact": "true"}).json()["jobs"][0].get("error")
            found = c.post(risks.url + "/my", json={"node": {"labels": ["Risk"]}}).json().get("risks", [])
            expected = {PORT_FINDINGS[str(p)][0].lower() for p in open_ports(name) if str(p) in PORT_FINDINGS}
            assert {x["name"].lower() for x in found} == expected
            # contract details the CLI relies on
            assert "unknown capability: zap" in c.post(caps.url + "/job", json={"key": key, "capabilities": ["zap"]}
                                                       ).json()["message"]
            assert c.post(caps.url + "/job", json={"key": "#asset#none.com#none.com"}).status_code == 404
            assert {x["name"] for x in c.get(caps.url + "/capabilities").json()} >= {"portscan", "nuclei"}
        rds = redis.Redis.from_url(kit.REDIS_URL)
        try:
            done = [json.loads(f[b"event"]) for _, f in rds.xrange(f"{prefix}chariot:events:job.completed")]
        finally:
            rds.close()
        assert sorted((e["data"]["capability"], e["data"]["status"][:2]) for e in done) == [
            ("nuclei", "JP"), ("portscan", "JP")]
    finally:
        kit.clean_redis(prefix)
