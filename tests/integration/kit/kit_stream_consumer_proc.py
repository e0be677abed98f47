"""A Redis Streams consumer process for test_kit_streams_bus.py (not a test module).

argv: redis_url prefix group crash_after. Applies each event once (RedisOnce) by pushing its id
to `<prefix>applied`, and SIGKILLs itself right after applying event number `crash_after`, before
it can XACK it: the nastiest moment to die for at-least-once delivery.
"""

import asyncio
import os
import signal
import sys

import redis.asyncio as aioredis
from redis_once import RedisOnce

from chariot_migrate.services.kit.events import RedisStreamsBus


async def main(url: str, prefix: str, group: str, crash_after: int) -> None:
    r = aioredis.from_url(url)
    bus = RedisStreamsBus(r, prefix=prefix, consumer="victim", batch_size=5, visibility_timeout=30, block=0.2)
    once = RedisOnce(r, prefix=prefix)
    applied = 0

    async def handler(event):
        nonlocal applied
        await once.apply(event.id, lambda pipe: pipe.rpush(f"{prefix}applied", event.id))
        applied += 1
        if applied == crash_after:
            os.kill(os.getpid(), signal.SIGKILL)
        await asyncio.sleep(0.02)  # why: a slow handler, so the kill lands with events still unhandled

    bus.subscribe(group, ["asset.discovered"], handler)
    await bus.start()
    await asyncio.sleep(30)  # killed long before this


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
