"""Applying an event's Redis effects exactly once, for the streams-bus tests: the consumer-side
half of at-least-once delivery (no service keeps its state in Redis, so this lives here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RedisOnce:
    """Apply Redis effects and the "processed" mark in one MULTI/EXEC, guarded by WATCH.

    ``await once.apply(event.id, lambda pipe: pipe.rpush(...))`` → True if applied, False if the
    event had been applied before (by this or any other consumer).
    """

    def __init__(self, redis: Any, *, prefix: str, ttl: float = 7 * 86400) -> None:
        self.redis, self.prefix, self.ttl = redis, prefix, int(ttl)

    async def apply(self, event_id: str, effects: Callable[[Any], Any]) -> bool:
        from redis.exceptions import WatchError

        mark = f"{self.prefix}processed:{event_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(mark)
                    if await pipe.exists(mark):
                        await pipe.reset()
                        return False
                    pipe.multi()
                    pipe.set(mark, "1", ex=self.ttl)
                    effects(pipe)
                    await pipe.execute()
                    return True
                except WatchError:
                    continue
