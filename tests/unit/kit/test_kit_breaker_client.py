import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.services.kit.breaker import BreakerConfig, CircuitBreaker, CircuitOpenError
from chariot_migrate.services.kit.client import RetryPolicy, ServiceClient
from chariot_migrate.services.kit.context import correlation_id_var


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_opens_after_consecutive_failures_then_half_open_probe_closes():
    clock = Clock()
    b = CircuitBreaker("peer", BreakerConfig(failure_threshold=3, cooldown=10, min_calls=100), clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    b.record_success()  # resets the consecutive count
    for _ in range(3):
        assert b.allow()
        b.record_failure()
    assert b.state == "open" and not b.allow()
    clock.t = 9.9
    assert not b.allow() and b.retry_after() == pytest.approx(0.1)
    clock.t = 10
    assert b.allow() and b.state == "half_open"
    assert not b.allow()  # only one probe at a time
    b.record_success()
    assert b.state == "closed"
    assert b.transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_failed_probe_reopens_and_restarts_cooldown():
    clock = Clock()
    b = CircuitBreaker("p", BreakerConfig(failure_threshold=1, cooldown=5), clock)
    b.allow()
    b.record_failure()
    clock.t = 5
    assert b.allow()
    b.record_failure()
    assert b.state == "open"
    clock.t = 9
    assert not b.allow()
    clock.t = 10
    assert b.allow()


def test_opens_on_failure_rate_over_the_window():
    b = CircuitBreaker(
        "p", BreakerConfig(failure_threshold=100, failure_rate=0.5, window=10, min_calls=10), Clock()
    )
    for i in range(9):
        b.record_failure() if i % 2 else b.record_success()
    assert b.state == "closed"  # 4/9 and below min_calls
    b.record_failure()
    assert b.state == "open"  # 5/10


@given(st.lists(st.sampled_from(["ok", "fail", "tick", "allow"]), max_size=80))
def test_breaker_invariants(ops):
    clock = Clock()
    b = CircuitBreaker("p", BreakerConfig(failure_threshold=3, cooldown=5, window=6, min_calls=4), clock)
    for op in ops:
        was_open = b.state == "open"
        if op == "ok":
            b.record_success()
        elif op == "fail":
            b.record_failure()
        elif op == "tick":
            clock.t += 2
        else:
            allowed = b.allow()
            if was_open and clock.t - b._opened_at < 5:
                assert not allowed  # never lets a call through during the cooldown
        assert b.state in ("closed", "open", "half_open")
        assert 0 <= b._probes_in_flight <= b.config.half_open_max_calls
        assert b.state != "closed" or b._consecutive_failures < 3


@given(st.integers(0, 30), st.floats(0, 1))
def test_full_jitter_stays_within_the_capped_exponential(retry, u):
    p = RetryPolicy(base=0.1, cap=2.0)
    delay = p.backoff(retry, lambda lo, hi: lo + (hi - lo) * u)
    assert 0 <= delay <= min(2.0, 0.1 * 2**retry)


def client(**kw):
    sleeps = []

    async def sleep(s):
        sleeps.append(s)

    c = ServiceClient("http://peer.test", peer="peer", sleep=sleep, rng=lambda lo, hi: hi, **kw)
    return c, sleeps


@respx.mock
async def test_idempotent_requests_retry_with_backoff():
    route = respx.get("http://peer.test/x").mock(
        side_effect=[httpx.Response(503), httpx.ConnectError("refused"), httpx.Response(200, json={"ok": 1})]
    )
    c, sleeps = client(retry=RetryPolicy(attempts=3, base=0.1, cap=1))
    r = await c.get("/x")
    assert r.status_code == 200 and route.call_count == 3
    assert sleeps == [0.1, 0.2]
    await c.aclose()


@respx.mock
async def test_non_idempotent_requests_are_sent_once():
    route = respx.post("http://peer.test/x").mock(return_value=httpx.Response(503))
    c, sleeps = client()
    r = await c.post("/x", json={})
    assert r.status_code == 503 and route.call_count == 1 and sleeps == []
    respx.post("http://peer.test/y").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(httpx.ConnectError):
        await c.post("/y")
    await c.aclose()


@respx.mock
async def test_retries_exhausted_returns_last_answer_and_4xx_is_not_retried():
    respx.get("http://peer.test/down").mock(return_value=httpx.Response(502))
    four = respx.get("http://peer.test/bad").mock(return_value=httpx.Response(404))
    c, _ = client(retry=RetryPolicy(attempts=2))
    assert (await c.get("/down")).status_code == 502
    assert (await c.get("/bad")).status_code == 404 and four.call_count == 1
    await c.aclose()


@respx.mock
async def test_breaker_fails_fast_when_open():
    route = respx.get("http://peer.test/x").mock(side_effect=httpx.ConnectError("refused"))
    clock = Clock()
    c, _ = client(
        retry=RetryPolicy(attempts=1),
        breaker=CircuitBreaker("peer", BreakerConfig(failure_threshold=2, cooldown=30), clock),
    )
    for _ in range(2):
        with pytest.raises(httpx.ConnectError):
            await c.get("/x")
    with pytest.raises(CircuitOpenError, match="open"):
        await c.get("/x")
    assert route.call_count == 2
    clock.t = 31
    route.side_effect = None
    route.return_value = httpx.Response(200)
    assert (await c.get("/x")).status_code == 200 and c.breaker.state == "closed"
    await c.aclose()


@respx.mock
async def test_context_token_and_account_are_propagated():
    route = respx.get("http://peer.test/x").mock(return_value=httpx.Response(200))
    c, _ = client(token=lambda: "svc-token")
    tok = correlation_id_var.set("corr-42")
    try:
        await c.get("/x", account="acme@example.com")
    finally:
        correlation_id_var.reset(tok)
    sent = route.calls.last.request.headers
    assert sent["authorization"] == "Bearer svc-token"
    assert sent["x-correlation-id"] == "corr-42"
    assert sent["account"] == "acme@example.com"
    assert sent["traceparent"].startswith("00-")
    await c.aclose()
