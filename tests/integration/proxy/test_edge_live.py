"""Edge resilience and security with real processes: a killed and a slow new service (failover,
breaker open → closed), rate limits shared by two proxies through Redis, JWT refusals that never
reach an upstream, and the admin /ready answer."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid

import aiohttp
import httpx
import jwt
import pytest
import redis
from conftest import Proc, cli, eventually
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

pytestmark = pytest.mark.integration

ADMIN = {"authorization": "Bearer test-admin-token"}


def shift(tmp_path, routes, service, percent):
    # Forced: these upstreams are echo servers with no data to protect, and dual write would add
    # replays to the requests these tests count.
    r = subprocess.run(cli("shift", service, str(percent), "--force", "--reason", "edge test: no data",
                           "--routes", str(routes), "--state", f"sqlite:///{tmp_path}/state.db"),
                       capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert r.returncode == 0, r.stderr


def metric(proxy: Proc, name: str, **labels) -> float | None:
    text = httpx.get(f"http://127.0.0.1:{proxy.info['admin_port']}/metrics", headers=ADMIN, timeout=5).text
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for line in text.splitlines():
        if line.startswith(name + "{") and all(w in line for w in want):
            return float(line.rsplit(" ", 1)[1])
    return None


def answered_by_new(proxy: Proc, n: int) -> bool:
    """``n`` requests in a row (different accounts) answered by the new side: the shift reached the
    workers that served them (the proxy exposes no applied-state version to poll instead)."""
    return all(httpx.get(proxy.url + "/risk", headers={"account": f"probe{i}@x.com"}, timeout=5)
               .headers.get("x-migrate-side") == "new" for i in range(n))


def echo(name: str, port: int = 0, env: dict | None = None) -> Proc:
    p = Proc(cli("example-upstream", name, "--port", str(port)), env=env)
    p.wait_http("/__echo/count")  # never delayed
    return p


RESILIENT = """\
version: 1
bucket_by: [header:account]
legacy: {{invoker: http, url: "{legacy}"}}
defaults: {{failover: true, timeout_s: 2}}
services:
  risk-assessment: {{phase: 3, url: "{new}", timeout_s: {timeout}, retries: {{attempts: 1, base_ms: 20, max_ms: 50}},
                    breaker: {{failure_threshold: 3, cooldown_s: 1}}, dual_write: "on"}}
routes:
  - {{path: /risk, methods: [GET, PUT], service: risk-assessment}}
