"""One request's trace id from the proxy's access log to the service's log and into the Lambda
event; then /metrics of the proxy (admin port) and of the service after traffic.

Real processes: a moto server, the configuration service (`chariot-migrate service run`), the
proxy with the local Lambda invoker running a fixture function that echoes its trace context.
The configuration route is shadowed at 100 % with legacy primary, so the one request reaches
both sides; writes are dual-written to the service (which refuses the unauthenticated replay:
retries, then a dead letter); a service pointing at a closed port exercises failover, the
breaker and the rate limit.
"""

from __future__ import annotations

import json
import socket
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from chariot_services_procs import ROOT, clean_redis, moto_estate, service_env
from conftest import Proc, cli
from prometheus_client.parser import text_string_to_metric_families

from chariot_migrate.lifecycle import reserve_port

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.integration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_TP = f"00-{TRACE}-00f067aa0ba902b7-01"


class LoggedProc(Proc):
    """A Proc that keeps its stdout lines too (services log JSON to stdout)."""

    def _wait_ready(self, timeout: float) -> dict:
        assert self.popen.stdout is not None
        self.stdout_lines: list[str] = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.popen.stdout.readline()
            if line:
                try:
                    info = json.loads(line)
                except ValueError:
                    continue
                threading.Thread(target=lambda: self.stdout_lines.extend(self.popen.stdout), daemon=True).start()
                return info
            if self.popen.poll() is not None:
                raise RuntimeError(f"process exited {self.popen.returncode}: {''.join(self.stderr_lines)[-2000:]}")
        raise RuntimeError(f"process not ready in {timeout}s")


def json_lines(lines: list[str]) -> list[dict]:
    out = []
    for line in list(lines):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


def wait_for(fn, timeout: float = 15.0):
    deadline = time.time() + timeout
    while True:
        got = fn()
        if got or time.time() > deadline:
            return got
        time.sleep(0.05)  # why: a poll's interval (returns the last value for the caller's assertion)


_HELD: list[socket.socket] = []


def closed_port() -> int:
    """A port that refuses connections for the whole run: bound here, never listening, so no
    other process can start listening on it meanwhile."""
    _HELD.append(reserve_port())
    return _HELD[-1].getsockname()[1]


