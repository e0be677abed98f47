import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from chariot_migrate.services.kit.cache import ReadThroughCache

pytestmark = pytest.mark.integration
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def two_instances():
    namespace = f"test:{uuid.uuid4().hex}:cache"
    ra, rb = aioredis.from_url(REDIS_URL), aioredis.from_url(REDIS_URL)
    a = ReadThroughCache(ra, namespace=namespace, l1_ttl=60, l2_ttl=60)
    b = ReadThroughCache(rb, namespace=namespace, l1_ttl=60, l2_ttl=60)
    await a.start()
    await b.start()
    yield a, b, ra
    await a.stop()
    await b.stop()
    keys = [k async for k in ra.scan_iter(match=namespace + "*")]
    if keys:
        await ra.delete(*keys)
    await ra.aclose()
    await rb.aclose()


async def test_l2_is_shared_and_writes_invalidate_the_other_instances_l1(two_instances):
    a, b, r = two_instances
    store = {"asset": {"name": "v1"}}
    loads = []

    async def loader():
        loads.append(1)
        return dict(store["asset"])

    assert await a.get_or_load("asset", loader) == {"name": "v1"}
    assert await b.get_or_load("asset", loader) == {"name": "v1"}  # from L2
    assert len(loads) == 1 and b.stats["l2_hits"] == 1
    assert await b.get_or_load("asset", loader) == {"name": "v1"}  # from B's L1
    assert b.stats["l1_hits"] == 1

    store["asset"] = {"name": "v2"}  # a write on instance A …
    await a.invalidate("asset")  # … invalidates L1 here, L2, and B's L1 via pub/sub
    assert await r.get(f"{a.namespace}:asset") is None
    for _ in range(100):
        if b.stats["remote_invalidations"]:
            break
        await asyncio.sleep(0.02)  # why: an async poll's interval (conftest.eventually is sync)
    assert b.stats["remote_invalidations"] == 1
    assert a.stats["remote_invalidations"] == 0  # its own message is ignored
    assert await b.get_or_load("asset", loader) == {"name": "v2"}
    assert await a.get_or_load("asset", loader) == {"name": "v2"}  # L2 refilled by B
    assert len(loads) == 2


async def test_l2_outage_degrades_to_the_loader():
    broken = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    cache = ReadThroughCache(broken, namespace=f"test:{uuid.uuid4().hex}")

    async def loader():
        return 42

    assert await cache.get_or_load("k", loader) == 42
    assert await cache.get_or_load("k", loader) == 42  # served from L1
    assert cache.stats["loads"] == 1
    await broken.aclose()


async def test_a_load_that_read_before_a_write_never_reaches_l2(two_instances):
    """B reads the store, A writes and invalidates, then B's load finishes: its old value must not
    land in L2 (another instance would serve it until the TTL)."""
    a, _, r = two_instances
    # B has not heard of A's write (pub/sub is asynchronous; here B does not listen at all), so
    # only the version check in Redis stands between its load and L2.
    b = ReadThroughCache(r, namespace=a.namespace, l1_ttl=60, l2_ttl=60)
    store = {"v": "old"}
    b_has_read, release_b = asyncio.Event(), asyncio.Event()

    async def slow_loader():
        value = store["v"]
        b_has_read.set()
        await release_b.wait()
        return value

    load = asyncio.create_task(b.get_or_load("k", slow_loader))
    await b_has_read.wait()
    store["v"] = "new"
    await a.invalidate("k")
    release_b.set()
    assert await load == "old"  # B's caller gets what B read…
    assert await r.get(f"{b.namespace}:k") is None  # …but L2 did not keep it

    async def fresh():
        return store["v"]

    assert await a.get_or_load("k", fresh) == "new"


async def test_flush_namespace_drops_every_entry_everywhere(two_instances):
    import redis as sync_redis

    from chariot_migrate.services.kit.cache import flush_namespace

    a, b, r = two_instances
    store = {"x": 1, "y": 2}

    def loader(key):
        async def load():
            return store[key]
        return load

    for key in store:
        assert await a.get_or_load(key, loader(key)) == store[key]
    store.update(x=10, y=20)  # written around the service (a backfill)…
    blocking = sync_redis.Redis.from_url(REDIS_URL)
    try:
        assert flush_namespace(blocking, a.namespace) == 2  # …then the namespace is flushed
    finally:
        blocking.close()
    for _ in range(100):
        if len(a.l1) == 0:
            break
        await asyncio.sleep(0.02)  # why: an async poll's interval (conftest.eventually is sync)
    assert await a.get_or_load("x", loader("x")) == 10
    assert await b.get_or_load("y", loader("y")) == 20