"""


def test_killed_service_fails_over_without_5xx_and_the_breaker_closes_when_it_returns(
        tmp_path, procs, start_echo, start_proxy):
    legacy = start_echo("legacy")
    new = echo("new")
    procs.append(new)
    routes = tmp_path / "routes.yaml"
    routes.write_text(RESILIENT.format(legacy=legacy.url, new=new.url, timeout=1))
    proxy = start_proxy(routes, workers=2)  # one breaker per worker; the gauge is the max over them
    shift(tmp_path, routes, "risk-assessment", 100)
    eventually(lambda: answered_by_new(proxy, 20), what="both workers to pick up the 100 % shift")
    results: list[tuple[float, int, str, str]] = []
    phase = {"stop": time.time() + 60}

    async def load():
        async with aiohttp.ClientSession() as s:
            async def worker(i):
                while time.time() < phase["stop"]:
                    async with s.get(proxy.url + "/risk", headers={"account": f"u{i}@x.com"}) as r:
                        await r.read()
                        results.append((time.time(), r.status, r.headers.get("x-migrate-side", ""),
                                        r.headers.get("x-migrate-failover", "")))
                    await asyncio.sleep(0.005)  # why: paces the load loop
            await asyncio.gather(*(worker(i) for i in range(8)))

    observed: dict[str, object] = {}

    def chaos():
        eventually(lambda: sum(sd == "new" for _, _, sd, _ in results) >= 50, what="the load to reach the new side")
        new.stop(signal.SIGKILL)
        observed["killed"] = time.time()

        def opened() -> bool:  # a breaker is open and has failed requests fast, before the restart
            failed_fast = any(fo == "circuit_open" for t, _, _, fo in results[-200:] if t > observed["killed"])
            return failed_fast and metric(proxy, "proxy_circuit_state", service="risk-assessment",
                                          instance=new.url) == 2.0

        eventually(opened, timeout=15, what="a breaker to open on the killed new side")
        observed["open"] = metric(proxy, "proxy_circuit_state", service="risk-assessment", instance=new.url)
        observed["restarting"] = time.time()
        again = echo("new", port=new.port)
        procs.append(again)
        observed["back"] = time.time()

        def all_new_again() -> bool:  # every worker's breaker closed: the recent answers are all new
            recent = results[-40:]
            return recent[0][0] > observed["back"] and all(sd == "new" for _, _, sd, _ in recent)

        try:
            eventually(all_new_again, timeout=15, interval=0.1, what="every breaker to close")
        except AssertionError:
            pass  # the assertions after the load say what went wrong (the closed gauge, the sides seen)
        observed["closed"] = metric(proxy, "proxy_circuit_state", service="risk-assessment", instance=new.url)
        phase["stop"] = time.time()

    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        def chaos_then_stop():  # a chaos step that times out ends the load too, not after 60 s
            try:
                chaos()
            finally:
                phase["stop"] = time.time()

        fut = ex.submit(chaos_then_stop)
        asyncio.run(load())
        fut.result()

    statuses = {st for _, st, _, _ in results}
    assert statuses == {200}, statuses  # no 5xx for reads while the new side was dead
    during = [(sd, fo) for t, _, sd, fo in results if observed["killed"] + 0.2 < t < observed["restarting"]]
    assert during and all(sd == "legacy" and fo for sd, fo in during)
    assert {fo for _, fo in during} <= {"connect", "circuit_open", "protocol"}
    assert "circuit_open" in {fo for _, fo in during}  # the breaker opened and fails fast
    assert observed["open"] == 2.0
    assert any(sd == "new" for t, _, sd, _ in results if t > observed["back"])  # probe succeeded → closed
    assert observed["closed"] == 0.0
    assert metric(proxy, "proxy_failovers_total", service="risk-assessment", reason="circuit_open") > 0


def test_slow_service_times_out_and_fails_over_with_bounded_latency(tmp_path, procs, start_echo, start_proxy):
    legacy = start_echo("legacy")
    slow = echo("new", env={"ECHO_DELAY_MS": "3000"})
    procs.append(slow)
    routes = tmp_path / "routes.yaml"
    routes.write_text(RESILIENT.format(legacy=legacy.url, new=slow.url, timeout=0.3))
    proxy = start_proxy(routes)
    shift(tmp_path, routes, "risk-assessment", 100)
    # one probe at most reaches the slow side (under the breaker's threshold of 3): until the shift
    # lands the probes go to legacy and answer with no failover
    eventually(lambda: httpx.get(proxy.url + "/risk", headers={"account": "probe@x.com"}, timeout=5)
               .headers.get("x-migrate-failover") == "timeout", what="the proxy to pick up the 100 % shift")

    async def run():
        async with aiohttp.ClientSession() as s:
            async def one(i):
                t0 = time.perf_counter()
                async with s.get(proxy.url + "/risk", headers={"account": f"u{i}@x.com"}) as r:
                    await r.read()
                    return r.status, r.headers.get("x-migrate-failover"), time.perf_counter() - t0
            out = []
            for batch in range(6):
                out += await asyncio.gather(*(one(batch * 10 + i) for i in range(10)))
            return out

    out = asyncio.run(run())
    assert {st for st, _, _ in out} == {200}
    reasons = {fo for _, fo, _ in out}
    assert "timeout" in reasons and "circuit_open" in reasons and None not in reasons
    lat = sorted(d for _, _, d in out)
    p99 = lat[int(len(lat) * 0.99) - 1]
    assert p99 < 1.2, lat[-5:]  # 0.3 s budget (retry included) + legacy, never the 3 s of the slow side


def test_rate_limit_is_shared_by_two_proxies_through_redis(tmp_path, start_echo, start_proxy):
    legacy, new = start_echo("legacy"), start_echo("new")
    prefix = f"test:{uuid.uuid4().hex}:"
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""\
version: 1
bucket_by: [header:account]
legacy: {{invoker: http, url: "{legacy.url}"}}
rate_limit_store: "redis://127.0.0.1:6379/0?prefix={prefix}"
services:
  risk-assessment: {{phase: 3, url: "{new.url}", rate_limit: {{rps: 2, burst: 6}}}}
routes:
  - {{path: /risk, methods: [GET], service: risk-assessment}}
""")
    try:
        a, b = start_proxy(routes), start_proxy(routes)
        t0 = time.time()
        answers = []
        with httpx.Client(timeout=5) as c:
            for i in range(30):
                p = a if i % 2 == 0 else b
                answers.append((p, c.get(p.url + "/risk", headers={"account": f"u{i}@x.com"})))
        elapsed = time.time() - t0
        ok = sum(r.status_code == 200 for _, r in answers)
        limited = [r for _, r in answers if r.status_code == 429]
        # each proxy alone would let its 6-token burst through (12+); shared, the whole fleet gets 6
        assert 6 <= ok <= 6 + 2 * elapsed + 1, (ok, elapsed)
        assert {p.port for p, r in answers if r.status_code == 429} == {a.port, b.port}
        assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    finally:
        r = redis.Redis()
        for k in r.scan_iter(prefix + "*"):
            r.delete(k)


