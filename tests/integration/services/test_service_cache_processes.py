"""The read cache across real service processes: two instances of one service on one moto server
and one Redis. A write through instance A is seen by a read through instance B right after (A
deletes the L2 entry and tells B over pub/sub), with TTLs long enough that nothing else could
explain it; a write made around the service is seen once `data backfill`'s flush has run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from chariot_services_procs import REDIS_URL, ROOT, bearer, clean_redis, moto_estate, service_env
from conftest import Proc, cli, eventually

from chariot_migrate.services.kit.read_cache import flush_service_cache

pytestmark = pytest.mark.integration
LONG_TTLS = {"CACHE_L1_TTL_SECONDS": "300", "CACHE_L2_TTL_SECONDS": "300"}


@pytest.fixture(scope="module")
def estate():
    with moto_estate() as e:
        yield e


def two_instances(estate: dict[str, Any], service: str, procs: list[Proc]) -> tuple[str, Proc, Proc]:
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    env = service_env(estate, prefix, **LONG_TTLS)
    pair = []
    for _ in range(2):
        p = Proc(cli("service", "run", service, "--port", "0", "--routes", str(ROOT / "routes.yaml")), env=env)
        procs.append(p)
        pair.append(p)
    for p in pair:
        p.wait_http("/health")
    return prefix, pair[0], pair[1]


@pytest.fixture
def asset_instances(estate, procs) -> Iterator[tuple[str, Proc, Proc]]:
    prefix, a, b = two_instances(estate, "asset-discovery", procs)
    try:
        yield prefix, a, b
    finally:
        clean_redis(prefix)


def asset_keys(http: httpx.Client, base: str, headers: dict[str, str]) -> list[str]:
    r = http.post(f"{base}/my", json={"node": {"labels": ["Asset"]}, "page": 0, "limit": 100}, headers=headers)
    assert r.status_code == 200, r.text
    return [a["key"] for a in r.json().get("assets", [])]


def test_a_write_through_one_instance_is_read_through_the_other_at_once(estate, asset_instances):
    prefix, a, b = asset_instances
    h = bearer(estate["key"], f"u{uuid.uuid4().hex[:8]}@example.com")
    x, y = "#asset#c.com#10.0.0.1", "#asset#c.com#10.0.0.2"
    with httpx.Client(timeout=10) as http:
        assert http.put(f"{a.url}/asset", json={"group": "c.com", "identifier": "10.0.0.1"}, headers=h).status_code == 200
        assert asset_keys(http, b.url, h) == [x]  # B loads and caches (L1 + L2)
        assert asset_keys(http, a.url, h) == [x]  # A reads B's L2 entry into its L1
        for round_ in range(5):  # back and forth: each instance writes, the other reads right after
            writer, reader = (a, b) if round_ % 2 == 0 else (b, a)
            ident = f"10.0.1.{round_}"
            r = http.put(f"{writer.url}/asset", json={"group": "c.com", "identifier": ident}, headers=h)
            assert r.status_code == 200
            assert f"#asset#c.com#{ident}" in asset_keys(http, reader.url, h), f"round {round_}: stale read"
        http.put(f"{a.url}/asset", json={"key": x, "status": "F"}, headers=h)
        r = http.post(f"{b.url}/my", json={"node": {"labels": ["Asset"], "filters": [
            {"field": "key", "operator": "=", "value": x}]}}, headers=h)
        assert [e["status"] for e in r.json()["assets"]] == ["F"]
        assert y not in asset_keys(http, b.url, h)


def test_a_write_around_the_service_is_seen_after_the_flush(estate, asset_instances):
    prefix, a, b = asset_instances
    user = f"u{uuid.uuid4().hex[:8]}@example.com"
    h = bearer(estate["key"], user)
    with httpx.Client(timeout=10) as http:
        http.put(f"{a.url}/asset", json={"group": "c.com", "identifier": "10.0.0.1"}, headers=h)
        assert asset_keys(http, b.url, h) == ["#asset#c.com#10.0.0.1"]
        ddb = boto3.client("dynamodb", endpoint_url=estate["endpoint"], region_name="us-east-1")
        ddb.put_item(TableName=f"{prefix}asset-discovery-assets", Item={  # what `data backfill` does
            "username": {"S": user}, "key": {"S": "#asset#c.com#c.com"}, "dns": {"S": "c.com"},
            "name": {"S": "c.com"}, "status": {"S": "A"}})
        assert asset_keys(http, b.url, h) == ["#asset#c.com#10.0.0.1"]  # cached: the write is not seen
        note = flush_service_cache("asset-discovery", prefix, estate["endpoint"], env={"REDIS_URL": REDIS_URL})
        assert "cache invalidated" in note
        # the flush reaches B's L1 over pub/sub (asynchronous)
        eventually(lambda: asset_keys(http, b.url, h) == ["#asset#c.com#10.0.0.1", "#asset#c.com#c.com"], timeout=5,
                   what="the flush to reach instance B")
        assert asset_keys(http, b.url, h) == ["#asset#c.com#10.0.0.1", "#asset#c.com#c.com"]
        assert asset_keys(http, a.url, h) == ["#asset#c.com#10.0.0.1", "#asset#c.com#c.com"]


def test_account_listings_follow_writes_across_instances(estate, procs):
    prefix, a, b = two_instances(estate, "account", procs)
    owner, bob = f"o{uuid.uuid4().hex[:6]}@example.com", f"b{uuid.uuid4().hex[:6]}@example.com"
    h = bearer(estate["key"], owner)

    def members(p: Proc) -> list[str]:
        r = http.get(f"{p.url}/my", params={"key": "#account#"}, headers=h)
        assert r.status_code == 200, r.text
        return [row["member"] for row in r.json().get("accounts", [])]

    try:
        with httpx.Client(timeout=10) as http:
            assert members(a) == [] and members(b) == []
            assert http.post(f"{a.url}/account/{bob}", json={"role": "analyst"}, headers=h).status_code == 200
            assert members(b) == [bob]
            assert http.request("DELETE", f"{b.url}/account/{bob}", json={}, headers=h).status_code == 200
            assert members(a) == []
    finally:
        clean_redis(prefix)
