"""Rate limits and breaker trips shared between proxy workers: which Redis (pure rule), what a
trip message is, how another worker's trip or recovery is applied, and that a pool tells its
own trips — never the ones it was told."""

from __future__ import annotations

import pytest
from test_edge_resilience import Clock, FakeInstance, pool

from chariot_migrate.proxy.app import Transports
from chariot_migrate.proxy.breakers import apply, edge_store_url, message, parse
from chariot_migrate.resilience.breaker import BreakerConfig, CircuitBreaker
from chariot_migrate.routes.models import BreakerSettings
from chariot_migrate.transport import HttpRequest, UpstreamError

REDIS = "redis://127.0.0.1:6379/0?prefix=x:"


@pytest.mark.parametrize(("configured", "state", "want"), [
    (None, REDIS, REDIS),  # a Redis state store: shared by default
    (None, "rediss://cache:6380/1", "rediss://cache:6380/1"),
    (None, "sqlite:///tmp/state.db", None),  # one host, nothing to share through
    (None, None, None),
    ("redis://other:6379/2", "sqlite:///s.db", "redis://other:6379/2"),  # explicit wins
    ("redis://other:6379/2", REDIS, "redis://other:6379/2"),
    ("local", REDIS, None),  # opted out: per worker
])
def test_edge_store_url(configured, state, want):
    assert edge_store_url(configured, state) == want


def test_messages_round_trip_and_own_or_junk_are_ignored():
    raw = message("me", "risk-assessment", "http://127.0.0.1:9", "open")
    assert parse(raw, "other") == ("risk-assessment", "http://127.0.0.1:9", "open")
    assert parse(raw, "me") is None  # our own publication comes back on the channel
    assert parse(message("x", "s", "i", "half_open"), "me") is None
    assert parse("not json", "me") is None and parse('{"origin": "x"}', "me") is None


def test_apply_opens_and_closes_without_counting_failures():
    clock = Clock()
    b = CircuitBreaker("i", BreakerConfig(failure_threshold=3, cooldown=5), clock)
    seen = []
    b.on_transition = lambda frm, to: seen.append((frm, to, b.forced))
    assert apply(b, "open") and b.state == "open" and not b.available()
    assert not apply(b, "open")  # already open: nothing changes
    clock.t += 5
    assert b.available()  # a full cooldown from when it was told, then a probe of its own
    assert apply(b, "closed") and b.state == "closed"
    assert seen == [("closed", "open", True), ("open", "closed", True)]
    assert not b.forced


async def test_a_pool_shares_its_own_trips_not_the_ones_it_was_told():
    clock = Clock()
    told: list[tuple[str, str, str]] = []
    a = FakeInstance("a", default="connect", clock=clock)
    p = pool([a], clock, breaker=BreakerSettings(failure_threshold=2, cooldown_s=5),
             share=lambda s, i, to: told.append((s, i, to)))
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await p.send(HttpRequest("GET", "/"), 1.0)
    assert told == [("svc", "a", "open")]
    clock.t += 5
    a.default = 200
    assert (await p.send(HttpRequest("GET", "/"), 1.0)).status == 200  # half-open probe → closed
    assert told[-1] == ("svc", "a", "closed") and ("svc", "a", "half_open") not in told
    told.clear()
    breaker = p.breaker("a")
    assert breaker is not None and p.breaker("nope") is None
    apply(breaker, "open")  # another worker's trip: applied, not echoed back
    assert told == [] and breaker.state == "open"
    n = len(a.seen)
    with pytest.raises(UpstreamError):
        await p.send(HttpRequest("GET", "/"), 1.0)  # fails fast: the instance is not called
    assert len(a.seen) == n


async def test_transports_find_breakers_and_publish_through_the_bus():
    published = []

    class Bus:
        url = REDIS

        def publish(self, service, instance, to):
            published.append((service, instance, to))

        async def aclose(self):
            pass

    t = Transports()
    clock = Clock()
    p = pool([FakeInstance("a", default="connect", clock=clock)], clock,
             breaker=BreakerSettings(failure_threshold=1, cooldown_s=5), share=t._share)
    t.services["svc"] = p
    assert t.breaker("svc", "a") is p.breaker("a") and t.breaker("other", "a") is None
    assert t.breaker("legacy", "legacy") is None  # an unguarded legacy invoker has no breaker
    with pytest.raises(UpstreamError):
        await p.send(HttpRequest("GET", "/"), 1.0)  # no bus yet: nothing published, nothing fails
    t.bus = Bus()  # type: ignore[assignment]
    apply(p.breaker("a"), "closed")
    p.breaker("a").record_failure()
    assert published == [("svc", "a", "open")]
    await t.share_through(None)  # routes.yaml now says local: the bus goes
    assert t.bus is None
