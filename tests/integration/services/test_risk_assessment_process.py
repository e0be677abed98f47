"""risk-assessment as a real process next to asset-discovery, over a moto server and the Redis
Streams bus: assets reach risk-assessment's read model through ``asset.discovered``; risks are
added, updated, deleted and queried; asset-discovery sees them through risk-assessment's
internal API (service-to-service token) and ``risk.assessed`` lands on its stream."""

from __future__ import annotations

import json
import uuid

import graph_procs_kit as kit
import httpx
import pytest
import redis
from conftest import Proc, cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def estate():
    with kit.moto_with_signing_key() as e:
        yield e


def test_risk_assessment_process_with_asset_discovery(estate, procs):
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    try:
        risks = Proc(cli("service", "run", "risk-assessment", "--port", "0"), cwd=kit.ROOT,
                     env=kit.env_for(estate, prefix))
        procs.append(risks)
        risks.wait_http("/health")
        assets = Proc(cli("service", "run", "asset-discovery", "--port", "0"), cwd=kit.ROOT,
                      env=kit.env_for(estate, prefix, CHARIOT_ASSET_DISCOVERY_RISK_ASSESSMENT_URL=risks.url))
        procs.append(assets)
        assets.wait_http("/health")
        user = f"u{uuid.uuid4().hex[:8]}@example.com"
        h = kit.headers(estate["key"], user)
        with httpx.Client(base_url=assets.url, headers=h, timeout=10) as a, \
                httpx.Client(base_url=risks.url, headers=h, timeout=10) as r:
            assert kit.eventually(lambda: r.get("/ready").status_code == 200 and a.get("/ready").status_code == 200)
            assert a.put("/asset", json={"group": "example.com", "identifier": "1.2.3.4"}).status_code == 200
            add = {"key": "#asset#example.com#1.2.3.4", "name": "CVE-2024-0001", "status": "TH", "comment": "found"}
            resp = kit.eventually(lambda: (lambda x: x if x.status_code == 200 else None)(r.put("/risk", json=add)))
            assert resp is not None, "asset.discovered never reached risk-assessment"
            risk = resp.json()["risks"][0]
            assert risk["key"] == "#risk#example.com#CVE-2024-0001" and risk["priority"] == 10
            upd = r.put("/risk", json={"key": risk["key"], "status": "OC", "comment": "confirmed"}).json()["risks"][0]
            assert upd["priority"] == 0 and upd["history"][-1] == {"from": "TH", "to": "OC", "by": user,
                                                                   "comment": "confirmed", "updated": upd["updated"]}
            bad = r.put("/risk", json={"key": "#asset#example.com#1.2.3.4", "name": "x", "status": "OH"})
            assert bad.status_code == 400 and "triage status" in bad.json()["message"]
            q = {"node": {"labels": ["Risk"], "relationships": [
                {"label": "HAS_VULNERABILITY", "source": {"labels": ["Asset"]}}]}}
            assert [x["key"] for x in r.post("/my", json=q).json()["risks"]] == [risk["key"]]
            # asset-discovery asks risk-assessment's internal API: no lag
            q2 = {"node": {"labels": ["Asset"], "relationships": [
                {"label": "HAS_VULNERABILITY", "target": {"labels": ["Risk"], "filters": [
                    {"field": "status", "operator": "=", "value": "OC"}]}}]}}
            assert [x["key"] for x in a.post("/my", json=q2).json()["assets"]] == ["#asset#example.com#1.2.3.4"]
            gone = r.request("DELETE", "/risk", content=json.dumps({"key": risk["key"], "status": "DCF"}))
            assert gone.status_code == 200 and gone.json()["status"] == "DCF"
            assert a.post("/my", json=q2).json() == {}
            # the internal API is for services only
            assert r.get("/internal/api/entities", params={"prefix": "#risk#"}).status_code == 403
        rds = redis.Redis.from_url(kit.REDIS_URL)
        try:
            events = [json.loads(f[b"event"]) for _, f in rds.xrange(f"{prefix}chariot:events:risk.assessed")]
        finally:
            rds.close()
        statuses = [(e["data"]["previous_status"], e["data"]["status"]) for e in events if e["account"] == user]
        assert statuses == [(None, "TH"), ("TH", "OC"), ("OC", "DCF")]
    finally:
        kit.clean_redis(prefix)
