import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis_once import RedisOnce

from chariot_migrate.services.kit.events import Event, RedisStreamsBus

pytestmark = pytest.mark.integration
REDIS_URL = "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def redis_prefix():
    r = aioredis.from_url(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    yield r, prefix
    keys = [k async for k in r.scan_iter(match=prefix + "*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


def asset_event(i):
    return Event.new(
        "asset.discovered",
        "acct@example.com",
        {"key": f"#asset#ex.com#h{i}", "dns": "ex.com", "name": f"h{i}"},
    )


async def wait_for(predicate, timeout=15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.05)  # why: the async counterpart of conftest.eventually's interval
    return False


async def test_publish_consume_ack_across_two_groups(redis_prefix):
    r, prefix = redis_prefix
    bus = RedisStreamsBus(r, prefix=prefix, block=0.1)
    got = {"risk": [], "reporting": []}

    async def risk(e):
        got["risk"].append(e.id)

    async def reporting(e):
        got["reporting"].append(e.id)

    bus.subscribe("risk", ["asset.discovered"], risk)
    bus.subscribe("reporting", ["asset.discovered", "risk.assessed"], reporting)
    await bus.start()
    events = [asset_event(i) for i in range(5)]
    for e in events:
        await bus.publish(e)
    ok = await wait_for(lambda: _ready(len(got["risk"]) == 5 and len(got["reporting"]) == 5))
    await bus.healthy()
    await bus.stop()
    assert ok and got["risk"] == [e.id for e in events] and got["reporting"] == got["risk"]
    pending = await r.xpending(bus.stream("asset.discovered"), "risk")
    assert pending["pending"] == 0


async def _ready(value):
    return value


async def test_invalid_on_consume_and_poison_events_go_to_dead_letter(redis_prefix):
    r, prefix = redis_prefix
    bus = RedisStreamsBus(r, prefix=prefix, block=0.1, visibility_timeout=0.2, max_deliveries=2)
    calls = []

    async def always_fails(e):
        calls.append(e.id)
        raise RuntimeError("cannot handle")

    bus.subscribe("g", ["asset.discovered"], always_fails)
    await bus.start()
    # A producer that bypassed validation (older build, other language): consumers refuse it.
    bad = asset_event(0).model_dump()
    bad["data"]["key"] = "not-an-asset-key"
    await r.xadd(bus.stream("asset.discovered"), {"event": json.dumps(bad)})
    await r.xadd(bus.stream("asset.discovered"), {"event": "{not json"})
    poison = asset_event(1)
    await bus.publish(poison)

    async def three_dead():
        return await r.xlen(bus.dead_letter_stream) >= 3

    ok = await wait_for(three_dead)
    await bus.stop()
    assert ok
    dead = await bus.dead_letters()
    reasons = sorted(d["reason"].split(":")[0] for d in dead)
    assert reasons == ["gave up after 2 deliveries", "invalid", "invalid"]
    assert calls == [poison.id, poison.id]  # delivered twice, never with the invalid payloads
    assert (await r.xpending(bus.stream("asset.discovered"), "g"))["pending"] == 0


async def test_killed_consumer_events_are_claimed_none_lost_none_applied_twice(redis_prefix):
    r, prefix = redis_prefix
    group, total, crash_after = "risk", 30, 8
    publisher = RedisStreamsBus(r, prefix=prefix)
    await publisher.ensure_groups()  # no subscriptions: no-op; the consumer creates the group
    ids = []
    for i in range(total):
        e = asset_event(i)
        ids.append(e.id)
        await publisher.publish(e)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("kit_stream_consumer_proc.py")),
            REDIS_URL,
            prefix,
            group,
            str(crash_after),
        ],
        env=env,
        timeout=30,
        capture_output=True,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    applied_by_victim = [x.decode() for x in await r.lrange(f"{prefix}applied", 0, -1)]
    assert len(applied_by_victim) == crash_after
    stream = publisher.stream("asset.discovered")
    pending = await r.xpending(stream, group)
    assert pending["pending"] >= 1  # the event it died on was applied but never acked

    survivor = RedisStreamsBus(r, prefix=prefix, consumer="survivor", visibility_timeout=0.5, block=0.1)
    once = RedisOnce(r, prefix=prefix)
    outcomes: dict[str, list[bool]] = {}

    async def handler(event):
        applied = await once.apply(event.id, lambda pipe: pipe.rpush(f"{prefix}applied", event.id))
        outcomes.setdefault(event.id, []).append(applied)

    survivor.subscribe(group, ["asset.discovered"], handler)
    await survivor.start()

    async def all_done():
        return await r.llen(f"{prefix}applied") >= total and (await r.xpending(stream, group))["pending"] == 0

    ok = await wait_for(all_done, timeout=20)
    await survivor.stop()
    assert ok
    applied = [x.decode() for x in await r.lrange(f"{prefix}applied", 0, -1)]
    assert sorted(applied) == sorted(ids)  # none lost
    assert len(applied) == len(set(applied)) == total  # none applied twice
    crashed_on = applied_by_victim[-1]
    assert outcomes[crashed_on] == [False]  # redelivered to the survivor, skipped by RedisOnce
    assert await r.xlen(survivor.dead_letter_stream) == 0
