"""asset-discovery's gRPC API as a real process (moto server, its own store): health and
reflection, internal-token auth, ValidateAsset, GetAssetRelationships against the REST graph,
DiscoverAssets streamed and cancelled midway (the server's own counters show it stopped), and
risk-assessment, another process, reading assets only through it."""

from __future__ import annotations

import json
import re
import uuid

import boto3
import graph_procs_kit as kit
import grpc
import httpx
import pytest
from conftest import Proc, cli
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from chariot_migrate.lifecycle import hold_port_for_child, port_of
from chariot_migrate.services.kit.auth import mint_token
from chariot_migrate.services.kit.grpc_codegen import stubs

pytestmark = pytest.mark.integration
pb, pb_grpc = stubs("asset_discovery")
ASSETS = 200  # more than the flow-control window below lets the server send ahead
SERVICE = "chariot.asset_discovery.v1.AssetDiscoveryService"


@pytest.fixture(scope="module")
def estate():
    with kit.moto_with_signing_key() as e:
        yield e


@pytest.fixture(scope="module")
def stack(estate):
    """asset-discovery with its gRPC port held here first (as `up` holds it), one account's data."""
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    held = hold_port_for_child()
    address = f"127.0.0.1:{port_of(held)}"
    env = kit.env_for(estate, prefix, EVENT_BUS="inprocess", CHARIOT_ASSET_DISCOVERY_GRPC_ADDRESS=address)
    assets = Proc(cli("service", "run", "asset-discovery", "--port", "0"), cwd=kit.ROOT, env=env)
    try:
        assets.wait_http("/health")
        user = f"u{uuid.uuid4().hex[:8]}@example.com"
        with httpx.Client(base_url=assets.url, headers=kit.headers(estate["key"], user), timeout=30) as c:
            assert kit.eventually(lambda: c.get("/ready").status_code == 200, 30)
            put_assets(estate, prefix, user)
            assert c.put("/seed", json={"type": "asset", "model": {"dns": "seed.com"}}).status_code == 200
            assert c.put("/asset", json={"group": "seed.com", "identifier": "10.0.0.1"}).status_code == 200
            key = "#asset#seed.com#10.0.0.1"
            for name, value in (("port", "443"), ("protocol", "https")):
                assert c.put("/attribute", json={"key": key, "name": name, "value": value}).status_code == 200
        channel = grpc.insecure_channel(address)
        yield {"proc": assets, "address": address, "user": user, "channel": channel, "env": env,
               "stub": pb_grpc.AssetDiscoveryServiceStub(channel), "key": key}
        channel.close()
    finally:
        assets.stop()
        held.close()


def put_assets(estate, prefix: str, user: str) -> None:
    """ASSETS assets straight into the service's table (the REST bulk path is too slow on moto)."""
    table = boto3.resource("dynamodb", endpoint_url=estate["endpoint"]).Table(prefix + "asset-discovery-assets")
    with table.batch_writer() as batch:
        for i in range(ASSETS):
            name = f"h{i:03}.bulk.com"
            batch.put_item(Item={"username": user, "key": f"#asset#bulk.com#{name}", "dns": "bulk.com", "name": name,
                                 "status": "A", "source": "self", "class": "domain", "created": "2026-01-01T00:00:00Z",
                                 "updated": "2026-01-01T00:00:00Z", "attackSurface": ["external"], "history": []})


def internal(estate, account: str, audience: str = "chariot-internal") -> tuple[tuple[str, str], ...]:
    key = estate["key"]
    token = mint_token(key.private_pem, subject="risk-assessment", issuer="chariot-migrate-local",
                       audience=audience, kid=key.kid)
    return (("authorization", f"Bearer {token}"), ("account", account))


