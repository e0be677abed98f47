"""Redis outbox: several proxy replicas on several hosts share one ordered outbox.

Design (every mutation is one Lua script, so it is atomic on the server):

``{p}rec:{id}``            hash: payload JSON + mutable fields (seq, state, attempts, next,
                           err, owner, until, lane, service, target, created)
``{p}lane:{lane}``         list of record ids in seq order; the head is the next to deliver
``{p}seq:{lane}``          INCR counter: the lane's seq (never reset, so never reused)
``{p}ready``               sorted set of lanes whose head is pending, scored by the time the
                           head becomes claimable: ``next_attempt_at``, or ``lease_until``
                           while leased, so an expired lease re-surfaces by itself
``{p}backlog:{service}``   sorted set id → created_at (oldest age, undelivered count)
``{p}counts:{service}``    hash ``pending:{target}`` / ``dead:{target}`` → count
``{p}dead``                sorted set of dead-letter ids by created_at
``{p}services``            set of services seen

Why not Redis Streams with consumer groups: a group hands entries to whichever consumer
asks, with no notion of "hold this account's later entries until its earlier one is acked",
so per-account head-of-line ordering would have to be rebuilt on top anyway, and one stream
per account makes workers poll thousands of streams. A list per lane plus one ``ready``
index gives O(log n) claims, strict lane order and leases in a single structure.

Durability is Redis's: run it with ``appendonly yes`` and ``appendfsync always`` for the
same guarantee as the SQLite outbox (``everysec`` can lose the last second on a host crash).

Redis Cluster: every script receives every key it touches in KEYS (none is built inside a
script), and all keys of one outbox share one hash tag (``{p}`` above is ``<prefix>{ob-<hash of
the prefix>}``), so they sit on one slot and each script runs on the node that owns it. A key that
depends on data (the head record of a lane) is read first and passed in; the script verifies it
and answers -1 without changing anything when a concurrent change moved it, and the caller reads
again. Outboxes written by a version that built untagged names inside its scripts keep those
names (detected on first use), so undelivered records survive the upgrade.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from chariot_migrate.dual_write.outbox import (
    DEFAULT_REDIS_PREFIX,
    ServiceStatus,
    TargetCounts,
    drain_by_polling,
)
from chariot_migrate.dual_write.records import ReplayRecord, Side
from chariot_migrate.redis_conn import async_redis
from chariot_migrate.redis_keys import glob_escape

_SEP = "\x1f"

# Every key a script touches is passed in KEYS (Redis Cluster routes a script by its keys), and
# every key of one outbox carries the same hash tag, so they all live on one Cluster slot. Keys
# that depend on data (a lane's head record) are read first and passed in; the script checks
# they are still right and answers -1 (nothing changed) when a concurrent change moved them, and
# the caller reads again.

# KEYS: rec, seq, lane, ready, backlog, counts, services
# ARGV: id, service, target, payload, created, next, lane name
_APPEND = """
local rk, seqk, lanek, ready, backlog, counts, services = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local id, service, target, payload, created, nexta, lane = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if redis.call('EXISTS', rk) == 1 then return redis.call('HGET', rk, 'seq') end
local seq = redis.call('INCR', seqk)
redis.call('HSET', rk, 'payload', payload, 'seq', seq, 'state', 'pending', 'attempts', 0,
  'next', nexta, 'err', '', 'owner', '', 'until', 0, 'lane', lane, 'service', service,
  'target', target, 'created', created)
if redis.call('RPUSH', lanek, id) == 1 then
  redis.call('ZADD', ready, nexta, lane)
end
redis.call('ZADD', backlog, created, id)
redis.call('HINCRBY', counts, 'pending:' .. target, 1)
redis.call('SADD', services, service)
return seq
"""

# One lane's head. KEYS: ready, lane, head rec (the lane key again when the lane looked empty)
# ARGV: lane name, head id ('' = looked empty), owner, now, lease
_CLAIM = """
local ready, lanek, rk = KEYS[1], KEYS[2], KEYS[3]
local lane, head, owner, now, lease = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local score = redis.call('ZSCORE', ready, lane)
if not score or tonumber(score) > now then return 0 end
local cur = redis.call('LINDEX', lanek, 0)
if not cur then
  redis.call('ZREM', ready, lane)
  return 0
end
if cur ~= head then return -1 end
if redis.call('HGET', rk, 'state') ~= 'pending' then
  redis.call('ZREM', ready, lane)
  return 0
