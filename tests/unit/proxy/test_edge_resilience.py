"""Pure resilience pieces: breaker transitions (injected clock), backoff bounds, retry budget,
load balancing, upstream pools with fake instances, failover decisions."""

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.proxy.resilience import (
    CircuitOpen,
    Instance,
    UpstreamPool,
    pick_instance,
    send_with_failover,
)
from chariot_migrate.resilience.backoff import RetryBudget, backoff_delay, is_retryable_method
from chariot_migrate.resilience.breaker import BreakerConfig, CircuitBreaker
from chariot_migrate.routes.models import BreakerSettings, HealthCheck, RetryPolicy
from chariot_migrate.transport import HttpRequest, HttpResponse, UpstreamError


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += s


class FakeInstance:
    """Answers by script: an int status, an UpstreamError kind string, or a (status, seconds) pair."""

    def __init__(self, name, script=None, clock=None, default=200):
        self.name, self.script, self.clock, self.default = name, list(script or []), clock, default
        self.seen: list[tuple[str, float]] = []

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.seen.append((request.method, timeout))
        step = self.script.pop(0) if self.script else self.default
        if isinstance(step, tuple):
            step, cost = step
            if self.clock:
                self.clock.t += min(cost, timeout)
            if cost > timeout:
                raise UpstreamError("timeout", f"{self.name} timed out")
        if isinstance(step, str):
            raise UpstreamError(step, f"{self.name}: {step}")
        return HttpResponse(step, [("content-type", "text/plain")], self.name.encode())

    async def aclose(self):
        pass


# ---- breaker -------------------------------------------------------------------------------


def test_breaker_opens_probes_and_closes_with_injected_clock():
    clock = Clock()
    seen = []
    b = CircuitBreaker("x", BreakerConfig(failure_threshold=3, cooldown=10), clock)
    b.on_transition = lambda frm, to: seen.append((frm, to))
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert b.state == "closed"
    b.record_failure()
    assert b.state == "open" and not b.allow() and not b.available()
    assert b.retry_after() == pytest.approx(10)
    clock.t += 10
    assert b.available() and b.state == "open"  # available() reserves nothing
    assert b.allow() and b.state == "half_open"
    assert not b.available() and not b.allow()  # one probe at a time
    b.record_failure()
    assert b.state == "open"  # failed probe: open again, cooldown restarts
    clock.t += 9.9
    assert not b.allow()
    clock.t += 0.1
    assert b.allow()
    b.record_success()
    assert b.state == "closed" and b.allow()
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "open"), ("open", "half_open"),
                    ("half_open", "closed")]


def test_kit_reexport_is_the_core_breaker():
    from chariot_migrate.services.kit.breaker import CircuitBreaker as KitBreaker

    assert KitBreaker is CircuitBreaker


# ---- backoff -------------------------------------------------------------------------------


@given(retry=st.integers(0, 100), base=st.floats(0.001, 5), cap=st.floats(0.001, 60), r=st.floats(0, 1))
def test_full_jitter_stays_within_the_exponential_cap(retry, base, cap, r):
    d = backoff_delay(retry, base, cap, lambda: r)
    assert 0 <= d <= min(cap, base * 2 ** min(retry, 62)) + 1e-12


def test_backoff_grows_exponentially_until_the_cap():
    caps = [backoff_delay(n, 0.1, 2.0, lambda: 1.0) for n in range(7)]
    assert caps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])


@given(attempts=st.integers(0, 10), retry=st.integers(0, 12), remaining=st.floats(-1, 10), delay=st.floats(0, 10))
def test_retry_budget_never_waits_past_the_deadline(attempts, retry, remaining, delay):
    wait = RetryBudget(attempts).next_wait(retry, remaining, delay)
    if wait is not None:
        assert retry < attempts and wait == delay and remaining - wait >= 0.05


def test_only_safe_methods_retry_unless_writes_opt_in():
    assert all(is_retryable_method(m) for m in ("GET", "HEAD", "OPTIONS"))
    assert not any(is_retryable_method(m) for m in ("POST", "PUT", "DELETE", "PATCH"))
    assert is_retryable_method("PUT", True) and is_retryable_method("DELETE", True)
    assert not is_retryable_method("POST", True) and not is_retryable_method("PATCH", True)


# ---- pools ---------------------------------------------------------------------------------


def pool(instances, clock, **kw):
    return UpstreamPool("svc", "new", [(i.name, i) for i in instances], clock=clock, rand=lambda: 1.0,
                        sleep=clock.sleep, **kw)


async def test_get_is_retried_on_another_instance_and_counts():
    clock = Clock()
    a, b = FakeInstance("a", ["connect"], clock), FakeInstance("b", [], clock)
    p = pool([a, b], clock, retries=RetryPolicy(attempts=2, base_ms=100, max_ms=1000))
    resp = await p.send(HttpRequest("GET", "/x"), 5.0)
    assert resp.status == 200 and resp.body == b"b"
    assert len(a.seen) == 1 and len(b.seen) == 1
    assert clock.t == pytest.approx(1000.1)  # one backoff of (rand=1) × base


