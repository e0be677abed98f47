"""Read-through cache: L1 in-process (TTL + bounded LRU) over L2 Redis (TTL).

Writes invalidate: the local L1 entry is dropped, the L2 key deleted, and a message on a Redis
pub/sub channel tells the other instances to drop their L1 copy. Loads are single-flight per
key within an instance, and a load that raced an invalidation is not cached in L1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

V = TypeVar("V")
log = logging.getLogger("chariot.kit.cache")
_MISSING = object()


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
        self.stats = {"l1_hits": 0, "l2_hits": 0, "loads": 0, "remote_invalidations": 0}

    def _l2_key(self, key: str) -> str:
        return f"{self.namespace}:{key}"

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
        if self.redis is not None:
            try:
                raw = await self.redis.get(self._l2_key(key))
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
        if self.redis is not None and self._generation.get(key, 0) == generation:
            try:
                await self.redis.set(self._l2_key(key), json.dumps(value), ex=max(1, int(self.l2_ttl)))
            except Exception as exc:
                log.warning("cache L2 write failed", extra={"error": type(exc).__name__})
        self._store_l1(key, value, generation)
        return value

    def _store_l1(self, key: str, value: Any, generation: int) -> None:
        # An invalidation that arrived while loading makes this value suspect: do not keep it.
        if self._generation.get(key, 0) == generation:
            self.l1.set(key, value)

    def drop_local(self, key: str) -> None:
        if key in self._inflight:  # only loads running now can race this invalidation
            self._generation[key] = self._generation.get(key, 0) + 1
        self.l1.pop(key)

    async def invalidate(self, key: str) -> None:
        """After a write: drop L1 here, delete L2, tell the other instances."""
        self.drop_local(key)
        if self.redis is not None:
            await self.redis.delete(self._l2_key(key))
            await self.redis.publish(self.channel, json.dumps({"from": self.instance_id, "key": key}))

    async def start(self) -> None:
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
                self.l1.clear()
                await asyncio.sleep(1.0)
                continue
            if msg is None or msg.get("type") != "message":
                continue
            try:
                body = json.loads(msg["data"])
            except (TypeError, ValueError):
                continue
            if body.get("from") != self.instance_id and isinstance(body.get("key"), str):
                self.stats["remote_invalidations"] += 1
                self.drop_local(body["key"])

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