end
local untilv = now + lease
redis.call('HSET', rk, 'owner', owner, 'until', tostring(untilv))
redis.call('ZADD', ready, untilv, lane)
return 1
"""

# After the head of a lane changed: index the head (declared by the caller) in `ready` if it is pending.
_REINDEX = """
local function reindex(ready, lane, headk, head)
  if head ~= '' and redis.call('HGET', headk, 'state') == 'pending' then
    local owner, nexta, untilv = unpack(redis.call('HMGET', headk, 'owner', 'next', 'until'))
    local score = nexta
    if owner ~= '' then score = untilv end
    redis.call('ZADD', ready, score, lane)
  else
    redis.call('ZREM', ready, lane)
  end
end
local function head_is(lanek, expected)
  return (redis.call('LINDEX', lanek, 0) or '') == expected
end
"""

# KEYS: rec, lane, backlog, counts, ready, next head rec (rec again when none)
# ARGV: id, owner, lane name, target, the head once this record is gone ('' = none)
_ACK = _REINDEX + """
local rk, lanek, backlog, counts, ready, headk = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, owner, lane, target, head = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('HGET', rk, 'owner') ~= owner then return 0 end
local first = redis.call('LRANGE', lanek, 0, 1)
local after = first[1]
if after == id then after = first[2] end
if (after or '') ~= head then return -1 end
redis.call('LREM', lanek, 1, id)
redis.call('DEL', rk)
redis.call('ZREM', backlog, id)
redis.call('HINCRBY', counts, 'pending:' .. target, -1)
reindex(ready, lane, headk, head)
return 1
"""

# KEYS: rec, lane, dead, counts, ready, head rec (rec again when none)
# ARGV: id, owner, err, next, dead ('1'/'0'), lane name, target, head id
_NACK = _REINDEX + """
local rk, lanek, deadk, counts, ready, headk = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, owner, err, nexta, dead, lane, target, head = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
if redis.call('HGET', rk, 'owner') ~= owner then return 0 end
if not head_is(lanek, head) then return -1 end
local created = redis.call('HGET', rk, 'created')
redis.call('HINCRBY', rk, 'attempts', 1)
redis.call('HSET', rk, 'err', err, 'next', nexta, 'owner', '', 'until', 0)
if dead == '1' then
  redis.call('HSET', rk, 'state', 'dead')
  redis.call('ZADD', deadk, created, id)
  redis.call('HINCRBY', counts, 'pending:' .. target, -1)
  redis.call('HINCRBY', counts, 'dead:' .. target, 1)
