"""A real uvicorn process serving the kit's demo service, against moto server, Redis and a JWKS URL."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import httpx
import pytest
import redis
from conftest import eventually
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from moto.server import ThreadedMotoServer

from chariot_migrate.services.kit.auth import mint_token

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
ISS, AUD = "chariot-migrate-local", "chariot"


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def signing_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="demo-1", alg="RS256", use="sig")
    body = json.dumps({"keys": [jwk]}).encode()

    class JWKS(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), JWKS)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield pem, f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()


@pytest.fixture(scope="module")
def demo(moto_endpoint, signing_key, tmp_path_factory):
    pem, jwks_url = signing_key
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    metrics_dir = tmp_path_factory.mktemp("prom")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "JWKS_URL": jwks_url,
        "CHARIOT_DEMO_TABLE_PREFIX": prefix,
        "CHARIOT_DEMO_EVENT_BUS": "redis",
        "CHARIOT_DEMO_MEMBERS": json.dumps({"acme@example.com": {"bob@example.com": "readonly"}}),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    log_path = tmp_path_factory.mktemp("logs") / "demo.log"
    log_file = open(log_path, "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "chariot_migrate.services.kit.demo:create_demo_app",
            "--fd",
            str(sock.fileno()),
            "--no-access-log",
        ],
        env=env,
        pass_fds=[sock.fileno()],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)  # why: a startup poll that also checks the process and shows its log on failure
        assert proc.poll() is None, log_path.read_text()[-3000:]
    else:
        pytest.fail("demo service did not start: " + log_path.read_text()[-3000:])
    yield {"base": base, "pem": pem, "prefix": prefix, "log": log_path, "moto": moto_endpoint}
    proc.terminate()
    proc.wait(timeout=10)
    log_file.close()
    sock.close()
    r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    keys = list(r.scan_iter(match=prefix + "*"))
    if keys:
        r.delete(*keys)
    r.close()


def auth(demo, who="alice@example.com", account=None, **kw):
    tok = mint_token(demo["pem"], subject=who, email=who, issuer=ISS, audience=AUD, kid="demo-1", **kw)
    headers = {"Authorization": f"Bearer {tok}"}
    if account:
        headers["account"] = account
    return headers


def test_health_ready_and_openapi(demo):
    c = httpx.Client(base_url=demo["base"])
    assert c.get("/health").json() == {"status": "ok", "service": "demo"}
    ready = c.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"dynamodb": "ok", "redis": "ok", "bus": "ok"}
    assert "/asset" in c.get("/openapi.json").json()["paths"]


def test_auth_crud_paging_events_and_errors(demo):
    c = httpx.Client(base_url=demo["base"])
    r = c.post("/asset", json={"dns": "example.com", "name": "1.2.3.4"})
    assert r.status_code == 401 and "missing Authorization" in r.json()["message"]
    assert c.get("/whoami", headers={"Authorization": "Bearer garbage"}).status_code == 401

    alice = auth(demo)
    for i in range(5):
        r = c.post("/asset", json={"dns": "example.com", "name": f"10.0.0.{i}"}, headers=alice)
        assert r.status_code == 200, r.text
    r = c.post("/asset", json={"dns": "example.com"}, headers=alice)
    assert r.status_code == 400 and r.json() == {"message": "name: Field required"}

    got = c.get("/asset", params={"key": "#asset#example.com#10.0.0.1"}, headers=alice)
    assert got.status_code == 200 and got.json()["name"] == "10.0.0.1"
    assert c.get("/asset", params={"key": "#asset#nope"}, headers=alice).status_code == 404

    keys, offset = [], None
    while True:
        params = {"key": "#asset#", "limit": 2, **({"offset": offset} if offset else {})}
        page = c.get("/my", params=params, headers=alice).json()
        keys += [i["key"] for i in page["items"]]
        offset = page.get("offset")
        if not offset:
            break
    assert len(keys) == 5 == len(set(keys))
    assert c.get("/my", params={"offset": "garbage!"}, headers=alice).status_code == 400

    # bob is a readonly collaborator of acme: may read, may not write; not a member of alice's account.
    bob_acme = auth(demo, "bob@example.com", "acme@example.com")
    assert c.get("/whoami", headers=bob_acme).json()["role"] == "readonly"
    r = c.post("/asset", json={"dns": "a.com", "name": "b"}, headers=bob_acme)
    assert r.status_code == 403 and "needs analyst" in r.json()["message"]
    r = c.get("/whoami", headers=auth(demo, "bob@example.com", "alice@example.com"))
    assert r.status_code == 403 and "not a collaborator" in r.json()["message"]
    assert c.get("/whoami", headers=auth(demo, ttl=-300)).status_code == 401

    # Writes invalidate the cache: delete then read is a 404, not a stale hit.
    key = "#asset#example.com#10.0.0.1"
    assert c.delete("/asset", params={"key": key}, headers=alice).status_code == 200
    assert c.get("/asset", params={"key": key}, headers=alice).status_code == 404

    r = c.get("/boom", headers={"X-Correlation-ID": "boom-1"})
    assert r.status_code == 500 and r.json() == {"message": "Internal server error"}

    stream = f"{demo['prefix']}demo:events:asset.discovered"
    rds = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        assert rds.xlen(stream) == 5
        event = json.loads(rds.xrange(stream, count=1)[0][1][b"event"])
        assert event["type"] == "asset.discovered" and event["account"] == "alice@example.com"
    finally:
        rds.close()


def test_metrics_and_json_logs(demo):
    c = httpx.Client(base_url=demo["base"])
    alice = auth(demo)
    r = c.get(
        "/whoami",
        headers={
            **alice,
            "X-Correlation-ID": "trace-me-1",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        },
    )
    assert r.headers["x-correlation-id"] == "trace-me-1"
    assert r.headers["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert c.get("/boom", headers={"X-Correlation-ID": "boom-2"}).status_code == 500
    text = c.get("/metrics").text
    assert (
        'http_request_duration_seconds_bucket{endpoint="/whoami",le="0.005",method="GET",service="demo",status_code="200"}'
        in text
    )
    assert 'endpoint="/asset"' in text and "#asset#" not in text
    assert "active_connections_total" in text


    def logged() -> list[dict] | None:  # the service writes its log asynchronously: both events land
        events = [json.loads(line) for line in demo["log"].read_text().splitlines() if line.strip()]
        seen = any(e.get("correlation_id") == "trace-me-1" and e["message"] == "request" for e in events)
        return events if seen and any(e.get("correlation_id") == "boom-2" and "exception" in e for e in events) else None

    events = eventually(logged, what="the request and the exception events in the JSON log")  # every line is JSON
    mine = [e for e in events if e.get("correlation_id") == "trace-me-1" and e["message"] == "request"]
    assert mine and mine[0]["route"] == "/whoami" and mine[0]["status"] == 200
    assert mine[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and mine[0]["service"] == "demo"
    boom = [e for e in events if e.get("correlation_id") == "boom-2" and "exception" in e]
    assert boom and "RuntimeError" in boom[0]["exception"] and boom[0]["level"] == "error"
    body = demo["log"].read_text()
    token = alice["Authorization"].split()[1]
    assert token not in body and "eyJ" not in body


def test_ready_turns_503_when_the_table_goes_away(demo):
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=demo["moto"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    ddb.delete_table(TableName=f"{demo['prefix']}demo-assets")
    r = httpx.get(demo["base"] + "/ready")
    assert r.status_code == 503
    assert list(r.json()["failed"]) == ["dynamodb"] and "ResourceNotFound" in r.json()["failed"]["dynamodb"]