def test_bad_tokens_are_refused_at_the_edge_and_never_reach_an_upstream(tmp_path, start_echo, start_proxy):
    legacy, new = start_echo("legacy"), start_echo("new")
    key, evil = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    pem = tmp_path / "signing.pub.pem"
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""\
version: 1
bucket_by: [header:account, jwt:email]
legacy: {{invoker: http, url: "{legacy.url}"}}
auth: {{public_key_file: "{pem}", issuer: chariot-migrate-local, audience: chariot}}
services:
  account: {{phase: 1, url: "{new.url}"}}
routes:
  - {{path: /token, methods: [GET], service: account, public: true}}
  - {{path: /key, methods: [POST], service: account}}
""")
    proxy = start_proxy(routes)

    def tok(priv, **over):
        now = int(time.time())
        claims = {"iss": "chariot-migrate-local", "aud": "chariot", "sub": "a@x.com", "email": "a@x.com",
                  "iat": now, "exp": now + 600, **over}
        return jwt.encode(claims, priv, algorithm="RS256")

    none = jwt.encode({"sub": "a@x.com", "exp": int(time.time()) + 600}, None, algorithm="none")

    def seen() -> int:
        return sum(httpx.get(e.url + "/__echo/count").json()["count"] for e in (legacy, new))

    before = seen()
    for token, why in [(tok(evil), "bad signature"), (tok(key, exp=int(time.time()) - 120), "token expired"),
                       (none, "'none' is not allowed"), (tok(key, aud="other"), "wrong audience"),
                       (None, "missing bearer token")]:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        r = httpx.post(proxy.url + "/key", headers=headers)
        assert r.status_code == 401 and why in r.json()["error"], r.text
        r = httpx.get(proxy.url + "/unrouted", headers=headers)  # the legacy default is guarded too
        assert r.status_code == 401
    assert seen() == before
    r = httpx.post(proxy.url + "/key", headers={"authorization": f"Bearer {tok(key)}"})
    assert r.status_code == 200 and r.json()["side"] == "legacy"
    assert httpx.get(proxy.url + "/token").status_code == 200  # public
    assert seen() == before + 2

    admin = f"http://127.0.0.1:{proxy.info['admin_port']}"
    assert httpx.get(admin + "/ready").json()["ready"] is True
    routes.write_text(routes.read_text() + "bogus: 1\n")
    r = httpx.get(admin + "/ready")
    assert r.status_code == 200 and r.json()["routes"]["valid"] is False and r.json()["degraded"] == ["routes"]
    # The proxy rejects the reload and keeps its table (and its auth).
    eventually(lambda: any("routes.yaml rejected" in ln for ln in proxy.stderr_lines), what="the rejected reload")
    assert httpx.post(proxy.url + "/key", headers={"authorization": f"Bearer {tok(key)}"}).status_code == 200
    assert httpx.post(proxy.url + "/key").status_code == 401