end
reindex(ready, lane, headk, head)
return 1
"""

# One dead letter back to pending. KEYS: rec, lane, dead, counts, ready, head rec (rec again when none)
# ARGV: id, only service ('' = any), lane name, target, head id
_RETRY = _REINDEX + """
local rk, lanek, deadk, counts, ready, headk = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, only_service, lane, target, head = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local state, service = unpack(redis.call('HMGET', rk, 'state', 'service'))
if state ~= 'dead' or (only_service ~= '' and only_service ~= service) then return 0 end
if not head_is(lanek, head) then return -1 end
redis.call('HSET', rk, 'state', 'pending', 'attempts', 0, 'next', 0, 'owner', '', 'until', 0)
redis.call('ZREM', deadk, id)
redis.call('HINCRBY', counts, 'pending:' .. target, 1)
redis.call('HINCRBY', counts, 'dead:' .. target, -1)
reindex(ready, lane, headk, head)
return 1
"""

SCRIPTS = {"append": _APPEND, "claim": _CLAIM, "ack": _ACK, "nack": _NACK, "retry": _RETRY}
RETRIES = 20  # re-reads when a concurrent change moved a lane's head between read and script


_FIELDS = ("payload", "seq", "state", "attempts", "next", "err")


def _to_record(values: list[Any]) -> ReplayRecord | None:
    payload, seq, state, attempts, nexta, err = values
    if payload is None:
        return None
    rec = ReplayRecord.model_validate_json(payload)
    return rec.model_copy(
        update={
            "seq": int(seq),
            "state": state.decode() if isinstance(state, bytes) else state,
            "attempts": int(attempts),
            "next_attempt_at": float(nexta),
            "last_error": (err.decode() if isinstance(err, bytes) else err) or None,
        }
    )


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def key_tag(prefix: str) -> str:
    """``prefix`` + a hash tag of its own: every key of this outbox lands on one Cluster slot,
    outboxes of other deployments on theirs, and each key still starts with the deployment's
    namespace and prefix."""
    import hashlib

    return f"{prefix}{{ob-{hashlib.blake2b(prefix.encode(), digest_size=4).hexdigest()}}}"


class RedisOutbox:
    def __init__(
        self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = DEFAULT_REDIS_PREFIX, max_batch: int = 256
    ) -> None:
        self.prefix = prefix
        self._r = async_redis(url)
        self._scripts = {name: self._r.register_script(src) for name, src in SCRIPTS.items()}
        self._max_batch = max_batch
        self._queue: list[tuple[ReplayRecord, asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._k: str | None = None  # key prefix, decided on first use (see _keys)

    async def _keys(self) -> str:
        """The key prefix: hash-tagged, unless this outbox already holds records written by a
        version that built untagged key names inside its scripts (``{prefix}services`` exists and
        the tagged one does not) — those keep their names, so an upgrade loses no undelivered write."""
        if self._k is None:
            tagged = key_tag(self.prefix)
            old, new = await self._r.exists(self.prefix + "services"), await self._r.exists(tagged + "services")
            self._k = self.prefix if old and not new else tagged
        return self._k

    def _lane_name(self, service: str, account: str, target: str) -> str:
        return f"{service}{_SEP}{account}{_SEP}{target}"

    async def append(self, record: ReplayRecord) -> ReplayRecord:
        # Group commit: appends that arrive while a round trip is in flight share the next
        # pipeline, so N concurrent writers cost one connection and ~one round trip.
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._queue.append((record, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        seq = await asyncio.shield(fut)
        return record.model_copy(update={"seq": seq, "state": "pending"})

    async def _flush(self) -> None:
        await asyncio.sleep(0)
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            try:
                k = await self._keys()
                pipe = self._r.pipeline(transaction=False)
                for record, _ in batch:
                    lane = self._lane_name(record.service, record.account, record.target)
                    await self._scripts["append"](
                        keys=[f"{k}rec:{record.id}", f"{k}seq:{lane}", f"{k}lane:{lane}", f"{k}ready",
                              f"{k}backlog:{record.service}", f"{k}counts:{record.service}", f"{k}services"],
                        args=[record.id, record.service, record.target, record.model_dump_json(),
                              repr(record.created_at), repr(record.next_attempt_at), lane],
                        client=pipe,
                    )
                seqs = await pipe.execute()
            except Exception as exc:  # noqa: BLE001 - every waiter must learn the batch failed
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), seq in zip(batch, seqs, strict=True):
                if not fut.done():
                    fut.set_result(int(seq))

    async def _fetch(self, ids: list[Any]) -> list[ReplayRecord]:
        if not ids:
            return []
        k = await self._keys()
        pipe = self._r.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(f"{k}rec:{_s(i)}", *_FIELDS)
        out = []
        for values in await pipe.execute():
            rec = _to_record(values)
            if rec is not None:
                out.append(rec)
        return out

    async def claim(self, worker_id: str, limit: int, lease_s: float, now: float | None = None) -> list[ReplayRecord]:
        t = time.time() if now is None else now
        k = await self._keys()
        lanes = [_s(x) for x in await self._r.zrangebyscore(f"{k}ready", "-inf", repr(t), start=0, num=limit)]
        if not lanes:
            return []
        pipe = self._r.pipeline(transaction=False)
        for lane in lanes:
            pipe.lindex(f"{k}lane:{lane}", 0)
        heads = [None if h is None else _s(h) for h in await pipe.execute()]
        pipe = self._r.pipeline(transaction=False)
        for lane, head in zip(lanes, heads, strict=True):
            lanek = f"{k}lane:{lane}"
            await self._scripts["claim"](keys=[f"{k}ready", lanek, f"{k}rec:{head}" if head else lanek],
                                         args=[lane, head or "", worker_id, repr(t), repr(lease_s)], client=pipe)
        results = await pipe.execute()
        # -1: the head moved meanwhile (delivered by another worker): the lane is claimed next round
        return await self._fetch([head for head, r in zip(heads, results, strict=True) if int(r) == 1])

    async def _lane_of(self, k: str, record_id: str) -> tuple[str, str, str] | None:
        lane, service, target = await self._r.hmget(f"{k}rec:{record_id}", "lane", "service", "target")
        return None if lane is None else (_s(lane), _s(service), _s(target))

    async def _on_lane(self, name: str, record_id: str, middle: Callable[[str, str], list[str]],
                       args: Callable[[str, str, str], list[str]], *, head_after_removal: bool = False) -> int:
        """Run script ``name`` on one record with its lane's head read first (the key a script
        cannot know): KEYS = rec, lane, *middle(k, service), ready, head rec. Re-read while the
        script answers -1 (the head moved meanwhile). 0 when the record is gone."""
        k = await self._keys()
        for _ in range(RETRIES):
            found = await self._lane_of(k, record_id)
            if found is None:
                return 0
            lane, service, target = found
            lanek, rk = f"{k}lane:{lane}", f"{k}rec:{record_id}"
            first = [_s(x) for x in await self._r.lrange(lanek, 0, 1)]
            if head_after_removal and first[:1] == [record_id]:
                first = first[1:]
            head = first[0] if first else ""
            got = int(await self._scripts[name](keys=[rk, lanek, *middle(k, service), f"{k}ready",
                                                      f"{k}rec:{head}" if head else rk],
                                                args=args(lane, target, head)))
            if got != -1:
                return got
        return 0

    async def ack(self, record_id: str, worker_id: str) -> bool:
        return await self._on_lane("ack", record_id, lambda k, svc: [f"{k}backlog:{svc}", f"{k}counts:{svc}"],
                                   lambda lane, target, head: [record_id, worker_id, lane, target, head],
                                   head_after_removal=True) == 1

    async def nack(self, record_id: str, worker_id: str, *, error: str, next_attempt_at: float, dead: bool) -> bool:
        return await self._on_lane("nack", record_id, lambda k, svc: [f"{k}dead", f"{k}counts:{svc}"],
                                   lambda lane, target, head: [record_id, worker_id, error[:2000],
                                                               repr(next_attempt_at), "1" if dead else "0", lane,
                                                               target, head]) == 1

    async def get(self, record_id: str) -> ReplayRecord | None:
        k = await self._keys()
        return _to_record(await self._r.hmget(f"{k}rec:{record_id}", *_FIELDS))

    async def status(self) -> dict[str, ServiceStatus]:
        k = await self._keys()
        services = sorted(_s(s) for s in await self._r.smembers(f"{k}services"))
        pipe = self._r.pipeline(transaction=False)
        for s in services:
            pipe.hgetall(f"{k}counts:{s}")
            pipe.zrange(f"{k}backlog:{s}", 0, 0, withscores=True)
        results = await pipe.execute()
        now = time.time()
        out: dict[str, ServiceStatus] = {}
        for i, s in enumerate(services):
            counts, oldest = results[2 * i], results[2 * i + 1]
            st = ServiceStatus(service=s)
            for field, value in counts.items():
                kind, _, target = _s(field).partition(":")
                n = int(value)
                if n == 0:
                    continue
                tc = st.per_target.setdefault(target, TargetCounts())
                if kind == "dead":
                    tc.dead += n
                    st.dead_letters += n
                else:
                    tc.pending += n
                    st.backlog += n
            if oldest:
                st.oldest_age_s = max(0.0, now - oldest[0][1])
            if st.backlog or st.dead_letters:
                out[s] = st
        return out

    async def pending_for(self, service: str, account: str, target: Side) -> int:
        k = await self._keys()
        return int(await self._r.llen(f"{k}lane:{self._lane_name(service, account, target)}"))

    async def dead_letters(self, service: str | None = None, limit: int = 100) -> list[ReplayRecord]:
        k = await self._keys()
        ids = await self._r.zrange(f"{k}dead", 0, -1)
        recs = [r for r in await self._fetch(ids) if service is None or r.service == service]
        return recs[:limit]

    async def retry(self, record_id: str | None = None, service: str | None = None) -> int:
        k = await self._keys()
        ids = [record_id] if record_id else [_s(i) for i in await self._r.zrange(f"{k}dead", 0, -1)]
        n = 0
        for rid in ids:
            n += await self._retry_one(rid, service or "")
        return n

    async def _retry_one(self, record_id: str, service: str) -> int:
        return await self._on_lane("retry", record_id, lambda k, svc: [f"{k}dead", f"{k}counts:{svc}"],
                                   lambda lane, target, head: [record_id, service, lane, target, head])

    async def drain(self, timeout: float, service: str | None = None) -> int:
        return await drain_by_polling(self, timeout, service)

    async def aclose(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
        await self._r.aclose()

    async def delete_all(self) -> None:
        """Remove every key under this prefix (tests and ``dual-write reset``)."""
        async for key in self._r.scan_iter(match=glob_escape(self.prefix) + "*", count=500):
            await self._r.delete(key)
