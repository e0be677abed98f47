"""Read-through cache: L1 in-process (TTL + bounded LRU) over L2 Redis (TTL).

Writes invalidate: the local L1 entry is dropped, the L2 key deleted, and a message on a Redis
pub/sub channel tells the other instances to drop their L1 copy. Loads are single-flight per
key within an instance, and a load that raced an invalidation is not cached in L1.

L2 cannot keep a value loaded before a write either, whichever instance loaded it: every
invalidation bumps a per-key version in Redis (``INCR`` then ``DEL``, in one transaction), a
loader notes the version before it reads the store, and writes its value to L2 only if the version
is still the one it noted (one Lua script). A load that read the store before the write therefore
either fails that check or lands before the ``DEL`` that removes it. :func:`flush_namespace`, for
writers outside the service (e.g. a backfill), does the same for a whole namespace with an epoch
counter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from ...redis_keys import glob_escape

V = TypeVar("V")
log = logging.getLogger("chariot.kit.cache")
_MISSING = object()
# Version and epoch counters outlive any load by far; they expire only so that unused ones go away.
COUNTER_TTL_S = 86400
# KEYS: value, version, epoch. ARGV: version and epoch the loader saw ('' = none), value, ttl.
_SET_IF_UNCHANGED = """
if (redis.call('GET', KEYS[2]) or '') == ARGV[1] and (redis.call('GET', KEYS[3]) or '') == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
  return 1
