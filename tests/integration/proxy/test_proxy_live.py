"""The real proxy process (uvicorn workers + admin process) in front of real echo upstreams."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid

import aiohttp
import httpx
import pytest
import redis
from conftest import Proc, cli, eventually

pytestmark = pytest.mark.integration

ROUTES = """\
version: 1
stage_prefix: /chariot
bucket_by: [header:account, jwt:email]
legacy: {{invoker: http, url: "{legacy}"}}
defaults: {{max_body_bytes: 2048, timeout_s: 1}}
services:
  account: {{phase: 1, url: "{new}", dual_write: "on"}}
  risk-assessment: {{phase: 3, url: "{new}", dual_write: "on"}}
  capabilities: {{phase: 4, url: "{new}", dual_write: "on"}}
  dead: {{phase: 5, url: "http://127.0.0.1:1", dual_write: "on", failover: false}}
routes:
  - {{path: /token, methods: [GET], service: account, public: true}}
  - {{path: /risk, methods: [GET, PUT, DELETE], service: risk-assessment, timeout_s: 1}}
  - {{path: /my, methods: [GET], service: capabilities, match: {{query: {{key: "^#job#"}}}}}}
  - {{path: /my, methods: [POST], service: risk-assessment, match: {{body: {{"node.labels[0]": "^Risk$"}}}}}}
  - {{path: /big, methods: [GET], service: account}}
  - {{path: /dead, methods: [GET], service: dead}}
