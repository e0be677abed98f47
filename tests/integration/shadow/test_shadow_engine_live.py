"""Shadow engine against two real HTTP upstreams on 127.0.0.1 (ephemeral ports), real stores."""

import asyncio
import hashlib
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import aiohttp
import pytest
import redis
from aiohttp import web

from chariot_migrate.shadow import (
    NormaliseRules,
    RedisDiffStore,
    ShadowEngine,
    ShadowJob,
    SQLiteDiffStore,
    build_report,
    render_html,
    render_markdown,
)
from chariot_migrate.transport import HttpRequest, HttpResponse, UpstreamError

pytestmark = pytest.mark.integration
REDIS_URL = "redis://127.0.0.1:6379/0"


class AiohttpTransport:
    """Minimal HTTP transport for the test (the proxy has its own)."""

    def __init__(self, base_url: str):
        self.base = base_url
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32))

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        url = self.base + request.path + (f"?{request.query}" if request.query else "")
        try:
            async with self.session.request(request.method, url, headers=request.headers, data=request.body or None,
                                            timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                return HttpResponse(r.status, [(k.lower(), v) for k, v in r.headers.items()], await r.read())
        except TimeoutError as e:
            raise UpstreamError("timeout", "timed out") from e
        except aiohttp.ClientError as e:
            raise UpstreamError("connect", type(e).__name__) from e

    async def aclose(self):
        await self.session.close()


def really_differs(item_id: int) -> bool:
    return int(hashlib.blake2b(str(item_id).encode(), digest_size=4).hexdigest(), 16) % 1000 < 30  # ~3 %


def make_app(side: str, seen_headers: list) -> web.Application:
    async def item(request: web.Request) -> web.Response:
        seen_headers.append({k.lower(): v for k, v in request.headers.items()})
        item_id = int(request.query["id"])
        price = 10.0 + item_id % 7
        if side == "new" and really_differs(item_id):
            price += 1
        # Both sides stamp a fresh time and request id on every call: noise, with no configuration.
        now = datetime.now(UTC) + timedelta(microseconds=random.randint(1, 999_999))
        return web.json_response({
            "id": item_id, "name": f"item-{item_id}", "price": price,
            "updated": now.isoformat(), "requestId": str(uuid.uuid4()),
        })

    async def listing(request: web.Request) -> web.Response:
        items = [{"id": i} for i in range(5)]
        return web.json_response({"items": items if side == "legacy" else items[::-1]})

    async def slow(request: web.Request) -> web.Response:
        if side == "new":
            await asyncio.sleep(0.3)  # why: the fake slow new side itself
        return web.json_response({})

    async def secret(request: web.Request) -> web.Response:
        return web.json_response({
            "token": f"{side}-body-token-S3CR3T", "note": f"issued {JWT}", "n": 1 if side == "legacy" else 2,
            "profile": {"password": f"{side}-pw-S3CR3T"},
        })

    app = web.Application()
    app.add_routes([web.get("/item", item), web.get("/list", listing), web.get("/slow", slow), web.get("/secret", secret)])
    return app


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2JAZXhhbXBsZS5jb20ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"


@pytest.fixture
async def upstreams():
    seen = {"legacy": [], "new": []}
    runners, transports = [], {}
    for side in ("legacy", "new"):
        runner = web.AppRunner(make_app(side, seen[side]), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        runners.append(runner)
        transports[side] = AiohttpTransport(f"http://127.0.0.1:{port}")
    yield transports, seen
    for t in transports.values():
        await t.aclose()
    for r in runners:
        await r.cleanup()


async def proxy_like(engine, transports, route_id, path, query, *, noise, rules, headers=(), timeout=2.0):
    """What the proxy does: answer from the primary (legacy here), then submit the shadow job."""
    req = HttpRequest("GET", path, query, list(headers))
    t0 = time.perf_counter()
    primary = await transports["legacy"].send(req, timeout)
    return engine.submit(ShadowJob(
        service="catalog", route_id=route_id, request=req, primary_side="legacy", primary=primary,
        primary_latency_s=time.perf_counter() - t0, primary_transport=transports["legacy"],
        shadow_transport=transports["new"], timeout_s=timeout, noise_sample=noise, rules=rules,
    ))


async def test_real_difference_rate_noise_and_order(upstreams, tmp_path):
    transports, seen = upstreams
    store = SQLiteDiffStore(tmp_path / "shadow.db")
    engine = ShadowEngine(store, concurrency=8, queue_size=5000)
    await engine.start()
    rng = random.Random(42)
    ids = [rng.randrange(1_000_000) for _ in range(1500)]
    expected_rate = sum(map(really_differs, ids)) / len(ids)
    sem = asyncio.Semaphore(16)

    async def one(i, item_id):
        async with sem:
            await proxy_like(engine, transports, "GET /item", "/item", f"id={item_id}", noise=i % 5 == 0, rules=NormaliseRules())

    await asyncio.gather(*(one(i, x) for i, x in enumerate(ids)))
    for i in range(60):
        await proxy_like(engine, transports, "GET /list", "/list", "", noise=i % 3 == 0, rules=NormaliseRules())
        await proxy_like(engine, transports, "GET /list unordered", "/list", "", noise=i % 3 == 0,
                         rules=NormaliseRules(unordered=["$.items"]))
    await engine.join()
    await engine.aclose()
    assert engine.stats["dropped"] == 0 and engine.stats["completed"] == 1620

    report = build_report(store)
    item = report.route("catalog", "GET /item")
    # A second primary call that timed out on a loaded machine is no A/A evidence and is left out.
    assert item.pairs == 1500 and 100 <= item.aa_pairs <= 300
    assert item.aa_pairs == 300 or engine.stats["noise_sample_errors"] > 0
    by_path = {s.path: s for s in item.signatures}
    price = by_path["$.price"]
    assert price.classification == "difference"
    assert abs(price.share - 0.03) <= 0.01 and price.share == pytest.approx(expected_rate)
    for noisy in ("$.updated", "$.requestId"):
        assert by_path[noisy].classification == "noise", noisy
        assert by_path[noisy].value_class in ("str-timestamp", "str-uuid")
    assert item.exact_match_rate == 0  # every pair differs in the noise fields...
    assert abs(item.adjusted_match_rate - 0.97) <= 0.01  # ...but only price counts
    assert item.real_signatures == 1
    assert item.latency["legacy"].count == 1500 and item.latency["new"].p50_ms is not None

    ordered = report.route("catalog", "GET /list")
    (order_sig,) = ordered.signatures
    assert (order_sig.kind, order_sig.path, order_sig.classification) == ("order", "$.items", "difference")
    assert ordered.adjusted_match_rate == 0
    unordered = report.route("catalog", "GET /list unordered")
    assert unordered.exact_match_rate == 1 and unordered.signatures == []

    # The shadow copy and the A/A repeat are marked; the primary call is not.
    assert all(h.get("x-migrate-shadow") == "1" for h in seen["new"])
    assert len(seen["legacy"]) == 1500 + 300  # (only /item records headers)
    assert sum(h.get("x-migrate-shadow") == "1" for h in seen["legacy"]) == 300
    assert "$.price" in render_markdown(report) and "<svg" in render_html(report)
    store.close()


async def test_queue_overflow_drops_and_counts_with_a_slow_shadow(upstreams, tmp_path):
    transports, _ = upstreams
    store = SQLiteDiffStore(tmp_path / "shadow.db")
    engine = ShadowEngine(store, concurrency=2, queue_size=4)
    await engine.start()
    t0 = time.perf_counter()
    accepted = [await proxy_like(engine, transports, "GET /slow", "/slow", "", noise=False, rules=NormaliseRules())
                for _ in range(20)]
    submit_time = time.perf_counter() - t0
    assert submit_time < 1.0  # the primary path never waited for the slow shadow (20 × 0.3 s if it did)
    assert accepted.count(False) >= 10 and engine.stats["dropped"] == accepted.count(False)
    await engine.join()
    await engine.aclose()
    assert store.load()[0].pairs == accepted.count(True) == engine.stats["completed"]
    store.close()


SECRETS = [JWT, "hdr-S3CR3T-api-key", "query-S3CR3T", "cookie-S3CR3T", "legacy-body-token-S3CR3T",
           "new-body-token-S3CR3T", "legacy-pw-S3CR3T", "new-pw-S3CR3T"]


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_secrets_never_reach_the_store(upstreams, tmp_path, backend):
    transports, _ = upstreams
    prefix = f"test:{uuid4().hex}:shadow"
    store = SQLiteDiffStore(tmp_path / "shadow.db") if backend == "sqlite" else RedisDiffStore(REDIS_URL, prefix=prefix)
    engine = ShadowEngine(store)
    await engine.start()
    headers = [("authorization", f"Bearer {JWT}"), ("x-guard-api-key-secret", "hdr-S3CR3T-api-key"),
               ("cookie", "session=cookie-S3CR3T"), ("account", "bob@example.com")]
    for _ in range(3):
        await proxy_like(engine, transports, "GET /secret", "/secret", "api_key=query-S3CR3T&page=1",
                         noise=True, rules=NormaliseRules(), headers=headers)
    await engine.join()
    await engine.aclose()
    (d,) = store.load()
    assert d.pairs == 3 and d.examples  # examples were stored...
    ex = next(iter(d.examples.values()))[0]
    assert "page=1" in ex["query"] and ("account", "bob@example.com") in [tuple(h) for h in ex["request_headers"]]
    if backend == "sqlite":
        store.close()
        raw = b"".join(p.read_bytes() for p in Path(tmp_path).glob("shadow.db*"))
    else:
        r = redis.Redis.from_url(REDIS_URL)
        chunks = []
        for key in r.scan_iter(match=prefix + "*"):
            chunks.append(key)
            t = r.type(key)
            if t == b"hash":
                chunks.extend(b"%s=%s" % kv for kv in r.hgetall(key).items())
            elif t == b"list":
                chunks.extend(r.lrange(key, 0, -1))
            elif t == b"zset":
                chunks.extend(m for m, _ in r.zrange(key, 0, -1, withscores=True))
        raw = b"\n".join(chunks)
        assert raw, "nothing was written to Redis"
        r.delete(*r.scan_iter(match=prefix + "*"))
        r.close()
        store.close()
    assert b"[REDACTED]" in raw  # ...and they were redacted, not merely absent
    for s in SECRETS:
        assert s.encode() not in raw, s
