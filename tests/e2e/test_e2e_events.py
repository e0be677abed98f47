"""Events across real processes: the eight services at 100 % behind the proxy, Redis Streams as the bus.

* a job's results (capabilities → asset-discovery / risk-assessment over HTTP) appear as assets and risks;
* a high risk (risk.assessed) makes the notification service deliver the account's alert to a local webhook;
* a reporting consumer is SIGKILLed mid-stream and restarted with the same command: every risk.assessed
  event is applied exactly once (reporting's counts and statistics equal the risks created).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from guard_harness import CHARIOT_MIGRATE, Stack, StackMode, parallel, start_stack, wait_for

from chariot_migrate.routes.loader import load_table

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SERVICES = ("account", "asset-discovery", "risk-assessment", "capabilities", "integration-hub", "notification",
            "reporting", "configuration")


def uid() -> str:
    return uuid.uuid4().hex[:10]


class Webhook:
    """A local webhook receiver (127.0.0.1, any free port) recording every POSTed body."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    received.append({"path": self.path, "body": json.loads(body or b"null")})
                except ValueError:
                    received.append({"path": self.path, "body": body.decode(errors="replace")})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    w = Webhook()
    yield w
    w.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, webhook) -> Iterator[Stack]:
    mode = StackMode("events", services=True,
                     commands=tuple(("shift", s, "100", "--force", "--reason", "e2e events") for s in SERVICES),
                     env=(("TABLE_PREFIX", f"ev{uid()}-"), ("NOTIFY_ALLOWED_HOSTS", f"127.0.0.1:{webhook.port}")))
    s = start_stack(tmp_path_factory.mktemp("stack-events"), mode)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def api(stack) -> Iterator[httpx.Client]:
    r = httpx.get(f"{stack.api}/token", headers={"X-GUARD-API-KEY-ID": stack.env["PRAETORIAN_CLI_API_KEY_ID"],
                                                 "X-GUARD-API-KEY-SECRET": stack.env["PRAETORIAN_CLI_API_KEY_SECRET"]})
    assert r.status_code == 200, r.text
    with httpx.Client(base_url=stack.api, headers={"Authorization": f"Bearer {r.json()['token']}"},
                      timeout=30) as client:
        yield client


def ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, f"{r.request.method} {r.request.url} → {r.status_code} {r.text[:500]}"
    assert r.headers.get("x-migrate-side", "new") == "new", f"{r.request.url} was served by {r.headers}"
    return r.json()


def my(api: httpx.Client, key: str) -> dict[str, Any]:
    return ok(api.get("/my", params={"key": key}))