def samples(text: str) -> dict[str, list[tuple[dict, float]]]:
    out: dict[str, list[tuple[dict, float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def total(got: dict, name: str, **labels: str) -> float:
    return sum(v for lbl, v in got.get(name, []) if all(lbl.get(k) == x for k, x in labels.items()))


@pytest.fixture(scope="module")
def estate():
    with moto_estate() as e:
        yield e


@pytest.fixture
def stack(estate, tmp_path):
    prefix = f"obs{uuid.uuid4().hex[:8]}-"
    started: list[Proc] = []
    try:
        svc = LoggedProc(cli("service", "run", "configuration", "--port", "0", "--routes", str(ROOT / "routes.yaml")),
                         env=service_env(estate, prefix, ACCOUNT_URL="http://127.0.0.1:9"))
        started.append(svc)
        svc.wait_http("/health")
        routes = tmp_path / "routes.yaml"
        routes.write_text(textwrap.dedent(f"""\
            version: 1
            bucket_by: [header:account]
            legacy: {{invoker: local, functions: "obs_functions:FUNCTIONS", default_function: obs-echo,
                      concurrency: 1}}
            defaults: {{failover: true}}
            dual_write: {{outbox: "sqlite:///{tmp_path}/outbox.db", max_attempts: 2, base_delay_s: 0.05,
                          max_delay_s: 0.1, timeout_s: 2, lease_s: 5}}
            services:
              configuration: {{phase: 1, url: "{svc.url}", percent: 0, shadow_percent: 100, dual_write: "on"}}
              broken: {{phase: 2, url: "http://127.0.0.1:{closed_port()}", percent: 100,
                        rate_limit: {{rps: 0.01, burst: 3}}}}
              flaky: {{phase: 3, url: "http://127.0.0.1:{closed_port()}", percent: 0, dual_write: "on"}}
            routes:
              - {{path: /setting, methods: [GET, PUT], service: configuration, function: obs-echo}}
              - {{path: /broken, methods: [GET], service: broken, function: obs-echo}}
              - {{path: /flaky, methods: [PUT], service: flaky, function: obs-echo}}
            """))
        proxy = Proc([sys.executable, str(HERE / "obs_proxy_main.py"), str(routes), f"sqlite:///{tmp_path}/state.db"],
                     cwd=tmp_path, env={"CHARIOT_MIGRATE_ADMIN_TOKEN": "test-admin-token",
                                        "PYTHONPATH": f"{HERE}:{ROOT}"}, ready_timeout=60)
        started.append(proxy)
        proxy.wait_http("/__ready_probe")
        proxy.wait_http("/health", port=proxy.info["admin_port"])
        yield proxy, svc
    finally:
        for p in reversed(started):
            p.stop()
        clean_redis(prefix)


def test_one_trace_id_from_proxy_to_service_to_lambda_and_metrics_after_traffic(stack):
    proxy, svc = stack
    secret = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJl"
    with httpx.Client(base_url=proxy.url, timeout=30) as http:
        r = http.get("/setting", headers={"traceparent": CLIENT_TP, "account": "a@example.com",
                                          "authorization": f"Bearer {secret}"})
        assert r.status_code == 200 and r.headers["x-migrate-side"] == "legacy"
        seen = r.json()
        # Into the Lambda: the event's header and the handler's TRACEPARENT carry the client's trace.
        assert seen["event_traceparent"].split("-")[1] == TRACE and seen["env_traceparent"] == seen["event_traceparent"]
        # More traffic for the metrics: a warm invocation, a dual-written write, failovers, a 429.
        assert http.get("/setting", headers={"account": "b@example.com"}).status_code == 200
        assert http.put("/setting", headers={"account": "a@example.com"}, json={"name": "x"}).status_code == 200
        assert http.put("/flaky", headers={"account": "a@example.com"}, json={"n": 1}).status_code == 200
        broken = [http.get("/broken", headers={"account": "c@example.com"}) for _ in range(4)]
    assert [b.headers.get("x-migrate-failover") is not None for b in broken[:3]] == [True, True, True]
    assert broken[3].status_code == 429

    # The proxy's access line for that request carries the trace id (and no secret).
    access = wait_for(lambda: [d for d in json_lines(proxy.stderr_lines)
                               if d.get("message") == "request" and d.get("trace_id") == TRACE])
    assert access and access[0]["route"] == "/setting" and access[0]["side"] == "legacy"
    assert access[0]["status"] == 200 and access[0]["correlation_id"] and "duration_ms" in access[0]
    # The shadow copy reached the service, whose request line has the same trace id.
    service_line = wait_for(lambda: [d for d in json_lines(svc.stdout_lines)
                                     if d.get("message") == "request" and d.get("trace_id") == TRACE])
    assert service_line and service_line[0]["route"] != "/health" and service_line[0]["service"] == "configuration"
    assert secret not in "".join(proxy.stderr_lines) + "".join(svc.stdout_lines)

    admin = f"http://127.0.0.1:{proxy.info['admin_port']}/metrics"
    auth = {"authorization": "Bearer test-admin-token"}
    assert httpx.get(admin, timeout=10).status_code in (401, 403)

    def scraped() -> dict:
        got = samples(httpx.get(admin, headers=auth, timeout=10).text)
        ready = (total(got, "dual_write_dead_letters", direction="to_new") >= 2
                 and total(got, "shadow_comparisons_total", service="configuration") >= 2)
        return got if ready else {}

    got = wait_for(scraped, timeout=30) or samples(httpx.get(admin, headers=auth, timeout=10).text)
    # Requests with the side label and the buckets from 1 ms.
    assert total(got, "http_request_duration_seconds_count", service="configuration", side="legacy") == 3
    assert {lbl["le"] for lbl, _ in got["http_request_duration_seconds_bucket"]} >= {"0.001", "0.0025", "0.005", "10.0", "+Inf"}
    # In-flight gauges exist and are back to 0 after the traffic.
    conns = {(lbl["service"], lbl["connection_type"]): v for lbl, v in got["active_connections_total"]}
    assert conns[("configuration", "client")] == 0 and conns[("configuration", "upstream_legacy")] == 0
    # Shadow: both GETs compared (legacy echo vs service answer differ), none dropped.
    assert total(got, "shadow_comparisons_total", service="configuration") >= 2
    assert total(got, "shadow_requests_total", service="configuration", result="submitted") == 2
    # Dual write: the service refuses the unauthenticated replay (401: permanent → dead letter at
    # once); the unreachable one is retried once (max_attempts 2), then dead-lettered.
    assert total(got, "dual_write_records_total", service="configuration", result="appended") == 1
    assert total(got, "dual_write_replays_total", service="configuration", direction="to_new", result="dead") == 1
    assert total(got, "dual_write_retries_total", service="flaky", direction="to_new") == 1
    assert total(got, "dual_write_dead_lettered_total", service="flaky", direction="to_new") == 1
    assert total(got, "dual_write_dead_letters", service="configuration", direction="to_new") == 1
    assert total(got, "dual_write_dead_letters", service="flaky", direction="to_new") == 1
    assert total(got, "dual_write_outbox_pending", service="flaky", direction="to_new") == 0
    # Resilience at the edge: failovers, breaker state, rate limit.
    assert total(got, "proxy_failovers_total", service="broken") == 3
    assert "proxy_circuit_state" in got
    assert total(got, "proxy_rate_limited_total", service="broken") == 1
    # The Lambda emulator: one cold start, warm calls after it, durations observed.
    assert total(got, "lambda_invocations_total", function="obs-echo", cold="true") == 1
    assert total(got, "lambda_invocations_total", function="obs-echo", cold="false") >= 5
    assert total(got, "lambda_invocation_duration_seconds_count", function="obs-echo") >= 6

    # The service's own /metrics: its request histogram (no side label) and in-flight gauge.
    svc_metrics = samples(httpx.get(f"{svc.url}/metrics", timeout=10).text)
    assert total(svc_metrics, "http_request_duration_seconds_count", service="configuration", endpoint="/setting") >= 2
    assert all("side" not in lbl for lbl, _ in svc_metrics["http_request_duration_seconds_count"])
    assert any(lbl["connection_type"] == "http" for lbl, _ in svc_metrics["active_connections_total"])
