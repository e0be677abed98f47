"""Resilient upstreams: one ``UpstreamPool`` per side of a service (its instances, or the legacy
invoker), and failover of failed safe requests from the new side to legacy.

Per instance: a circuit breaker (an open one is ejected from load balancing until a half-open
probe succeeds), in-flight count and a latency EWMA for the balancer, and — when configured — an
active health check. Per request: retries with exponential backoff and full jitter for safe
methods only (writes only when the route opts in), never past the request's time budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable

from ..resilience.backoff import RetryBudget, backoff_delay, is_retryable_method
from ..resilience.breaker import BreakerConfig, CircuitBreaker, State
from ..routes.models import BreakerSettings, HealthCheck, RetryPolicy
from ..transport import HttpRequest, HttpResponse, Transport, UpstreamError
from . import metrics

log = logging.getLogger("chariot_migrate.proxy")

FAILURE_STATUSES = frozenset({500, 502, 503, 504})  # the instance is sick (501 and 4xx are answers)
_STATE_CODE: dict[State, int] = {"closed": 0, "half_open": 1, "open": 2}


class CircuitOpen(UpstreamError):
    """Every instance of the side is ejected (open breaker / failed health checks): fail fast."""

    def __init__(self, service: str, retry_after: float) -> None:
        super().__init__("connect", f"circuit open for {service}: no healthy instance (retry in {retry_after:.1f}s)")
        self.retry_after = retry_after


class Instance:
    __slots__ = ("name", "transport", "breaker", "inflight", "ewma_s", "healthy", "_good", "_bad")

    def __init__(self, name: str, transport: Transport, breaker: CircuitBreaker) -> None:
        self.name, self.transport, self.breaker = name, transport, breaker
        self.inflight = 0
        self.ewma_s = 0.0  # smoothed response time (headers received), for weighted_response_time
        self.healthy = True  # last verdict of the active health check (True when there is none)
        self._good = self._bad = 0

    def observe_latency(self, seconds: float, alpha: float = 0.2) -> None:
        self.ewma_s = seconds if self.ewma_s == 0.0 else self.ewma_s + alpha * (seconds - self.ewma_s)

    def health_result(self, ok: bool, check: HealthCheck) -> bool:
        """Record one health check; True if the verdict changed."""
        if ok:
            self._good, self._bad = self._good + 1, 0
            if not self.healthy and self._good >= check.healthy_after:
                self.healthy = True
                return True
        else:
            self._bad, self._good = self._bad + 1, 0
            if self.healthy and self._bad >= check.unhealthy_after:
                self.healthy = False
                return True
        return False


def breaker_config(s: BreakerSettings) -> BreakerConfig:
    return BreakerConfig(failure_threshold=s.failure_threshold, failure_rate=s.failure_rate, window=s.window,
                         min_calls=s.min_calls, cooldown=s.cooldown_s)


def pick_instance(instances: list[Instance], strategy: str, cursor: int,
                  exclude: tuple[Instance, ...] = ()) -> Instance | None:
    """The load-balancing decision (pure over the instances' current numbers).

    Candidates: instances whose breaker would admit a call and that pass health checks; if every
    admissible instance fails its health check, health is ignored (better a doubtful instance
    than none — Envoy's panic mode). ``exclude`` (instances already tried) is a preference only.
    """
    if len(instances) == 1:  # the common case: no list building on the hot path
        only = instances[0]
        return only if only.breaker.available() else None
    ok = [i for i in instances if i.breaker.available()]
    if not ok:
        return None
    healthy = [i for i in ok if i.healthy] or ok
    fresh = [i for i in healthy if i not in exclude] or healthy
    if len(fresh) == 1:
        return fresh[0]
    if strategy == "least_connections":
        low = min(i.inflight for i in fresh)
        ties = [i for i in fresh if i.inflight == low]
        return ties[cursor % len(ties)]
    if strategy == "weighted_response_time":
        # Expected wait ≈ latency × (queue + 1); untried instances (ewma 0) get their turn first.
        return min(fresh, key=lambda i: (i.ewma_s * (i.inflight + 1), (instances.index(i) - cursor) % len(instances)))
    return fresh[cursor % len(fresh)]


class UpstreamPool:
    """A ``Transport`` over the instances of one side, with breakers, balancing and retries."""

    def __init__(self, service: str, side: str, instances: list[tuple[str, Transport]], *,
                 retries: RetryPolicy | None = None, breaker: BreakerSettings | None = None,
                 lb: str = "round_robin", health: HealthCheck | None = None,
                 clock: Callable[[], float] = time.monotonic, rand: Callable[[], float] = random.random,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 share: Callable[[str, str, State], None] | None = None) -> None:
        if not instances:
            raise ValueError(f"{service}: an upstream pool needs at least one instance")
        self.service, self.side, self.lb, self.health = service, side, lb, health
        self.share = share  # tells the other workers of a trip / recovery (proxy.breakers.BreakerBus)
        self.retries = retries or RetryPolicy()
        self._clock, self._rand, self._sleep = clock, rand, sleep
        cfg = breaker_config(breaker) if breaker else None
        self.instances: list[Instance] = []
        for name, transport in instances:
            # No breaker configured: one that never opens keeps the code path single.
            b = CircuitBreaker(f"{service}@{name}", cfg or BreakerConfig(failure_threshold=2**31, failure_rate=1.0,
                                                                       min_calls=2**31), clock)
            inst = Instance(name, transport, b)
            if cfg is not None:
                gauge = metrics.CIRCUIT_STATE.labels(service, name)
                gauge.set(0)
                b.on_transition = self._on_transition(inst, gauge)
            self.instances.append(inst)
        self._cursor = 0
        self._retry_counter = metrics.RETRIES.labels(service, side)
        self._health_task: asyncio.Task | None = None

    def _on_transition(self, inst: Instance, gauge) -> Callable[[State, State], None]:
        def changed(frm: State, to: State) -> None:
            gauge.set(_STATE_CODE[to])
            level = logging.WARNING if to == "open" else logging.INFO
            log.log(level, "circuit %s → %s for %s instance %s", frm, to, self.service, inst.name)
            if self.share is not None and to != "half_open" and not inst.breaker.forced:
                self.share(self.service, inst.name, to)
        return changed

    def breaker(self, instance: str) -> CircuitBreaker | None:
        return next((i.breaker for i in self.instances if i.name == instance), None)

    # ---- Transport ---------------------------------------------------------------------------

    async def send(self, request: HttpRequest, timeout: float, *, retry_writes: bool = False) -> HttpResponse:
        clock = self._clock
        deadline = clock() + timeout
        budget: RetryBudget | None = None  # built on the first failure only: the happy path stays lean
        tried: tuple[Instance, ...] = ()
        retry = 0
        error: UpstreamError | None = None
        resp: HttpResponse | None = None
        remaining = timeout
        while True:
            inst = pick_instance(self.instances, self.lb, self._cursor, tried)
            self._cursor += 1
            if inst is None or not inst.breaker.allow():
                if resp is not None:  # a retry found every instance ejected: the last answer stands
                    return resp
                if error is not None:
                    raise error
                raise CircuitOpen(self.service, min((i.breaker.retry_after() for i in self.instances), default=0))
            error = resp = None
            inst.inflight += 1
            try:
                resp = await inst.transport.send(request, remaining)
            except UpstreamError as e:
                error = e
                inst.breaker.record_failure()
            except BaseException:
                inst.breaker.release()  # cancelled: no verdict on the instance
                raise
            finally:
                inst.inflight -= 1
            if resp is not None:
                if resp.status not in FAILURE_STATUSES:
                    inst.breaker.record_success()
                    if self.lb == "weighted_response_time":
                        inst.observe_latency(clock() - (deadline - remaining))
                    return resp
                inst.breaker.record_failure()
            if budget is None:
                retryable = is_retryable_method(request.method, retry_writes)
                budget = RetryBudget(self.retries.attempts if retryable else 0)
            delay = backoff_delay(retry, self.retries.base_ms / 1000, self.retries.max_ms / 1000, self._rand)
            wait = budget.next_wait(retry, deadline - clock(), delay)
            if wait is None:
                if resp is not None:
                    return resp
                assert error is not None
                raise error
            if resp is not None:
                await _drain(resp)  # free the connection before trying again
            self._retry_counter.inc()
            tried = (*tried, inst) if len(tried) + 1 < len(self.instances) else ()
            retry += 1
            if wait > 0:
                await self._sleep(wait)
            remaining = max(deadline - clock(), 0.001)

    async def aclose(self) -> None:
        self.stop_health()
        for inst in self.instances:
            with contextlib.suppress(Exception):
                await inst.transport.aclose()

    # ---- active health checks ----------------------------------------------------------------

    def start_health(self) -> None:
        if self.health is None or self._health_task is not None:
            return
        try:
            self._health_task = asyncio.get_running_loop().create_task(self._health_loop(self.health))
        except RuntimeError:  # no loop yet (built outside the server): started on the next sync
            self._health_task = None

    def stop_health(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            self._health_task = None

    async def check_health_once(self) -> None:
        assert self.health is not None
        check = self.health
        results = await asyncio.gather(*(self._probe(i, check) for i in self.instances))
        for inst, ok in zip(self.instances, results, strict=True):
            metrics.HEALTH_CHECKS.labels(self.service, "ok" if ok else "fail").inc()
            if inst.health_result(ok, check):
                log.warning("%s instance %s is %s (active health check)", self.service, inst.name,
                            "healthy again" if inst.healthy else "unhealthy: ejected")

    async def _probe(self, inst: Instance, check: HealthCheck) -> bool:
        try:
            resp = await inst.transport.send(HttpRequest("GET", check.path), check.timeout_s)
            await _drain(resp)
            return 200 <= resp.status < 300
        except UpstreamError:
            return False
        except Exception:  # noqa: BLE001 — a probe must never kill the loop
            return False

    async def _health_loop(self, check: HealthCheck) -> None:
        while True:
            await self.check_health_once()
            await asyncio.sleep(check.interval_s)


async def _drain(resp: HttpResponse) -> None:
    with contextlib.suppress(UpstreamError):
        await resp.read()


# ---- failover -----------------------------------------------------------------------------


def failure_reason(resp: HttpResponse | None, error: UpstreamError | None) -> str | None:
    """Why the new side's answer should be replaced by legacy's (None: keep it)."""
    if error is not None:
        return "circuit_open" if isinstance(error, CircuitOpen) else error.kind
    if resp is not None and resp.status in FAILURE_STATUSES:
        return f"status_{resp.status}"
    return None


async def send_with_failover(new: Transport, legacy: Transport | None, request: HttpRequest, timeout: float,
                             legacy_timeout: float, *, retry_writes: bool,
                             failover: bool) -> tuple[HttpResponse, str | None]:
    """Send to the new side (retrying per its pool's policy); if that fails and ``failover`` is
    allowed (a safe request, and a legacy side exists), send the same request to legacy. Returns (response, reason) where
    ``reason`` is set when legacy answered instead. Raises UpstreamError when nothing answered."""
    resp: HttpResponse | None = None
    error: UpstreamError | None = None
    try:
        if isinstance(new, UpstreamPool):
            resp = await new.send(request, timeout, retry_writes=retry_writes)
        else:
            resp = await new.send(request, timeout)
    except UpstreamError as e:
        error = e
    reason = failure_reason(resp, error) if failover and legacy is not None else None
    if reason is None:
        if error is not None:
            raise error
        assert resp is not None
        return resp, None
    if resp is not None:
        await _drain(resp)
    assert legacy is not None  # reason is None without one
    return await legacy.send(request, legacy_timeout), reason


# ---- building pools from routes.yaml --------------------------------------------------------


def service_pool_key(svc) -> str:
    """What a service's pool is built from; a change rebuilds the pool (others keep theirs)."""
    return json.dumps([svc.instances, svc.retries.model_dump(), svc.breaker.model_dump(), svc.lb,
                       svc.health_check.model_dump() if svc.health_check else None, svc.pool_limit])


def build_service_pool(name: str, svc, share: Callable[[str, str, State], None] | None = None) -> UpstreamPool:
    from .upstream import http_transport

    return UpstreamPool(name, "new", [(url, http_transport(url, pool_limit=svc.pool_limit)) for url in svc.instances],
                        retries=svc.retries, breaker=svc.breaker, lb=svc.lb, health=svc.health_check, share=share)


def guard_legacy(invoker: Transport, legacy, share: Callable[[str, str, State], None] | None = None) -> Transport:
    """Wrap the legacy invoker in a pool only when retries or a breaker are configured (else: as is)."""
    if legacy.retries.attempts == 0 and legacy.breaker is None:
        return invoker
    return UpstreamPool("legacy", "legacy", [("legacy", invoker)], retries=legacy.retries, breaker=legacy.breaker,
                        share=share)