def rows(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return doc.get(kind) or []


def search(api: httpx.Client, label: str, prefix: str) -> list[dict[str, Any]]:
    """POST /my (owned by asset-discovery / risk-assessment): GET /my for assets and risks has no
    service route in routes.yaml and would read the legacy table."""
    doc = ok(api.post("/my", json={"node": {"labels": [label], "filters": [
        {"field": "key", "operator": "STARTS WITH", "value": prefix}]}}))
    return [r for v in doc.values() if isinstance(v, list) for r in v if isinstance(r, dict) and "key" in r]


def test_job_results_appear_as_assets_and_risks(api):
    dns = f"ev-{uid()}.example.com"
    asset = f"#asset#{dns}#{dns}"
    ok(api.put("/asset", json={"group": dns, "identifier": dns}))
    ok(api.post("/job", json={"key": asset, "capabilities": ["subdomain"]}))
    expected = {f"#asset#{dns}#{p}.{dns}" for p in ("www", "api", "mail")}
    wait_for(lambda: expected <= {a["key"] for a in search(api, "Asset", f"#asset#{dns}#")},
             timeout=60, what="subdomain results as assets")

    # portscan → port attributes; nuclei on an exposed port → a risk, all produced by capability jobs.
    ok(api.put("/attribute", json={"key": asset, "name": "port", "value": "3306"}))
    attribute = f"#attribute#port#3306{asset}"
    ok(api.post("/job", json={"key": attribute, "capabilities": ["nuclei"]}))
    risk = wait_for(lambda: search(api, "Risk", f"#risk#{dns}#exposed-mysql"), timeout=60,
                    what="nuclei result as a risk")
    assert risk[0]["status"] == "TH" and risk[0]["key"] == f"#risk#{dns}#exposed-mysql"
    job = wait_for(lambda: [j for j in rows(my(api, "#job#"), "jobs")
                            if j["key"].startswith(f"#job#{dns}#") and j["key"].endswith("#nuclei")
                            and j["status"].startswith("JP")], timeout=60, what="nuclei job passed")
    assert job


def test_high_risk_delivers_the_alert_to_the_webhook(api, webhook):
    path = f"/alerts/{uid()}"
    ok(api.post("/account/alert", json={"value": "TH", "config": {"url": webhook.url(path)}}))
    dns = f"hi-{uid()}.example.com"
    ok(api.put("/asset", json={"group": dns, "identifier": dns}))
    ok(api.put("/risk", json={"key": f"#asset#{dns}#{dns}", "name": "CVE-2024-9999", "status": "TH"}))
    ok(api.put("/risk", json={"key": f"#asset#{dns}#{dns}", "name": "low-one", "status": "TL"}))
    got = wait_for(lambda: [d for d in webhook.received if d["path"] == path], timeout=30,
                   what="alert delivery to the local webhook")
    time.sleep(1.0)  # a wrong second delivery (the TL risk, or a duplicate) would arrive by now
    got = [d for d in webhook.received if d["path"] == path]
    assert len(got) == 1, got
    body = got[0]["body"]
    assert body["type"] == "risk.assessed" and body["alert"] == "TH"
    assert body["data"]["key"] == f"#risk#{dns}#CVE-2024-9999" and body["data"]["status"] == "TH"


# --- a consumer killed mid-stream ------------------------------------------------------------------------

def _service_env(stack: Stack) -> dict[str, str]:
    """The environment `up` gives its services (see cli/up_cmd.py), rebuilt for one more instance."""
    env = dict(stack.process_env)
    env.update({"CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL": stack.moto, "AWS_ENDPOINT_URL": stack.moto,
                "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
                "CHARIOT_MIGRATE_STATE": stack.state_url, "REDIS_URL": "redis://127.0.0.1:6379/0",
                "EVENT_BUS": "redis", "REDIS_NAMESPACE": stack.info["redis_namespace"]})
    for name, svc in load_table(stack.routes).config.services.items():  # an overlay under --free-ports
        if svc.url:
            env.setdefault(name.upper().replace("-", "_") + "_URL", svc.url)
    return env


def _start_service(stack: Stack, name: str, log: Path) -> subprocess.Popen:
    """One more instance of NAME on a port of its own choosing (port 0: it says which on its first
    stdout line), in the stack's consumer groups."""
    args = [str(CHARIOT_MIGRATE), "service", "run", name, "--routes", str(stack.routes), "--port", "0"]
    proc = subprocess.Popen(args, env=_service_env(stack), stdout=subprocess.PIPE, stderr=open(log, "a"),  # noqa: SIM115
                            cwd=stack.workdir, start_new_session=True, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("{"), f"{name} did not start: {log.read_text()[-2000:]}"
    port = json.loads(line)["port"]
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # keep the pipe drained
    wait_for(lambda: proc.poll() is not None or _healthy(port), timeout=60, interval=0.2,
             what=f"{name} on port {port}")
    assert proc.poll() is None, f"{name} exited: {log.read_text()[-2000:]}"
    return proc


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_reporting_consumer_killed_mid_stream_applies_every_event_once(api, stack, tmp_path):
    """A second reporting replica (same consumer group) is SIGKILLed while risks are being created, then
    restarted with the same command. Events it had read but not acked are taken over after the
    visibility timeout (XAUTOCLAIM); re-applied ones are recognised (processed ids, status-based
    statistics), so counts equal exactly what was created."""
    dns = f"kill-{uid()}.example.com"
    asset = f"#asset#{dns}#{dns}"
    ok(api.put("/asset", json={"group": dns, "identifier": dns}))
    stat = "#statistic#my#status:TM#total"

    def tm_total() -> int:
        return sum(int(r["data"]["count"]) for r in rows(my(api, stat), "statistics") if r["value"] == "TM")

    before = tm_total()
    victim = _start_service(stack, "reporting", tmp_path / "reporting-replica.log")
    n = 60
    names = [f"finding-{i:03d}" for i in range(n)]

    def create(batch: list[str]) -> None:
        for name in batch:
            ok(api.put("/risk", json={"key": asset, "name": name, "status": "TM"}))

    killer_done = threading.Event()

    def kill_mid_stream() -> None:
        # Once about a third of the risks exist, the replica is in the middle of consuming.
        wait_for(lambda: len(search(api, "Risk", f"#risk#{dns}#")) >= n // 3, timeout=60, interval=0.1,
                 what="a third of the risks")
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(10)
        killer_done.set()

    parallel(lambda: create(names[0::3]), lambda: create(names[1::3]), lambda: create(names[2::3]),
             kill_mid_stream)
    assert killer_done.is_set() and victim.returncode == -signal.SIGKILL
    restarted = _start_service(stack, "reporting", tmp_path / "reporting-replica.log")
    try:
        seen: dict[str, Any] = {}

        def settled() -> dict[str, Any] | None:
            count = ok(api.get("/my/count", params={"key": f"#risk#{dns}#"}))
            seen.update(count=count["count"], statistics_delta=tm_total() - before)
            return count if seen["count"] == n and seen["statistics_delta"] == n else None

        # 30 s visibility timeout before a dead consumer's pending events are claimed (checked every
        # 15 s), plus slack for a loaded 2-core CI machine; the message says what was counted last.
        try:
            count = wait_for(settled, timeout=150, interval=1.0,
                             what=f"reporting to count {n} risks (statistics +{n})")
        except AssertionError as e:
            raise AssertionError(f"{e}; last seen {seen}") from None
        assert count["status"] == {"TM": n}
        time.sleep(2.0)  # nothing may be applied a second time later either
        assert tm_total() - before == n
        assert ok(api.get("/my/count", params={"key": f"#risk#{dns}#"}))["count"] == n
        risks = search(api, "Risk", f"#risk#{dns}#")
        assert sorted(r["name"] for r in risks) == names
    finally:
        if restarted.poll() is None:
            os.killpg(restarted.pid, signal.SIGTERM)
            restarted.wait(15)
