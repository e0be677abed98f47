"""Deployments that share one Redis never see each other's keys (issue 15, item 5), on the real
Redis: two event buses in different namespaces do not consume each other's events (the same
namespace does, as one deployment's replicas must), and every toolkit store puts the deployment's
namespace before its own prefix."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
import redis.asyncio as aioredis

from chariot_migrate.redis_keys import split_redis_url
from chariot_migrate.rollout.redis_store import RedisStateStore
from chariot_migrate.rollout.state import ServiceState
from chariot_migrate.services.kit.events import Event, RedisStreamsBus
from chariot_migrate.services.kit.settings import ServiceSettings

pytestmark = pytest.mark.integration
URL = "redis://127.0.0.1:6379/0"


def _redis_or_skip() -> redis.Redis:
    r = redis.Redis.from_url(URL, socket_connect_timeout=0.5)
    try:
        r.ping()
    except redis.RedisError:
        pytest.skip("needs Redis on 127.0.0.1:6379")
    return r


def _prefix(namespace: str) -> str:
    settings = ServiceSettings.from_env("account", env={"REDIS_NAMESPACE": namespace, "TABLE_PREFIX": "t-"})
    return f"{settings.redis_prefix}chariot:"  # what services/kit/chariot.py gives its bus


async def test_two_deployments_on_one_redis_do_not_consume_each_others_events():
    sync = _redis_or_skip()
    run = uuid.uuid4().hex[:8]
    ns_a, ns_b = f"ns-a-{run}:", f"ns-b-{run}:"
    client = aioredis.from_url(URL)
    got: dict[str, list[str]] = {"a1": [], "a2": [], "b": []}

    def handler(name: str):
        async def handle(event: Event) -> None:
            got[name].append(event.data["actor"])
        return handle

    # Two replicas of deployment A (one consumer group between them) and deployment B.
    buses = {name: RedisStreamsBus(client, prefix=_prefix(ns), block=0.05) for name, ns in
             (("a1", ns_a), ("a2", ns_a), ("b", ns_b))}
    for name, bus in buses.items():
        bus.subscribe("account", ["user.action"], handler(name))
        await bus.start()
    try:
        for i in range(6):
            await buses["a1"].publish(Event.new("user.action", "acme", {"actor": f"a{i}", "action": "login"}))
        await buses["b"].publish(Event.new("user.action", "acme", {"actor": "b0", "action": "login"}))
        for _ in range(100):
            if len(got["a1"]) + len(got["a2"]) == 6 and got["b"]:
                break
            await asyncio.sleep(0.05)  # why: an async poll's interval (conftest.eventually is sync)
        await asyncio.sleep(0.3)  # anything misrouted would arrive meanwhile
        assert sorted(got["a1"] + got["a2"]) == [f"a{i}" for i in range(6)]  # each exactly once, within A
        assert got["b"] == ["b0"]
        assert buses["a1"].stream("user.action") == f"{ns_a}t-chariot:events:user.action"
        assert sync.exists(f"{ns_b}t-chariot:events:user.action")
        assert not sync.exists("t-chariot:events:user.action")  # nothing outside the namespaces
    finally:
        for bus in buses.values():
            await bus.stop()
        for key in sync.scan_iter(match=f"ns-?-{run}:*"):
            sync.delete(key)
        await client.aclose()


def test_the_toolkit_stores_put_the_namespace_before_their_prefix(monkeypatch):
    sync = _redis_or_skip()
    run = uuid.uuid4().hex[:8]
    assert split_redis_url(f"{URL}?prefix=mine:", "d:", env={"REDIS_NAMESPACE": "ns:"}) == (URL, "ns:mine:")
    assert split_redis_url(URL, "d:", env={}) == (URL, "d:")
    assert split_redis_url("unix:///tmp/r.sock?db=0&prefix=p:", "d:", env={}) == ("unix:///tmp/r.sock?db=0", "p:")
    stores = {}
    for ns in ("one", "two"):
        monkeypatch.setenv("REDIS_NAMESPACE", f"{ns}-{run}:")
        stores[ns] = RedisStateStore(URL)
    try:
        stores["one"].update("svc", lambda s: s.model_copy(update={"percent_bp": 2500}),
                             default=ServiceState(service="svc"), actor="t", action="shift")
        assert stores["one"].get("svc").percent_bp == 2500
        assert stores["two"].get("svc") is None and stores["two"].version() == 0
        assert sync.exists(f"one-{run}:chariot-migrate:services")
    finally:
        for key in sync.scan_iter(match=f"*-{run}:*"):
            sync.delete(key)
