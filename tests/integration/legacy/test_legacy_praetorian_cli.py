"""The real praetorian-cli SDK (2.6.2) against the legacy handlers over real HTTP, with the AWS
side on a moto *server* (boto3 reaches it through AWS_ENDPOINT_URL, as in the Lambda runtime).

A ~40-line HTTP → API Gateway v1 event shim stands in for API Gateway here; the toolkit's own
adapters are tested by their owners.
"""

from __future__ import annotations

import base64
import importlib
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

pytestmark = pytest.mark.integration

STAGE = "/chariot"


def _routes():
    from chariot_migrate.legacy.functions import FUNCTIONS, ROUTE_FUNCTIONS

    out = []
    for (method, template), fn in ROUTE_FUNCTIONS.items():
        pattern = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"
        module = importlib.import_module(f"chariot_migrate.legacy.{FUNCTIONS[fn][0]}")
        out.append((method, template, re.compile(pattern), module.handler))
    return out


class _Gateway(BaseHTTPRequestHandler):
    routes: list = []
    statuses: list[int] = []  # every status served, for assertions about the exchange

    def log_message(self, *a):  # keep test output quiet
        pass

    def _serve(self):
        url = urlsplit(self.path)
        path = re.sub("/+", "/", url.path)
        path = path[len(STAGE):] if path.startswith(STAGE) else path
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        for method, template, rx, handler in self.routes:
            m = rx.match(path)
            if m and method == self.command:
                q = parse_qs(url.query, keep_blank_values=True)
                event = {"resource": template, "path": path, "httpMethod": self.command,
                         "headers": dict(self.headers.items()), "multiValueHeaders": None,
                         "queryStringParameters": {k: v[-1] for k, v in q.items()} or None,
                         "multiValueQueryStringParameters": q or None, "pathParameters": m.groupdict() or None,
                         "requestContext": {"stage": "chariot", "resourcePath": template},
                         "body": base64.b64encode(body).decode() if body else None, "isBase64Encoded": bool(body)}
                resp = handler(event, None)
                data = base64.b64decode(resp["body"]) if resp.get("isBase64Encoded") else resp["body"].encode()
                break
        else:
            resp, data = {"statusCode": 404, "headers": {}}, b'{"message":"not found"}'
        self.statuses.append(resp["statusCode"])
        self.send_response(resp["statusCode"])
        for k, v in resp.get("headers", {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _serve


@pytest.fixture(scope="module")
def legacy_api() -> Iterator[tuple[str, str, str]]:
    from moto.server import ThreadedMotoServer

    from chariot_migrate.legacy import aws, resources

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    mp = pytest.MonkeyPatch()
    for k, v in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "CHARIOT_TABLE": "chariot-it", "CHARIOT_BUCKET": "chariot-it",
                 "CHARIOT_SIGNING_SECRET_ID": "chariot/it", "PRAETORIAN_CLI_ALLOW_HTTP_LOOPBACK": "1",
                 "PRAETORIAN_CLI_DISABLE_UPDATE_CHECK": "1"}.items():
        mp.setenv(k, v)
    mp.delenv("CHARIOT_JOB_WORKER", raising=False)
    aws.reset()
    resources.provision(endpoint, "us-east-1")
    resources.provision(endpoint, "us-east-1")  # idempotent
    key_id, secret = resources.seed_demo(endpoint, "demo@example.com")
    _Gateway.routes = _routes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{STAGE}", key_id, secret
    finally:
        server.shutdown()
        moto.stop()
        aws.reset()
        mp.undo()


@pytest.fixture(scope="module")
def sdk(legacy_api):
    from praetorian_cli.sdk.guard import Guard
    from praetorian_cli.sdk.keychain import Keychain

    api, key_id, secret = legacy_api
    kc = Keychain(data=f"[United States]\napi = {api}\nclient_id = local\napi_key_id = {key_id}\n"
                       f"api_key_secret = {secret}\n")
    return Guard(kc)


def test_assets_risks_attributes_through_the_real_client(sdk):
    a = sdk.assets.add("example.com", "1.2.3.4", surface="external")
    assert a["key"] == "#asset#example.com#1.2.3.4"
    sdk.assets.add("example.com", "example.com")
    assets, offset = sdk.assets.list()
    assert {x["key"] for x in assets} >= {"#asset#example.com#1.2.3.4", "#asset#example.com#example.com"}
    assert sdk.assets.get("#asset#example.com#1.2.3.4")["class"] == "ipv4"
    r = sdk.risks.add("#asset#example.com#1.2.3.4", "CVE-2024-0001", "TH", comment="found it")
    assert r["key"] == "#risk#example.com#CVE-2024-0001" and r["priority"] == 10
    sdk.risks.update(r["key"], status="OH", comment="confirmed")
    assert sdk.risks.get(r["key"])["status"] == "OH"
    at = sdk.attributes.add("#asset#example.com#1.2.3.4", "port", "443")
    assert at["key"] == "#attribute#port#443#asset#example.com#1.2.3.4"
    assert [x["name"] for x in sdk.assets.attributes("#asset#example.com#1.2.3.4")] == ["port"]
    details = sdk.assets.get("#asset#example.com#1.2.3.4", details=True)
    assert [x["key"] for x in details["associated_risks"]] == [r["key"]]
    with pytest.raises(Exception, match=r"\[400\]"):
        sdk.risks.add("#asset#example.com#1.2.3.4", "manual", "OH")


def test_seeds_jobs_capabilities(sdk):
    from chariot_migrate.legacy import job_worker

    s = sdk.seeds.add(dns="seed.example.org")
    assert s["key"] == "#asset#seed.example.org#seed.example.org" and s["status"] == "P"
    sdk.seeds.update(s["key"], status="A")
    assert sdk.seeds.get(s["key"])["status"] == "A"
    caps = sdk.capabilities.list()
    assert {c["name"] for c in caps} == {"subdomain", "portscan", "nuclei", "whois"}
    jobs = sdk.jobs.add(s["key"], ["subdomain"])
    assert isinstance(jobs, list) and jobs[0]["status"].startswith("JQ")
    with pytest.raises(Exception, match="unknown capability: cato-agent"):
        sdk.jobs.add(s["key"], ["cato-agent"])
    # the worker is async; run it as the Lambda runtime would
    job_worker.handler({"username": "demo@example.com", "keys": [jobs[0]["key"]]}, None)
    assert sdk.jobs.get(jobs[0]["key"])["status"].startswith("JP")
    assets, _ = sdk.assets.list("#asset#seed.example.org#")
    assert "www.seed.example.org" in {a["name"] for a in assets}
    queued, _ = sdk.jobs.list_by_status("JP")
    assert jobs[0]["key"] in {j["key"] for j in queued}


def test_settings_keys_files_accounts(sdk, tmp_path):
    sdk.settings.add("frozen", "false")
    assert sdk.settings.get("#setting#frozen")["value"] == "false"
    key = sdk.keys.add("ci", "2099-01-01T00:00:00Z")
    assert key["secret"] and sdk.keys.get(key["key"])["name"] == "ci"
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello legacy")
    sdk.files.add(str(src), "home/hello.txt")
    assert sdk.files.get("home/hello.txt") == b"hello legacy"
    sdk.accounts.add_collaborator("bob@example.com", role="analyst")
    accounts, _ = sdk.accounts.list()
    assert [a["member"] for a in accounts] == ["bob@example.com"]
    sdk.settings.delete("frozen")
    assert sdk.settings.get("#setting#frozen") is None
    assert "asset" in sdk.schema.get()


def test_graph_413_makes_the_client_halve_its_page(sdk, monkeypatch):
    for i in range(6):
        sdk.assets.add("page.com", f"h{i}.page.com")
    monkeypatch.setenv("CHARIOT_MAX_RESPONSE_BYTES", str(3000))
    _Gateway.statuses.clear()
    assets, _ = sdk.assets.list("#asset#page.com#")
    assert sorted(a["name"] for a in assets) == [f"h{i}.page.com" for i in range(6)]
    assert 413 in _Gateway.statuses and _Gateway.statuses[-1] == 200


def test_guard_cli_binary_lists_assets(legacy_api, sdk, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    api, key_id, secret = legacy_api
    sdk.assets.add("cli.example.com", "cli.example.com")
    guard = Path(sys.executable).with_name("guard")
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PRAETORIAN_CLI_API": api,
           "PRAETORIAN_CLI_ALLOW_HTTP_LOOPBACK": "1", "PRAETORIAN_CLI_API_KEY_ID": key_id,
           "PRAETORIAN_CLI_API_KEY_SECRET": secret, "PRAETORIAN_CLI_DISABLE_UPDATE_CHECK": "1"}
    out = subprocess.run([str(guard), "list", "assets"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "#asset#cli.example.com#cli.example.com" in out.stdout
