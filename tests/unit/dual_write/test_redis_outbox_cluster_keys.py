"""The Redis outbox on Redis Cluster: every key a script touches is declared in KEYS, and all keys of
one outbox hash to one slot. Checked by running the real scripts on the real Redis with a guard
prepended that refuses any command on an undeclared key."""

from __future__ import annotations

import re
from uuid import uuid4

import pytest
import redis
from redis.crc import key_slot

from chariot_migrate.dual_write import redis_outbox
from chariot_migrate.dual_write.records import PrimaryResult, ReplayRecord, ReplayRequest
from chariot_migrate.dual_write.redis_outbox import RedisOutbox, key_tag

# Shadows the global `redis` inside the script: redis.call(cmd, key, ...) must name a declared key.
GUARD = """
local real_redis = redis
local declared = {}
for _, k in ipairs(KEYS) do declared[k] = true end
local redis = setmetatable({call = function(cmd, key, ...)
  if not declared[key] then
    return real_redis.error_reply('undeclared key ' .. tostring(key) .. ' in ' .. cmd)
  end
  return real_redis.call(cmd, key, ...)
end}, {__index = real_redis})
"""


def rec(account: str, target: str = "new", service: str = "svc") -> ReplayRecord:
    return ReplayRecord(service=service, account=account, target=target, route_id="r1",
                        request=ReplayRequest(method="POST", path="/asset", headers=[], body=b"{}"),
                        primary=PrimaryResult(status=200, body=b"{}"))


@pytest.fixture
async def guarded(monkeypatch):
    monkeypatch.setattr(redis_outbox, "SCRIPTS", {k: GUARD + v for k, v in redis_outbox.SCRIPTS.items()})
    prefix = f"test:{uuid4().hex}:"
    ob = RedisOutbox("redis://127.0.0.1:6379/0", prefix=prefix)
    yield ob
    await ob.delete_all()
    await ob.aclose()


def test_the_guard_refuses_an_undeclared_key():
    r = redis.Redis()
    script = r.register_script(GUARD + "return redis.call('GET', 'not-declared')")
    with pytest.raises(redis.ResponseError, match="undeclared key not-declared"):
        script(keys=["declared"])
    ok = r.register_script(GUARD + "return redis.call('EXISTS', KEYS[1])")
    assert ok(keys=[f"test:{uuid4().hex}"]) == 0


async def test_every_operation_declares_its_keys_and_one_outbox_is_one_slot(guarded):
    ob = guarded
    a1, a2 = await ob.append(rec("a")), await ob.append(rec("a"))
    b1 = await ob.append(rec("b", target="legacy"))
    assert (a1.seq, a2.seq, b1.seq) == (1, 2, 1)
    claimed = await ob.claim("w1", 10, 30.0)
    assert sorted(r.id for r in claimed) == sorted([a1.id, b1.id])  # heads only: lane order
    assert await ob.ack(a1.id, "w1")
    assert await ob.nack(b1.id, "w1", error="boom", next_attempt_at=0, dead=True)
    assert [r.id for r in await ob.dead_letters()] == [b1.id]
    assert [r.id for r in await ob.claim("w2", 10, 30.0)] == [a2.id]  # a's next head was re-indexed
    assert await ob.retry() == 1
    assert [r.id for r in await ob.claim("w3", 10, 30.0)] == [b1.id]
    assert await ob.ack(b1.id, "w3") and await ob.ack(a2.id, "w2")
    assert await ob.status() == {}
    # every key the outbox wrote carries its hash tag: one Cluster slot per outbox
    keys = [k.decode() for k in redis.Redis().scan_iter(match=ob.prefix.replace("[", r"\[") + "*")]
    assert keys and all(k.startswith(key_tag(ob.prefix)) for k in keys)
    assert len({key_slot(k.encode()) for k in keys}) == 1
    other = key_tag(f"test:{uuid4().hex}:")
    assert re.fullmatch(r".*\{ob-[0-9a-f]{8}\}", other) and other != key_tag(ob.prefix)


async def test_an_outbox_written_with_untagged_names_keeps_them_after_the_upgrade():
    prefix = f"test:{uuid4().hex}:"
    old = RedisOutbox("redis://127.0.0.1:6379/0", prefix=prefix)
    old._k = prefix  # the names earlier versions built inside their scripts
    r1 = await old.append(rec("a"))
    await old.aclose()
    assert redis.Redis().exists(prefix + "services") and redis.Redis().exists(f"{prefix}rec:{r1.id}")
    new = RedisOutbox("redis://127.0.0.1:6379/0", prefix=prefix)
    try:
        assert (await new.status())["svc"].backlog == 1  # the undelivered write is still seen
        got = await new.claim("w", 10, 30.0)
        assert [g.id for g in got] == [r1.id] and await new.ack(r1.id, "w")
        assert await new.status() == {}
    finally:
        await new.delete_all()
        await new.aclose()
