"""Rate limits at the edge: token buckets per service and per account.

Local (in-process) unless a Redis is configured: ``rate_limit_store: redis://…``, or by default
the state store when it is Redis (``rate_limit_store: local`` opts out; ``breakers.edge_store_url``).
Then the buckets are shared by every worker and replica through one atomic Lua script; the local bucket still runs first, so a request one
replica alone would refuse never costs a Redis round trip. Redis down → fail open (counted) and
fall back to local limiting until it answers again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from . import metrics

log = logging.getLogger("chariot_migrate.proxy")


class TokenBucket:
    """Pure token bucket; time is passed in, so tests need no clock."""

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.tokens, self.stamp = float(capacity), now

    def take(self, now: float, n: float = 1.0) -> float:
        """Take ``n`` tokens: 0.0 if granted, else the seconds until they would be available."""
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        return (n - self.tokens) / self.rate

    def idle_full(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.capacity


class LocalLimiter:
    """Buckets by key in this process. Bounded: idle (refilled) buckets are dropped when it grows."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, rate: float, capacity: float) -> float:
        now = self._clock()
        b = self._buckets.get(key)
        if b is None or b.rate != rate or b.capacity != capacity:
            if len(self._buckets) >= self._max_keys:
                self._evict(now)
            b = self._buckets[key] = TokenBucket(rate, capacity, now)
        return b.take(now)

    def _evict(self, now: float) -> None:
        self._buckets = {k: b for k, b in self._buckets.items() if not b.idle_full(now)}
        if len(self._buckets) >= self._max_keys:  # all busy: forget half rather than grow forever
            for k in list(self._buckets)[: self._max_keys // 2]:
                del self._buckets[k]


# KEYS[1] bucket hash; ARGV rate, capacity. Time comes from Redis itself so replicas with skewed
# clocks agree. Returns 0 when granted, else milliseconds until a token is available.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate / 1000)
  ts = now
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return wait
"""


class RedisLimiter:
    """Shared buckets in Redis (one EVALSHA per request that passed the local bucket)."""

    def __init__(self, url: str, *, retry_after_error_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import redis.asyncio as aioredis

        from ..redis_keys import split_redis_url

        self._url, prefix = split_redis_url(url, "chariot-migrate:")
        self.prefix = prefix + "rl:"
        self._aioredis = aioredis
        self._client = None
        self._script = None
        self._clock = clock
        self._down_until = 0.0
        self._retry_after_error_s = retry_after_error_s

    def _get_script(self):
        # Created lazily inside the running loop (each uvicorn worker has its own).
        if self._script is None:
            from ..redis_conn import async_redis

            self._client = async_redis(self._url, socket_timeout=0.25, socket_connect_timeout=0.25)
            self._script = self._client.register_script(TOKEN_BUCKET_LUA)
        return self._script

    async def take(self, key: str, rate: float, capacity: float) -> float | None:
        """Seconds to wait (0.0 = granted), or None when Redis cannot answer (caller fails open)."""
        if self._down_until and self._clock() < self._down_until:
            return None
        try:
            wait_ms = await self._get_script()(keys=[self.prefix + key], args=[rate, capacity])
        except Exception as e:  # noqa: BLE001 — any Redis/network failure means: fail open
            if not self._down_until:
                log.error("rate-limit store unavailable, limiting locally until it answers: %s",
                          type(e).__name__)
            metrics.RATE_LIMIT_STORE_ERRORS.inc()
            self._down_until = self._clock() + self._retry_after_error_s
            return None
        if self._down_until:
            log.warning("rate-limit store reachable again")
            self._down_until = 0.0
        return int(wait_ms) / 1000.0

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class RateLimiters:
    """The edge's limiter: local buckets, plus Redis when configured. Lives as long as the app,
    so bucket state survives routes.yaml reloads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.local = LocalLimiter(clock)
        self.shared: RedisLimiter | None = None
        self._shared_url: str | None = None

    def use_store(self, url: str | None) -> None:
        if url == self._shared_url:
            return
        self._shared_url = url
        self.shared = RedisLimiter(url) if url else None  # the old client closes with its loop

    async def take(self, key: str, rate: float, capacity: int) -> float:
        """0.0 if the request may pass, else seconds until it could (for Retry-After)."""
        wait = self.local.take(key, rate, capacity)
        if wait or self.shared is None:
            return wait
        shared = await self.shared.take(key, rate, capacity)
        return shared or 0.0

    async def aclose(self) -> None:
        if self.shared is not None:
            await self.shared.aclose()


def retry_after_header(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))