def metric(proc: Proc, name: str) -> float:
    text = httpx.get(proc.url + "/metrics", timeout=5).text
    found = re.search(rf'^{name}\{{[^}}]*method="DiscoverAssets"[^}}]*\}} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_health_and_reflection(stack):
    health = health_pb2_grpc.HealthStub(stack["channel"])
    assert health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(stack["channel"])
    answers = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                           timeout=5)
    names = {s.name for a in answers for s in a.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer not-a-jwt"),), "user"])
def test_missing_or_invalid_or_user_token_is_unauthenticated(stack, estate, metadata):
    if metadata == "user":  # a user's token is not a service's, even for its own account
        metadata = tuple(kit.headers(estate["key"], stack["user"]).items())
    with pytest.raises(grpc.RpcError) as err:
        stack["stub"].ValidateAsset(pb.AssetValidationRequest(dns="a.com"), metadata=metadata, timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and err.value.details()


def test_validate_asset(stack, estate):
    md = internal(estate, stack["user"])
    ok = stack["stub"].ValidateAsset(pb.AssetValidationRequest(dns="Seed.com", name="10.0.0.1"), metadata=md,
                                     timeout=5)
    assert (ok.valid, ok.key, ok.exists, ok.status) == (True, "#asset#seed.com#10.0.0.1", True, "A")
    new = stack["stub"].ValidateAsset(pb.AssetValidationRequest(dns="new.com"), metadata=md, timeout=5)
    assert (new.key, new.exists, getattr(new, "class")) == ("#asset#new.com#new.com", False, "tld")
    for bad, reason in ((pb.AssetValidationRequest(), "group"),
                        (pb.AssetValidationRequest(dns="a.com", status="ZZ"), "status")):
        with pytest.raises(grpc.RpcError) as err:
            stack["stub"].ValidateAsset(bad, metadata=md, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and reason in err.value.details()


def test_relationships_match_the_rest_graph(stack, estate):
    md = internal(estate, stack["user"])
    graph = stack["stub"].GetAssetRelationships(pb.AssetQuery(prefix="#asset#seed.com#", related=True),
                                                metadata=md, timeout=10)
    h = kit.headers(estate["key"], stack["user"])
    with httpx.Client(base_url=stack["proc"].url, headers=h, timeout=10) as c:
        rest_assets = c.get("/my", params={"key": "#asset#seed.com#"}).json()["assets"]
        q = {"node": {"labels": ["Asset"], "relationships": [{"label": "HAS_ATTRIBUTE",
                                                              "target": {"labels": ["Attribute"]}}]}}
        with_attributes = [a["key"] for a in c.post("/my", json=q).json()["assets"]]
        attrs = c.post("/my", json={"node": {"labels": ["Attribute"]}}).json()["attributes"]
    nodes = {n.key: json.loads(n.entity) for n in graph.nodes}
    assert {k: v for k, v in nodes.items() if k.startswith("#asset#")} == {a["key"]: a for a in rest_assets}
    edges = {(r.source, r.label, r.target) for r in graph.relationships}
    assert {(s, t) for s, label, t in edges if label == "HAS_ATTRIBUTE"} == {(a["source"], a["key"]) for a in attrs}
    assert {s for s, label, _ in edges if label == "HAS_ATTRIBUTE"} == set(with_attributes)
    assert ("#asset#seed.com#seed.com", "DISCOVERED", stack["key"]) in edges  # the seed found the IP
    one = stack["stub"].GetAssetRelationships(pb.AssetQuery(key=stack["key"]), metadata=md, timeout=5)
    assert [n.key for n in one.nodes] == [stack["key"]] and nodes[stack["key"]] == json.loads(one.nodes[0].entity)
    with pytest.raises(grpc.RpcError) as err:
        stack["stub"].GetAssetRelationships(pb.AssetQuery(prefix="asset"), metadata=md, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'#'" in err.value.details()


def test_discover_assets_streams_and_stops_when_the_client_cancels(stack, estate):
    md = internal(estate, stack["user"])
    whole = list(stack["stub"].DiscoverAssets(pb.DiscoveryRequest(prefix="#asset#bulk.com#", page_size=50),
                                              metadata=md, timeout=30))
    assert [a.key for a in whole] == sorted(f"#asset#bulk.com#h{i:03}.bulk.com" for i in range(ASSETS))
    proc = stack["proc"]
    sent_before = metric(proc, "grpc_server_msg_sent_total")
    cancelled_before = metric(proc, "grpc_server_streams_cancelled_total")
    # A small receive window and no BDP probing: the server can run only a little ahead of us.
    options = [("grpc.http2.lookahead_bytes", 4096), ("grpc.http2.bdp_probe", 0)]
    with grpc.insecure_channel(stack["address"], options=options) as channel:
        stream = pb_grpc.AssetDiscoveryServiceStub(channel).DiscoverAssets(
            pb.DiscoveryRequest(prefix="#asset#bulk.com#", page_size=20), metadata=md, timeout=30)
        first = [next(stream).key for _ in range(5)]
        stream.cancel()
        assert first == [a.key for a in whole[:5]]
        # The handler notices at its next await (a store page read runs to its end first).
        assert kit.eventually(lambda: metric(proc, "grpc_server_streams_cancelled_total") > cancelled_before, 30), \
            [ln for ln in httpx.get(proc.url + "/metrics", timeout=5).text.splitlines() if ln.startswith("grpc_")]
    sent = metric(proc, "grpc_server_msg_sent_total") - sent_before
    assert 0 < sent < ASSETS / 2, f"the server sent {sent} of {ASSETS} assets to a client that read 5"
    assert metric(proc, "grpc_server_msg_sent_total") - sent_before == sent  # and nothing after the cancel


def test_risk_assessment_reads_assets_over_grpc(stack, estate, procs):
    """risk-assessment, another process, with no HTTP URL of asset-discovery and no events from
    it (in-process bus): a risk on an asset, and the Risk→Asset graph query, need the gRPC API.
    Runs last in this module: it stops asset-discovery."""
    env = {**stack["env"], "CHARIOT_RISK_ASSESSMENT_ASSET_DISCOVERY_GRPC": stack["address"]}
    del env["CHARIOT_ASSET_DISCOVERY_GRPC_ADDRESS"]
    risks = Proc(cli("service", "run", "risk-assessment", "--port", "0"), cwd=kit.ROOT, env=env)
    procs.append(risks)
    risks.wait_http("/health")
    h = kit.headers(estate["key"], stack["user"])
    with httpx.Client(base_url=risks.url, headers=h, timeout=15) as r:
        assert kit.eventually(lambda: r.get("/ready").status_code == 200, 30)
        put = r.put("/risk", json={"key": stack["key"], "name": "CVE-2024-0002", "status": "TH"})
        assert put.status_code == 200, put.text
        missing = r.put("/risk", json={"key": "#asset#seed.com#10.9.9.9", "name": "CVE-2024-0003", "status": "TH"})
        assert missing.status_code == 404 and "not found" in missing.json()["message"]
        q = {"node": {"labels": ["Risk"], "relationships": [{"label": "HAS_VULNERABILITY",
                                                             "source": {"labels": ["Asset"]}}]}}
        assert [x["key"] for x in r.post("/my", json=q).json()["risks"]] == ["#risk#seed.com#CVE-2024-0002"]
        # asset-discovery gone: the calls fail fast (refused, retried, breaker), the read model
        # answers (empty here: no events reached it), and nothing hangs past the deadlines.
        stack["proc"].stop()
        gone = r.put("/risk", json={"key": stack["key"], "name": "CVE-2024-0004", "status": "TH"})
        assert gone.status_code == 404 and gone.elapsed.total_seconds() < 10
