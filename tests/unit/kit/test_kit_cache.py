import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.services.kit.cache import ReadThroughCache, TTLCache


def test_ttl_cache_expires_entries():
    now = [0.0]
    c = TTLCache(max_entries=10, ttl=5, clock=lambda: now[0])
    c.set("a", 1)
    c.set("b", 2, ttl=1)
    now[0] = 2
    assert c.get("a") == 1 and c.get("b") is None and "b" not in c
    now[0] = 6
    assert c.get("a") is None


@given(
    st.lists(st.tuples(st.sampled_from(["get", "set"]), st.integers(0, 8)), max_size=60), st.integers(1, 4)
)
def test_ttl_cache_behaves_like_a_bounded_lru(ops, size):
    cache = TTLCache(max_entries=size, ttl=1000, clock=lambda: 0.0)
    model: list[int] = []  # keys, least recently used first
    for op, k in ops:
        key = str(k)
        if op == "set":
            cache.set(key, k)
            if k in model:
                model.remove(k)
            model.append(k)
            if len(model) > size:
                model.pop(0)
        else:
            expected = k if k in model else None
            assert cache.get(key) == expected
            if k in model:
                model.remove(k)
                model.append(k)
        assert len(cache) == len(model) <= size


async def test_read_through_l1_single_flight_and_invalidation():
    cache = ReadThroughCache(None, namespace="unit")
    calls = []

    async def loader():
        calls.append(1)
        await asyncio.sleep(0.01)  # why: a slow loader, so concurrent gets overlap
        return {"v": len(calls)}

    results = await asyncio.gather(*(cache.get_or_load("k", loader) for _ in range(10)))
    assert len(calls) == 1 and all(r == {"v": 1} for r in results)
    assert await cache.get_or_load("k", loader) == {"v": 1}
    await cache.invalidate("k")
    assert await cache.get_or_load("k", loader) == {"v": 2}


async def test_none_is_not_cached_and_loader_errors_propagate():
    cache = ReadThroughCache(None, namespace="unit")
    calls = []

    async def missing():
        calls.append(1)
        return None

    assert await cache.get_or_load("k", missing) is None
    assert await cache.get_or_load("k", missing) is None
    assert len(calls) == 2

    async def broken():
        raise RuntimeError("db down")

    with pytest.raises(RuntimeError):
        await cache.get_or_load("x", broken)


async def test_load_racing_an_invalidation_is_not_kept():
    cache = ReadThroughCache(None, namespace="unit")
    gate = asyncio.Event()

    async def slow_stale_loader():
        await gate.wait()
        return "stale"

    task = asyncio.create_task(cache.get_or_load("k", slow_stale_loader))
    await asyncio.sleep(0)  # why: one loop step, so the load has started (it then waits on the gate)
    await cache.invalidate("k")  # a write happened while the old value was being loaded
    gate.set()
    assert await task == "stale"  # the caller gets its answer…

    async def fresh():
        return "fresh"

    assert await cache.get_or_load("k", fresh) == "fresh"  # …but it was not cached


@given(st.lists(st.text(), min_size=1, max_size=4), st.lists(st.text(), min_size=1, max_size=4))
def test_cache_keys_of_different_parts_never_collide(a, b):
    from chariot_migrate.services.kit.cache import cache_key

    assert (cache_key(*a) == cache_key(*b)) == (a == b)


async def test_a_worker_thread_invalidates_through_the_loop_and_waits_for_it():
    from anyio import to_thread

    cache = ReadThroughCache(None, namespace="unit")
    await cache.start()  # binds the cache to this loop

    async def v1():
        return "v1"

    await cache.get_or_load("k", v1)
    await cache.get_or_load("other", v1)
    await to_thread.run_sync(lambda: cache.invalidate_from_thread(["k"]))
    assert "k" not in cache.l1 and "other" in cache.l1
    cache.invalidate_from_thread(["other"])  # on the loop's own thread: L1 at once, no deadlock
    assert "other" not in cache.l1
    await cache.stop()


def test_without_a_running_loop_only_l1_is_dropped():
    cache = ReadThroughCache(None, namespace="unit")
    cache.l1.set("k", 1)
    cache.invalidate_from_thread(["k"])
    assert "k" not in cache.l1


def test_invalidation_messages_of_other_instances_drop_l1():
    import json

    cache = ReadThroughCache(None, namespace="unit")
    for key in ("a", "b", "c"):
        cache.l1.set(key, key)
    cache.apply_message(json.dumps({"from": cache.instance_id, "keys": ["a"]}))  # our own: already done
    assert "a" in cache.l1
    cache.apply_message(json.dumps({"from": "other", "keys": ["a", 7]}))
    cache.apply_message(json.dumps({"from": "other", "key": "b"}))  # the older one-key form
    cache.apply_message("not json")
    assert "a" not in cache.l1 and "b" not in cache.l1 and "c" in cache.l1
    cache.apply_message(json.dumps({"from": "flush", "flush": True}))
    assert len(cache.l1) == 0
