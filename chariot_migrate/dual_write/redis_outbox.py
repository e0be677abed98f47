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
Keys are built inside the scripts, so this targets a single Redis (or a primary with
replicas), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis

from chariot_migrate.dual_write.outbox import (
    DEFAULT_REDIS_PREFIX,
    ServiceStatus,
    TargetCounts,
    drain_by_polling,
)
from chariot_migrate.dual_write.records import ReplayRecord, Side

_SEP = "\x1f"

_APPEND = """
local P, id, service, account, target, payload, created, nexta =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local lane = service .. '\\31' .. account .. '\\31' .. target
local rk = P .. 'rec:' .. id
if redis.call('EXISTS', rk) == 1 then return redis.call('HGET', rk, 'seq') end
local seq = redis.call('INCR', P .. 'seq:' .. lane)
redis.call('HSET', rk, 'payload', payload, 'seq', seq, 'state', 'pending', 'attempts', 0,
  'next', nexta, 'err', '', 'owner', '', 'until', 0, 'lane', lane, 'service', service,
  'target', target, 'created', created)
if redis.call('RPUSH', P .. 'lane:' .. lane, id) == 1 then
  redis.call('ZADD', P .. 'ready', nexta, lane)
end
redis.call('ZADD', P .. 'backlog:' .. service, created, id)
redis.call('HINCRBY', P .. 'counts:' .. service, 'pending:' .. target, 1)
redis.call('SADD', P .. 'services', service)
return seq
"""

_CLAIM = """
local P, owner, now, limit, lease = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local lanes = redis.call('ZRANGEBYSCORE', P .. 'ready', '-inf', now, 'LIMIT', 0, limit)
local out = {}
for _, lane in ipairs(lanes) do
  local id = redis.call('LINDEX', P .. 'lane:' .. lane, 0)
  if not id then
    redis.call('ZREM', P .. 'ready', lane)
  else
    local rk = P .. 'rec:' .. id
    if redis.call('HGET', rk, 'state') ~= 'pending' then
      redis.call('ZREM', P .. 'ready', lane)
    else
      local untilv = now + lease
      redis.call('HSET', rk, 'owner', owner, 'until', tostring(untilv))
      redis.call('ZADD', P .. 'ready', untilv, lane)
      table.insert(out, id)
    end
  end
end
return out
"""

# After the head of a lane changed: index the new head in `ready` if it is pending.
_REINDEX = """
local function reindex(P, lane)
  local nxt = redis.call('LINDEX', P .. 'lane:' .. lane, 0)
  if nxt and redis.call('HGET', P .. 'rec:' .. nxt, 'state') == 'pending' then
    local owner = redis.call('HGET', P .. 'rec:' .. nxt, 'owner')
    local score = redis.call('HGET', P .. 'rec:' .. nxt, 'next')
    if owner ~= '' then score = redis.call('HGET', P .. 'rec:' .. nxt, 'until') end
    redis.call('ZADD', P .. 'ready', score, lane)
  else
    redis.call('ZREM', P .. 'ready', lane)
  end
end
"""

_ACK = _REINDEX + """
local P, id, owner = ARGV[1], ARGV[2], ARGV[3]
local rk = P .. 'rec:' .. id
if redis.call('HGET', rk, 'owner') ~= owner then return 0 end
local lane, service, target = unpack(redis.call('HMGET', rk, 'lane', 'service', 'target'))
redis.call('LREM', P .. 'lane:' .. lane, 1, id)
redis.call('DEL', rk)
redis.call('ZREM', P .. 'backlog:' .. service, id)
redis.call('HINCRBY', P .. 'counts:' .. service, 'pending:' .. target, -1)
reindex(P, lane)
return 1
"""

_NACK = _REINDEX + """
local P, id, owner, err, nexta, dead = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local rk = P .. 'rec:' .. id
if redis.call('HGET', rk, 'owner') ~= owner then return 0 end
local lane, service, target, created = unpack(redis.call('HMGET', rk, 'lane', 'service', 'target', 'created'))
redis.call('HINCRBY', rk, 'attempts', 1)
redis.call('HSET', rk, 'err', err, 'next', nexta, 'owner', '', 'until', 0)
if dead == '1' then
  redis.call('HSET', rk, 'state', 'dead')
  redis.call('ZADD', P .. 'dead', created, id)
  redis.call('HINCRBY', P .. 'counts:' .. service, 'pending:' .. target, -1)
  redis.call('HINCRBY', P .. 'counts:' .. service, 'dead:' .. target, 1)
end
reindex(P, lane)
return 1
"""

