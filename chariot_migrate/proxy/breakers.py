"""Circuit-breaker trips shared by every proxy worker and replica through Redis pub/sub.

Each worker keeps its own breaker per upstream instance (the decision stays local and costs
nothing per request). When one trips open or closes again, the worker publishes
``{"origin", "service", "instance", "state"}`` on ``<namespace><prefix>breakers``; every other
worker applies it to its breaker for that instance (``apply``, pure over the breaker), so one
worker's N failures stop the whole fleet from sending to a dead instance, and one successful
probe re-admits it everywhere. A remote change is never re-published. Redis down → breakers stay
local (logged once) until the subscription comes back.

Which Redis: ``edge_store_url`` — ``rate_limit_store`` when set (``local`` keeps limits and
breakers per worker), else the state store when it is Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

from ..resilience.breaker import CircuitBreaker, State

log = logging.getLogger("chariot_migrate.proxy")
LOCAL = "local"


def edge_store_url(rate_limit_store: str | None, state_url: str | None) -> str | None:
    """The Redis the edge shares rate limits and breaker trips through, or None (per worker)."""
    if rate_limit_store:
        return None if rate_limit_store == LOCAL else rate_limit_store
    if state_url and state_url.startswith(("redis://", "rediss://", "unix://")):
        return state_url
    return None


def apply(breaker: CircuitBreaker, state: str) -> bool:
    """Apply a trip (``open``) or a recovery (``closed``) another worker saw; True if it changed."""
    if state == "open" and breaker.state != "open":
        breaker.force_open()
        return True
    if state == "closed" and breaker.state != "closed":
        breaker.force_close()
        return True
    return False


def message(origin: str, service: str, instance: str, state: str) -> str:
    return json.dumps({"origin": origin, "service": service, "instance": instance, "state": state})


def parse(raw: Any, origin: str) -> tuple[str, str, str] | None:
    """(service, instance, state) of a message from another worker; None for ours or junk."""
    try:
        doc = json.loads(raw)
        if doc["origin"] == origin or doc["state"] not in ("open", "closed"):
            return None
        return str(doc["service"]), str(doc["instance"]), str(doc["state"])
    except (ValueError, KeyError, TypeError):
        return None


Lookup = Callable[[str, str], CircuitBreaker | None]


class BreakerBus:
    def __init__(self, url: str, lookup: Lookup) -> None:
        from ..redis_keys import split_redis_url

        self.url = url
        self._url, prefix = split_redis_url(url, "chariot-migrate:")
        self.channel = prefix + "breakers"
        self.origin = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lookup = lookup
        self._client: Any = None
        self._task: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()
        self.applied = 0
        self.ready = asyncio.Event()

    def _redis(self):
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.Redis.from_url(self._url, socket_connect_timeout=0.5, socket_timeout=None)
        return self._client

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen())

    def publish(self, service: str, instance: str, to: State) -> None:
        """Called from a breaker's transition hook (sync): sends in the background."""
        if to not in ("open", "closed"):
            return
        try:
            task = asyncio.get_running_loop().create_task(self._publish(message(self.origin, service, instance, to)))
        except RuntimeError:
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, msg: str) -> None:
        try:
            await asyncio.wait_for(self._redis().publish(self.channel, msg), 1.0)
        except Exception as e:  # noqa: BLE001 — sharing is best effort; the local breaker still works
            log.warning("could not share a breaker change through Redis: %s", type(e).__name__)

    async def _listen(self) -> None:
        failed = False
        while True:
            pubsub = None
            try:
                pubsub = self._redis().pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                if failed:
                    log.warning("breaker sharing through Redis works again")
                failed = False
                self.ready.set()
                async for msg in pubsub.listen():
                    if msg.get("type") != "message":
                        continue
                    parsed = parse(msg["data"], self.origin)
                    if parsed is None:
                        continue
                    service, instance, state = parsed
                    breaker = self.lookup(service, instance)
                    if breaker is not None and apply(breaker, state):
                        self.applied += 1
                        log.info("circuit %s for %s instance %s (shared by another proxy worker)",
                                 state, service, instance)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001
                if not failed:
                    log.error("breaker sharing through Redis unavailable, breakers are per worker: %s",
                              type(e).__name__)
                failed = True
                await asyncio.sleep(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for t in list(self._pending):
            with contextlib.suppress(Exception):
                await t
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