end
return 0
"""


def cache_key(*parts: str) -> str:
    """One cache key from several parts, e.g. ``cache_key("kind", "asset", account)``.

    Each part is percent-encoded (``:`` and ``%`` included), so different tuples never give the
    same key: an account name cannot be crafted to reach another account's entry.
    """
    return ":".join(quote(part, safe="") for part in parts)


def _value_key(namespace: str, key: str) -> str:
    return f"{namespace}:{key}"


def _version_key(namespace: str, key: str) -> str:
    # "#", not ":": no value key (namespace + ":" + key) can ever be a counter's name.
    return f"{namespace}#version:{key}"


def _epoch_key(namespace: str) -> str:
    return f"{namespace}#epoch"


def flush_namespace(redis: Any, namespace: str) -> int:
    """Invalidate every entry of ``namespace`` from outside the service (blocking ``redis.Redis``).

    For writers that change a service's tables without going through it (``data backfill``/
    ``repair``): bumps the epoch (loads in flight no longer write L2), deletes the L2 values, and
    tells the running instances to clear their L1. Returns how many L2 values were deleted.
    """
    redis.incr(_epoch_key(namespace))
    redis.expire(_epoch_key(namespace), COUNTER_TTL_S)
    pattern = glob_escape(namespace) + ":*"
    deleted = 0
    batch: list[Any] = []
    for key in redis.scan_iter(match=pattern, count=500):
        batch.append(key)
        if len(batch) >= 500:
            deleted += redis.delete(*batch)
            batch = []
    if batch:
        deleted += redis.delete(*batch)
    redis.publish(f"{namespace}:invalidate", json.dumps({"from": "flush", "flush": True}))
    return int(deleted)


class TTLCache(Generic[V]):
    """Bounded LRU with per-entry expiry; clock injected (pure data structure, no IO)."""

    def __init__(
        self, max_entries: int = 1024, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic
    ):
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str, default: Any = None) -> V | Any:
        entry = self._data.get(key)
        if entry is None:
            return default
        expires, value = entry
        if self._clock() >= expires:
            del self._data[key]
            return default
        self._data.move_to_end(key)
        return value

    def set(self, key: str, value: V, ttl: float | None = None) -> None:
        self._data[key] = (self._clock() + (self.ttl if ttl is None else ttl), value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def pop(self, key: str) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __contains__(self, key: str) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def __len__(self) -> int:
        return len(self._data)


class ReadThroughCache:
    """``await cache.get_or_load(key, loader)``; ``await cache.invalidate(key)`` after writes.

    ``redis`` is a ``redis.asyncio.Redis`` (or None for L1 only). Values must be JSON-serialisable.
    Call ``await cache.start()`` to listen for other instances' invalidations, ``stop()`` to end.
    Blocking store code running in worker threads invalidates with :meth:`invalidate_from_thread`.
    """

    def __init__(
        self,
        redis: Any | None,
        *,
        namespace: str,
        l1_max_entries: int = 1024,
        l1_ttl: float = 5.0,
        l2_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.namespace = namespace
        self.channel = f"{namespace}:invalidate"
        self.l1: TTLCache[Any] = TTLCache(l1_max_entries, l1_ttl, clock)
        self.l2_ttl = l2_ttl
        self.instance_id = uuid.uuid4().hex
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._generation: dict[str, int] = {}
        self._listener: asyncio.Task[None] | None = None
        self._pubsub: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._set_if_unchanged = redis.register_script(_SET_IF_UNCHANGED) if redis is not None else None
        self.stats = {"l1_hits": 0, "l2_hits": 0, "loads": 0, "remote_invalidations": 0,
                      "invalidation_failures": 0}

    def _l2_key(self, key: str) -> str:
        return _value_key(self.namespace, key)

    async def get_or_load(self, key: str, loader: Callable[[], Awaitable[Any]]) -> Any:
        value = self.l1.get(key, _MISSING)
        if value is not _MISSING:
            self.stats["l1_hits"] += 1
            return value
        existing = self._inflight.get(key)
        if existing is not None:  # single flight: share the load already running
            return await asyncio.shield(existing)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        generation = self._generation.get(key, 0)
        try:
            value = await self._load(key, loader, generation)
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) get it via await
            raise
        finally:
            self._inflight.pop(key, None)
            self._generation.pop(key, None)

    async def _load(self, key: str, loader: Callable[[], Awaitable[Any]], generation: int) -> Any:
        seen: tuple[Any, Any] | None = None  # (version, epoch) before the store was read
        if self.redis is not None:
            try:
                raw, version, epoch = await self.redis.mget(
                    self._l2_key(key), _version_key(self.namespace, key), _epoch_key(self.namespace))
                seen = (version or b"", epoch or b"")
            except Exception as exc:  # L2 down: degrade to the loader, never fail the read
                log.warning("cache L2 read failed", extra={"error": type(exc).__name__})
                raw = None
            if raw is not None:
                self.stats["l2_hits"] += 1
                value = json.loads(raw)
                self._store_l1(key, value, generation)
                return value
        self.stats["loads"] += 1
        value = await loader()
        if value is None:  # absence is not cached: the next write would have to find it
            return None
        if seen is not None and self._generation.get(key, 0) == generation:
            await self._store_l2(key, value, seen)
        self._store_l1(key, value, generation)
        return value

    async def _store_l2(self, key: str, value: Any, seen: tuple[Any, Any]) -> None:
        assert self._set_if_unchanged is not None
        try:
            await self._set_if_unchanged(
                keys=[self._l2_key(key), _version_key(self.namespace, key), _epoch_key(self.namespace)],
                args=[seen[0], seen[1], json.dumps(value), max(1, int(self.l2_ttl))])
        except Exception as exc:
            log.warning("cache L2 write failed", extra={"error": type(exc).__name__})

    def _store_l1(self, key: str, value: Any, generation: int) -> None:
        # An invalidation that arrived while loading makes this value suspect: do not keep it.
        if self._generation.get(key, 0) == generation:
            self.l1.set(key, value)

    def drop_local(self, key: str) -> None:
        if key in self._inflight:  # only loads running now can race this invalidation
            self._generation[key] = self._generation.get(key, 0) + 1
        self.l1.pop(key)

    def drop_all_local(self) -> None:
        for key in self._inflight:
            self._generation[key] = self._generation.get(key, 0) + 1
        self.l1.clear()

    async def invalidate(self, key: str) -> None:
        """After a write: drop L1 here, delete L2, tell the other instances."""
        await self.invalidate_many([key])

    async def invalidate_many(self, keys: Iterable[str]) -> None:
        """After a write: drop L1 here, bump the versions and delete L2, tell the other instances.

        Never raises: the write it follows is done. If Redis fails, that is logged and counted, and
        other instances may read the old value until its L2 TTL ends.
        """
        keys = list(dict.fromkeys(keys))
        if not keys:
            return
        for key in keys:
            self.drop_local(key)
        if self.redis is None:
            return
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in keys:  # INCR before DEL: see the module docstring
                    pipe.incr(_version_key(self.namespace, key))
                    pipe.expire(_version_key(self.namespace, key), COUNTER_TTL_S)
                    pipe.delete(self._l2_key(key))
                pipe.publish(self.channel, json.dumps({"from": self.instance_id, "keys": keys}))
                await pipe.execute()
        except Exception as exc:
            self.stats["invalidation_failures"] += 1
            log.error("cache invalidation failed: other instances may serve old values until the L2 TTL ends",
                      extra={"error": type(exc).__name__, "keys": len(keys)})

    def invalidate_from_thread(self, keys: Iterable[str], timeout: float = 10.0) -> None:
        """:meth:`invalidate_many` for blocking code in a worker thread, right after its write.

        Waits until the invalidation is done, so the write's request answers only after it. On the
        event loop's own thread (blocking there would deadlock) L1 is dropped at once and the rest
        runs as a task. With no loop serving the cache (it was never started, or has stopped) only
        L1 can be dropped: nothing else reads it then.
        """
        keys = list(dict.fromkeys(keys))
        if not keys:
            return
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            for key in keys:
                self.drop_local(key)
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            for key in keys:
                self.drop_local(key)
            task = loop.create_task(self.invalidate_many(keys))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return
        done = asyncio.run_coroutine_threadsafe(self.invalidate_many(keys), loop)
        try:
            done.result(timeout)
        except TimeoutError:
            log.error("cache invalidation did not finish in time; it goes on in the background",
                      extra={"keys": len(keys), "timeout_s": timeout})

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.redis is None or self._listener is not None:
            return
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self.channel)
        self._listener = asyncio.create_task(self._listen(), name=f"cache-invalidations:{self.namespace}")

    async def _listen(self) -> None:
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Connection lost: we may have missed invalidations, so L1 can no longer be trusted.
                log.warning("cache invalidation channel failed", extra={"error": type(exc).__name__})
                self.drop_all_local()
                await asyncio.sleep(1.0)
                continue
            if msg is None or msg.get("type") != "message":
                continue
            self.apply_message(msg["data"])

    def apply_message(self, data: Any) -> None:
        """One invalidation message from the channel (another instance's write, or a flush)."""
        try:
            body = json.loads(data)
        except (TypeError, ValueError):
            return
        if not isinstance(body, dict) or body.get("from") == self.instance_id:
            return
        if body.get("flush") is True:
            self.stats["remote_invalidations"] += 1
            self.drop_all_local()
            return
        keys = body.get("keys", [body.get("key")])
        if isinstance(keys, list):
            for key in keys:
                if isinstance(key, str):
                    self.stats["remote_invalidations"] += 1
                    self.drop_local(key)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except asyncio.CancelledError:
                pass
            self._listener = None
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        for task in list(self._background):
            await task