async def test_writes_are_not_retried_unless_the_route_opts_in():
    clock = Clock()
    a = FakeInstance("a", ["connect", "connect"], clock)
    p = pool([a], clock, retries=RetryPolicy(attempts=3))
    with pytest.raises(UpstreamError):
        await p.send(HttpRequest("POST", "/x"), 5.0)
    assert len(a.seen) == 1
    with pytest.raises(UpstreamError):
        await p.send(HttpRequest("PUT", "/x"), 5.0)
    assert len(a.seen) == 2
    a.script = ["connect"]
    resp = await p.send(HttpRequest("PUT", "/x"), 5.0, retry_writes=True)
    assert resp.status == 200 and len(a.seen) == 4  # failed once more, then succeeded
    a.script = ["connect"]
    with pytest.raises(UpstreamError):
        await p.send(HttpRequest("POST", "/x"), 5.0, retry_writes=True)  # POST never


async def test_5xx_is_retried_and_the_last_answer_stands_when_retries_run_out():
    clock = Clock()
    a = FakeInstance("a", [503, 502, 200], clock)
    p = pool([a], clock, retries=RetryPolicy(attempts=2, base_ms=10, max_ms=10))
    assert (await p.send(HttpRequest("GET", "/"), 5.0)).status == 200
    a.script = [503, 503, 503, 503]
    assert (await p.send(HttpRequest("GET", "/"), 5.0)).status == 503
    assert len(a.seen) == 6


@given(costs=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=8), timeout=st.floats(0.1, 5.0),
       attempts=st.integers(0, 6))
def test_retries_never_exceed_the_request_timeout(costs, timeout, attempts):
    clock = Clock()
    a = FakeInstance("a", [(500, c) for c in costs], clock, default=(500, 0.0))
    p = pool([a], clock, retries=RetryPolicy(attempts=attempts, base_ms=200, max_ms=2000))
    start = clock.t

    async def go():
        try:
            await p.send(HttpRequest("GET", "/"), timeout)
        except UpstreamError:
            pass

    asyncio.run(go())
    assert clock.t - start <= timeout + 1e-9
    assert len(a.seen) <= attempts + 1


async def test_breaker_ejects_a_bad_instance_then_all_open_fails_fast():
    clock = Clock()
    a, b = FakeInstance("a", default="connect", clock=clock), FakeInstance("b", clock=clock)
    p = pool([a, b], clock, breaker=BreakerSettings(failure_threshold=2, cooldown_s=5))
    for _ in range(6):
        try:
            await p.send(HttpRequest("GET", "/"), 1.0)
        except UpstreamError:
            pass
    assert p.instances[0].breaker.state == "open"
    n = len(a.seen)
    for _ in range(10):
        assert (await p.send(HttpRequest("GET", "/"), 1.0)).body == b"b"  # a is ejected
    assert len(a.seen) == n
    b.default = "connect"
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await p.send(HttpRequest("GET", "/"), 1.0)
    with pytest.raises(CircuitOpen):
        await p.send(HttpRequest("GET", "/"), 1.0)
    # after the cooldown a half-open probe goes out and, succeeding, closes the breaker
    a.default = b.default = 200
    clock.t += 5
    assert (await p.send(HttpRequest("GET", "/"), 1.0)).status == 200
    assert {i.breaker.state for i in p.instances} & {"closed"}


def _inst(name, inflight=0, ewma=0.0, healthy=True):
    i = Instance(name, None, CircuitBreaker(name))  # type: ignore[arg-type]
    i.inflight, i.ewma_s, i.healthy = inflight, ewma, healthy
    return i


def test_load_balancing_strategies():
    a, b, c = _inst("a", inflight=3, ewma=0.01), _inst("b", inflight=1, ewma=0.5), _inst("c", inflight=1, ewma=0.02)
    insts = [a, b, c]
    assert [pick_instance(insts, "round_robin", n).name for n in range(4)] == ["a", "b", "c", "a"]
    assert {pick_instance(insts, "least_connections", n).name for n in range(4)} == {"b", "c"}
    # expected wait = ewma × (inflight + 1): a 0.04, b 1.0, c 0.03
    c.ewma_s = 0.015
    assert pick_instance(insts, "weighted_response_time", 0).name == "c"
    b.healthy = False
    assert {pick_instance(insts, "round_robin", n).name for n in range(6)} == {"a", "c"}
    a.healthy = c.healthy = False
    assert {pick_instance(insts, "round_robin", n).name for n in range(6)} == {"a", "b", "c"}  # panic mode
    assert pick_instance(insts, "round_robin", 0, exclude=(a,)).name == "b"


