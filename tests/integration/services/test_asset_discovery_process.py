"""asset-discovery as a real process (`chariot-migrate service run`) on a moto server, with the
Redis Streams bus: writes, graph queries, the 413 page-size contract, events on the stream."""

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


def test_asset_discovery_process_end_to_end(estate, procs):
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    env = kit.env_for(estate, prefix, CHARIOT_ASSET_DISCOVERY_MAX_RESPONSE_BYTES="3000")
    try:
        p = Proc(cli("service", "run", "asset-discovery", "--port", "0"), cwd=kit.ROOT, env=env)
        procs.append(p)
        p.wait_http("/health")
        user = f"u{uuid.uuid4().hex[:8]}@example.com"
        h = kit.headers(estate["key"], user)
        with httpx.Client(base_url=p.url, headers=h, timeout=10) as c:
            assert kit.eventually(lambda: c.get("/ready").status_code == 200)
            r = c.put("/asset", json={"group": "example.com", "identifier": "1.2.3.4", "attackSurface": ["external"]})
            assert r.status_code == 200 and r.json()[0]["key"] == "#asset#example.com#1.2.3.4"
            for i in range(6):
                assert c.put("/asset", json={"group": "example.com", "identifier": f"h{i}.example.com"}).status_code == 200
            assert c.put("/seed", json={"type": "asset", "model": {"dns": "example.com"}}).json()["source"] == "seed"
            assert c.put("/attribute", json={"key": "#asset#example.com#1.2.3.4", "name": "port",
                                             "value": "443"}).status_code == 200
            q = {"node": {"labels": ["Asset"], "relationships": [{"label": "HAS_ATTRIBUTE", "target": {}}]}}
            r = c.post("/my", json=q)
            assert r.status_code == 200 and [a["key"] for a in r.json()["assets"]] == ["#asset#example.com#1.2.3.4"]
            # the praetorian-cli contract: 413 "reduce page size", then smaller pages work
            r = c.post("/my", json={"node": {"labels": ["Asset"]}, "limit": 4096})
            assert r.status_code == 413 and "reduce page size" in r.json()["message"]
            r = c.post("/my", json={"node": {"labels": ["Asset"]}, "limit": 2, "page": 1})
            assert r.status_code == 200 and len(r.json()["assets"]) == 2 and r.json()["offset"] == "2"
            # bad input and bad tokens are clear 4xx
            assert c.put("/asset", json={"group": "x"}).json()["message"].startswith("identifier:")
            assert c.put("/asset", json={"group": "e.com", "identifier": "e.com"},
                         headers={"authorization": "Bearer nope"}).status_code == 401
        # every asset write is an asset.discovered event on the Redis stream
        rds = redis.Redis.from_url(kit.REDIS_URL)
        try:
            events = [json.loads(f[b"event"]) for _, f in rds.xrange(f"{prefix}chariot:events:asset.discovered")]
        finally:
            rds.close()
        keys = [e["data"]["key"] for e in events if e["account"] == user]
        assert "#asset#example.com#1.2.3.4" in keys and "#asset#example.com#example.com" in keys
    finally:
        kit.clean_redis(prefix)