_RETRY = _REINDEX + """
local P, only_id, only_service = ARGV[1], ARGV[2], ARGV[3]
local ids
if only_id ~= '' then ids = {only_id} else ids = redis.call('ZRANGE', P .. 'dead', 0, -1) end
local n = 0
for _, id in ipairs(ids) do
  local rk = P .. 'rec:' .. id
  local state, lane, service, target = unpack(redis.call('HMGET', rk, 'state', 'lane', 'service', 'target'))
  if state == 'dead' and (only_service == '' or only_service == service) then
    redis.call('HSET', rk, 'state', 'pending', 'attempts', 0, 'next', 0, 'owner', '', 'until', 0)
    redis.call('ZREM', P .. 'dead', id)
    redis.call('HINCRBY', P .. 'counts:' .. service, 'pending:' .. target, 1)
    redis.call('HINCRBY', P .. 'counts:' .. service, 'dead:' .. target, -1)
    reindex(P, lane)
    n = n + 1
  end
end
return n
"""

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


class RedisOutbox:
    def __init__(
        self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = DEFAULT_REDIS_PREFIX, max_batch: int = 256
    ) -> None:
        self.prefix = prefix
        self._r = aioredis.from_url(url)
        self._append = self._r.register_script(_APPEND)
        self._claim = self._r.register_script(_CLAIM)
        self._ack = self._r.register_script(_ACK)
        self._nack = self._r.register_script(_NACK)
        self._retry = self._r.register_script(_RETRY)
        self._max_batch = max_batch
        self._queue: list[tuple[ReplayRecord, asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def _lane_key(self, service: str, account: str, target: str) -> str:
        return f"{self.prefix}lane:{service}{_SEP}{account}{_SEP}{target}"

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
            pipe = self._r.pipeline(transaction=False)
            for record, _ in batch:
                await self._append(
                    args=[
                        self.prefix, record.id, record.service, record.account, record.target,
                        record.model_dump_json(), repr(record.created_at), repr(record.next_attempt_at),
                    ],
                    client=pipe,
                )
            try:
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
        pipe = self._r.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(self.prefix + "rec:" + (i.decode() if isinstance(i, bytes) else i), *_FIELDS)
        out = []
        for values in await pipe.execute():
            rec = _to_record(values)
            if rec is not None:
                out.append(rec)
        return out

    async def claim(self, worker_id: str, limit: int, lease_s: float, now: float | None = None) -> list[ReplayRecord]:
        t = time.time() if now is None else now
        ids = await self._claim(args=[self.prefix, worker_id, repr(t), limit, repr(lease_s)])
        return await self._fetch(ids)

    async def ack(self, record_id: str, worker_id: str) -> bool:
        return bool(await self._ack(args=[self.prefix, record_id, worker_id]))

    async def nack(self, record_id: str, worker_id: str, *, error: str, next_attempt_at: float, dead: bool) -> bool:
        return bool(
            await self._nack(
                args=[self.prefix, record_id, worker_id, error[:2000], repr(next_attempt_at), "1" if dead else "0"]
            )
        )

    async def get(self, record_id: str) -> ReplayRecord | None:
        return _to_record(await self._r.hmget(self.prefix + "rec:" + record_id, *_FIELDS))

    async def status(self) -> dict[str, ServiceStatus]:
        services = sorted(s.decode() for s in await self._r.smembers(self.prefix + "services"))
        pipe = self._r.pipeline(transaction=False)
        for s in services:
            pipe.hgetall(f"{self.prefix}counts:{s}")
            pipe.zrange(f"{self.prefix}backlog:{s}", 0, 0, withscores=True)
        results = await pipe.execute()
        now = time.time()
        out: dict[str, ServiceStatus] = {}
        for i, s in enumerate(services):
            counts, oldest = results[2 * i], results[2 * i + 1]
            st = ServiceStatus(service=s)
            for field, value in counts.items():
                kind, _, target = field.decode().partition(":")
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
        return int(await self._r.llen(self._lane_key(service, account, target)))

    async def dead_letters(self, service: str | None = None, limit: int = 100) -> list[ReplayRecord]:
        ids = await self._r.zrange(self.prefix + "dead", 0, -1)
        recs = [r for r in await self._fetch(ids) if service is None or r.service == service]
        return recs[:limit]

    async def retry(self, record_id: str | None = None, service: str | None = None) -> int:
        return int(await self._retry(args=[self.prefix, record_id or "", service or ""]))

    async def drain(self, timeout: float, service: str | None = None) -> int:
        return await drain_by_polling(self, timeout, service)

    async def aclose(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
        await self._r.aclose()

    async def delete_all(self) -> None:
        """Remove every key under this prefix (tests and ``dual-write reset``)."""
        async for key in self._r.scan_iter(match=self.prefix + "*", count=500):
            await self._r.delete(key)