async def test_active_health_checks_eject_and_readmit():
    clock = Clock()
    a, b = FakeInstance("a", clock=clock), FakeInstance("b", clock=clock)
    check = HealthCheck(interval_s=1, unhealthy_after=2, healthy_after=1)
    p = pool([a, b], clock, health=check)
    a.default = 503
    await p.check_health_once()
    assert p.instances[0].healthy  # one bad check is not enough
    await p.check_health_once()
    assert not p.instances[0].healthy
    a.default = 200
    a.seen.clear()
    for _ in range(4):
        assert (await p.send(HttpRequest("GET", "/"), 1.0)).body == b"b"
    assert a.seen == []
    await p.check_health_once()
    assert p.instances[0].healthy and a.seen == [("GET", 1.0)]


async def test_failover_serves_safe_requests_from_legacy_with_a_reason():
    clock = Clock()
    new = pool([FakeInstance("new", default="connect", clock=clock)], clock)
    legacy = FakeInstance("legacy")
    resp, reason = await send_with_failover(new, legacy, HttpRequest("GET", "/"), 1, 29, retry_writes=False,
                                            failover=True)
    assert resp.body == b"legacy" and reason == "connect"
    new.instances[0].transport.default = 503
    resp, reason = await send_with_failover(new, legacy, HttpRequest("GET", "/"), 1, 29, retry_writes=False,
                                            failover=True)
    assert resp.body == b"legacy" and reason == "status_503"
    new.instances[0].transport.default = 404  # an answer, not a failure
    resp, reason = await send_with_failover(new, legacy, HttpRequest("GET", "/"), 1, 29, retry_writes=False,
                                            failover=True)
    assert resp.status == 404 and reason is None
    new.instances[0].transport.default = "timeout"
    with pytest.raises(UpstreamError):  # failover not allowed (a write): the error stands
        await send_with_failover(new, legacy, HttpRequest("POST", "/"), 1, 29, retry_writes=False, failover=False)
    assert [m for m, _ in legacy.seen] == ["GET", "GET"]


async def test_failover_reason_for_an_open_circuit():
    clock = Clock()
    new = pool([FakeInstance("new", default="connect", clock=clock)], clock,
               breaker=BreakerSettings(failure_threshold=1))
    legacy = FakeInstance("legacy")
    _, first = await send_with_failover(new, legacy, HttpRequest("GET", "/"), 1, 29, retry_writes=False, failover=True)
    _, second = await send_with_failover(new, legacy, HttpRequest("GET", "/"), 1, 29, retry_writes=False, failover=True)
    assert (first, second) == ("connect", "circuit_open")
    assert len(new.instances[0].transport.seen) == 1


async def test_legacy_invoker_is_wrapped_only_when_configured():
    from chariot_migrate.proxy.resilience import guard_legacy
    from chariot_migrate.routes.models import LegacyConfig

    invoker = FakeInstance("legacy", ["function"])
    plain = LegacyConfig(invoker="http", url="http://127.0.0.1:9")
    assert guard_legacy(invoker, plain) is invoker  # nothing configured: no wrapper, no cost
    guarded = guard_legacy(invoker, plain.model_copy(update={"retries": RetryPolicy(attempts=1, base_ms=1)}))
    assert isinstance(guarded, UpstreamPool)
    assert (await guarded.send(HttpRequest("GET", "/"), 1.0)).status == 200 and len(invoker.seen) == 2


async def test_health_loop_runs_in_the_background_and_stops():
    sick = FakeInstance("a", default=503)
    p = UpstreamPool("svc", "new", [("a", sick), ("b", FakeInstance("b"))],
                     health=HealthCheck(interval_s=0.01, unhealthy_after=2))
    p.start_health()
    for _ in range(100):
        await asyncio.sleep(0.01)  # why: an async poll's interval (conftest.eventually is sync)
        if not p.instances[0].healthy:
            break
    assert not p.instances[0].healthy and p.instances[1].healthy
    await p.aclose()
    n = len(sick.seen)
    await asyncio.sleep(0.05)  # why: an absence: five health intervals pass with no probe
    assert len(sick.seen) == n  # stopped with the pool


async def test_transports_rebuild_a_pool_only_when_its_config_changes(tmp_path):
    from chariot_migrate.proxy.app import Transports
    from chariot_migrate.routes.loader import parse_routes

    base = 'version: 1\nlegacy: {invoker: http, url: "http://127.0.0.1:9"}\nservices:\n'
    t = Transports()
    t.sync(parse_routes(base + '  a: {phase: 1, url: "http://127.0.0.1:9"}\n  b: {phase: 2, url: "http://127.0.0.1:9"}\n'))
    a, b = t.services["a"], t.services["b"]
    assert isinstance(a, UpstreamPool) and a.retries.attempts == 0
    t.sync(parse_routes(base + '  a: {phase: 1, url: "http://127.0.0.1:9", retries: {attempts: 3}}\n'
                               '  b: {phase: 2, url: "http://127.0.0.1:9"}\n'))
    assert t.services["b"] is b and t.services["a"] is not a and t.services["a"].retries.attempts == 3
    await t.aclose()
