"""Two real proxy processes with a Redis state store and no `rate_limit_store`: they enforce one
rate limit between them, and a breaker one of them trips is open in the other at once."""

from __future__ import annotations

import socket
import time
import uuid

import httpx
import pytest
import redis
from conftest import eventually
from test_edge_live import metric

pytestmark = pytest.mark.integration


def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_two_proxies_share_one_rate_limit_and_breaker_trips_by_default(tmp_path, start_echo, start_proxy):
    legacy, new = start_echo("legacy"), start_echo("new")
    prefix = f"test:{uuid.uuid4().hex}:"
    state = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    dead = f"http://127.0.0.1:{_dead_port()}"
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""\
version: 1
defaults: {{failover: true, timeout_s: 2}}
legacy: {{invoker: http, url: "{legacy.url}"}}
bucket_by: [header:account]
services:
  risk-assessment: {{phase: 3, url: "{new.url}", rate_limit: {{rps: 1, burst: 6}}}}
  asset-discovery: {{phase: 2, url: "{dead}", percent: 100, retries: {{attempts: 0}},
                    breaker: {{failure_threshold: 3, cooldown_s: 30}}}}
routes:
  - {{path: /risk, methods: [GET], service: risk-assessment}}
  - {{path: /asset, methods: [GET], service: asset-discovery}}
""")
    try:
        a, b = start_proxy(routes, state=state), start_proxy(routes, state=state)
        with httpx.Client(timeout=5) as c:
            # one limit: alternate between the proxies; each alone would pass its 6-token burst
            t0 = time.time()
            answers = [(p, c.get(p.url + "/risk", headers={"account": f"u{i}@x.com"}))
                       for i in range(24) for p in [(a, b)[i % 2]]]
            elapsed = time.time() - t0
            ok = sum(r.status_code == 200 for _, r in answers)
            assert 6 <= ok <= 6 + elapsed + 1, (ok, elapsed)
            assert {p.port for p, r in answers if r.status_code == 429} == {a.port, b.port}
            rds = redis.Redis()
            assert any(rds.scan_iter(prefix + "rl:*"))  # the buckets live in the state store's Redis

            # proxy a sees the new side of asset-discovery fail three times: its breaker opens …
            reasons_a = [c.get(a.url + "/asset", headers={"account": f"v{i}@x.com"}).headers.get("x-migrate-failover")
                         for i in range(3)]
            assert reasons_a == ["connect"] * 3
            assert c.get(a.url + "/asset", headers={"account": "w@x.com"}).headers["x-migrate-failover"] == "circuit_open"
            # … and proxy b, which never saw a failure, fails fast from its first request
            eventually(lambda: metric(b, "proxy_circuit_state", service="asset-discovery", instance=dead) == 2.0,
                       what="proxy b to receive proxy a's trip (its breaker gauge open)")
            first_b = c.get(b.url + "/asset", headers={"account": "z@x.com"})
            assert first_b.status_code == 200 and first_b.headers["x-migrate-side"] == "legacy"
            assert first_b.headers["x-migrate-failover"] == "circuit_open"
    finally:
        r = redis.Redis()
        for k in r.scan_iter(prefix + "*"):
            r.delete(k)