"""


@pytest.fixture
def stack(tmp_path, start_echo, start_proxy):
    legacy, new = start_echo("legacy"), start_echo("new")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, new=new.url))

    def make(**kw):
        return start_proxy(routes, **kw)

    return routes, legacy, new, make


def side(proxy: Proc, path: str, account: str | None = None, **kw) -> str:
    headers = {"account": account} if account else {}
    r = httpx.request(kw.pop("method", "GET"), proxy.url + path, headers=headers, timeout=5, **kw)
    assert r.status_code == 200, r.text
    return r.headers["x-migrate-side"]


def run_cli(tmp_path, *args: str, state: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args, "--routes", str(tmp_path / "routes.yaml"),
                              "--state", state or f"sqlite:///{tmp_path}/state.db"),
                          capture_output=True, text=True, cwd=tmp_path, timeout=30)


def test_routing_predicates_and_stage_prefix(stack, tmp_path):
    routes, legacy, new, make = stack
    proxy = make()
    run_cli(tmp_path, "shift", "capabilities", "100")
    run_cli(tmp_path, "shift", "risk-assessment", "100")
    eventually(lambda: side(proxy, "/chariot/my", "a@x.com", method="POST", json={"node": {"labels": ["Risk"]}})
               == "new", what="the shifts to land")
    assert side(proxy, "/chariot/my?key=%23job%23a", "a@x.com") == "new"
    assert side(proxy, "/chariot/my?key=%23asset%23a", "a@x.com") == "legacy"  # unmatched → legacy
    assert side(proxy, "/chariot/my", "a@x.com", method="POST", json={"node": {"labels": ["Risk"]}}) == "new"
    assert side(proxy, "/chariot/my", "a@x.com", method="POST", json={"node": {"labels": ["Asset"]}}) == "legacy"
    r = httpx.get(proxy.url + "/chariot//risk", headers={"account": "a@x.com"})
    assert r.json()["path"] == "/risk"  # '//' collapsed, stage stripped


def test_sticky_split_accuracy_and_rollback(stack, tmp_path):
    routes, legacy, new, make = stack
    proxy = make(workers=2)
    assert run_cli(tmp_path, "shift", "risk-assessment", "25", "--reason", "canary 1").returncode == 0

    async def sides(accounts):
        async with aiohttp.ClientSession() as s:
            async def one(a):
                async with s.get(proxy.url + "/chariot/risk", headers={"account": a}) as r:
                    assert r.status == 200
                    return r.headers["x-migrate-side"]
            return await asyncio.gather(*(one(a) for a in accounts))

    accounts = [f"user{i}@example.com" for i in range(2000)]

    def split_landed():  # on both workers: one still at 0 % would pull the share far down
        got = asyncio.run(sides(accounts))
        return got if 0.22 < got.count("new") / len(got) < 0.28 else None

    first = eventually(split_landed, what="a 25 % split on every worker")
    assert asyncio.run(sides(accounts)) == first  # sticky, across both workers

    assert run_cli(tmp_path, "rollback", "risk-assessment").returncode == 0
    eventually(lambda: set(asyncio.run(sides(accounts[:200]))) == {"legacy"}, what="the rollback on every worker")
    h = run_cli(tmp_path, "history", "risk-assessment", "--json")
    assert '"canary 1"' in h.stdout and '"rollback"' in h.stdout


def test_live_shift_under_load_has_zero_failed_requests(stack, tmp_path):
    routes, legacy, new, make = stack
    proxy = make(workers=2)
    stop = [time.time() + 60.0]  # moved to "shift + 2.5 s" once the shift has landed
    results: list[tuple[float, int, str]] = []

    async def load():
        async with aiohttp.ClientSession() as s:
            async def worker(i):
                while time.time() < stop[0]:
                    async with s.get(proxy.url + "/chariot/risk", headers={"account": f"u{i}@x.com"}) as r:
                        await r.read()
                        results.append((time.time(), r.status, r.headers.get("x-migrate-side", "")))
            await asyncio.gather(*(worker(i) for i in range(20)))

    def shifter():
        eventually(lambda: len(results) >= 50, what="the load to run")
        assert run_cli(tmp_path, "shift", "risk-assessment", "100").returncode == 0
        done = time.time()
        stop[0] = done + 2.5
        return done

    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(shifter)
        asyncio.run(load())
        shifted_at = fut.result()
    assert len(results) > 200
    assert all(status == 200 for _, status, _ in results), {s for _, s, _ in results}
    after = [sd for t, _, sd in results if t > shifted_at + 1.0]
    assert after and set(after) == {"new"}  # every worker saw the change within 1 s


def test_pin_through_admin_api_and_token_required(stack, tmp_path):
    routes, legacy, new, make = stack
    proxy = make()
    admin = f"http://127.0.0.1:{proxy.info['admin_port']}"
    assert httpx.get(admin + "/state").status_code == 401
    assert httpx.get(admin + "/state", headers={"authorization": "Bearer wrong"}).status_code == 401
    env = {**os.environ, "CHARIOT_MIGRATE_ADMIN_TOKEN": "test-admin-token", "CHARIOT_MIGRATE_ADMIN_URL": admin}
    r = subprocess.run(cli("pin", "risk-assessment", "QA@example.com", "--to", "new"), env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    eventually(lambda: side(proxy, "/chariot/risk", "qa@example.com") == "new", what="the pin")
    assert side(proxy, "/chariot/risk", "other@example.com") == "legacy"
    st = subprocess.run(cli("status", "--json"), env=env, capture_output=True, text=True, timeout=30)
    assert '"qa@example.com": "new"' in st.stdout
    bad = subprocess.run(cli("shift", "nope", "5"), env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "unknown service 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_hot_reload_valid_then_invalid(stack, tmp_path):
    routes, legacy, new, make = stack
    proxy = make()
    run_cli(tmp_path, "shift", "account", "100")
    eventually(lambda: side(proxy, "/chariot/token", "a@x.com") == "new", what="the shift")
    # Valid change: /token now belongs to risk-assessment (at 0 %) → legacy.
    routes.write_text(routes.read_text().replace("service: account, public: true", "service: risk-assessment, public: true"))
    eventually(lambda: side(proxy, "/chariot/token", "a@x.com") == "legacy", timeout=5,
               what="the valid routes.yaml to be picked up")
    # Invalid change: the old table keeps serving, the error names the line.
    routes.write_text(routes.read_text().replace("service: dead}", "service: ghost}"))
    eventually(lambda: any("rejected" in line and "unknown service 'ghost'" in line and ":17:" in line
                           for line in proxy.stderr_lines), what="the rejection naming the line")
    assert side(proxy, "/chariot/token", "a@x.com") == "legacy"


def test_bad_config_at_start_is_one_line_and_exit_1(stack, tmp_path):
    routes, *_ = stack
    routes.write_text(routes.read_text().replace("phase: 3", "phase: -3"))
    r = subprocess.run(cli("routes", "validate", str(routes)), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "services.risk-assessment.phase" in r.stderr and ":8:" in r.stderr
    assert "Traceback" not in r.stderr
    p = subprocess.run(cli("proxy", "--routes", str(routes), "--port", "0", "--admin-port", "0"),
                       capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert p.returncode == 1 and "phase" in p.stderr and "Traceback" not in p.stderr


def test_413_502_504_and_streaming(stack, tmp_path):
    routes, legacy, new, make = stack
    proxy = make()
    r = httpx.put(proxy.url + "/chariot/risk", content=b"x" * 4096, headers={"account": "a@x.com"})
    assert r.status_code == 413
    r = httpx.get(proxy.url + "/chariot/dead")
    assert r.status_code == 200  # dead service at 0 % → legacy serves
    run_cli(tmp_path, "shift", "dead", "100")

    def dead_on_new():
        got = httpx.get(proxy.url + "/chariot/dead", headers={"account": "a@x.com"})
        return got if got.status_code == 502 else None

    r = eventually(dead_on_new, what="the shift to the dead service")
    assert r.status_code == 502 and r.json()["side"] == "new" and "cannot connect" in r.json()["error"]
    r = httpx.get(proxy.url + "/chariot/risk", headers={"account": "a@x.com", "x-echo-delay-ms": "1500"})
    assert r.status_code == 504 and r.json()["side"] == "legacy"
    # 20 MiB streamed through (not buffered whole): content arrives intact.
    with httpx.stream("GET", proxy.url + "/chariot/big", headers={"x-echo-bytes": str(20 * 1024 * 1024)}) as s:
        assert s.status_code == 200
        assert sum(len(c) for c in s.iter_bytes()) == 20 * 1024 * 1024


def test_metrics_on_admin_port_only(stack, tmp_path):
    routes, legacy, new, make = stack
    proxy = make(workers=2)
    for i in range(30):
        side(proxy, "/chariot/risk", f"m{i}@x.com")
    admin = f"http://127.0.0.1:{proxy.info['admin_port']}"

    def count() -> float:  # workers apply their request metrics in batches, twice a second
        m = httpx.get(admin + "/metrics", headers={"authorization": "Bearer test-admin-token"}).text
        line = next((x for x in m.splitlines() if x.startswith("http_request_duration_seconds_count{")
                     and 'endpoint="/risk"' in x and 'side="legacy"' in x), " 0")
        return float(line.rsplit(" ", 1)[1])

    eventually(lambda: count() >= 30.0, what="30 requests in the metrics")
    assert count() == 30.0  # summed across both workers
    assert httpx.get(proxy.url + "/metrics").headers["x-migrate-side"] == "legacy"  # public port: just a route


def test_graceful_shutdown_finishes_inflight(stack, tmp_path):
    routes, legacy, new, make = stack
    proxy = make()
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(httpx.get, proxy.url + "/chariot/risk",
                        headers={"account": "a@x.com", "x-echo-delay-ms": "700"}, timeout=10)
        time.sleep(0.3)  # lets the request reach the proxy (nothing to poll: the proxy exposes no in-flight count)
        os.killpg(proxy.popen.pid, signal.SIGTERM)
        r = fut.result()
    assert r.status_code == 200
    proxy.popen.wait(10)


def test_redis_state_store_reaches_every_replica(tmp_path, start_echo, start_proxy):
    legacy, new = start_echo("legacy"), start_echo("new")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, new=new.url))
    prefix = f"test:{uuid.uuid4().hex}:"
    url = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    try:
        a, b = start_proxy(routes, state=url), start_proxy(routes, state=url)
        assert run_cli(tmp_path, "pin", "risk-assessment", "r@x.com", "--to", "new", state=url).returncode == 0
        eventually(lambda: side(a, "/chariot/risk", "r@x.com") == "new" and side(b, "/chariot/risk", "r@x.com") == "new",
                   what="the pin on both replicas")
    finally:
        r = redis.Redis()
        for k in r.scan_iter(prefix + "*"):
            r.delete(k)
