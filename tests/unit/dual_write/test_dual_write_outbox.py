"""One contract suite, run against both outbox backends (SQLite file, real Redis)."""

from __future__ import annotations

import asyncio
import time
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chariot_migrate.dual_write.outbox import open_outbox
from chariot_migrate.dual_write.records import PrimaryResult, ReplayRecord, ReplayRequest
from chariot_migrate.dual_write.redis_outbox import RedisOutbox
from chariot_migrate.dual_write.sqlite_outbox import SQLiteOutbox


@pytest.fixture(params=["sqlite", "redis", "redis-declared-keys"])
async def outbox(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        ob = SQLiteOutbox(tmp_path / "outbox.db")
        yield ob
        await ob.aclose()
    else:
        if request.param == "redis-declared-keys":  # the same contract with every script's keys checked
            from test_redis_outbox_cluster_keys import GUARD

            from chariot_migrate.dual_write import redis_outbox

            monkeypatch.setattr(redis_outbox, "SCRIPTS", {k: GUARD + v for k, v in redis_outbox.SCRIPTS.items()})
        ob = RedisOutbox("redis://127.0.0.1:6379/0", prefix=f"test:{uuid4().hex}:")
        yield ob
        await ob.delete_all()
        await ob.aclose()


def rec(account: str = "a@x.com", target: str = "new", service: str = "svc", body: bytes = b"{}") -> ReplayRecord:
    return ReplayRecord(
        service=service,
        account=account,
        target=target,
        route_id="r1",
        request=ReplayRequest(method="POST", path="/asset", headers=[("content-type", "application/json")], body=body),
        primary=PrimaryResult(status=200, body=b'{"id":"gen-1"}'),
    )


async def test_append_assigns_gap_free_seq_per_lane(outbox):
    a1 = await outbox.append(rec("a"))
    b1 = await outbox.append(rec("b"))
    a2 = await outbox.append(rec("a"))
    a_legacy = await outbox.append(rec("a", target="legacy"))
    assert (a1.seq, a2.seq, b1.seq, a_legacy.seq) == (1, 2, 1, 1)
    got = await outbox.get(a2.id)
    assert got is not None and got.seq == 2 and got.request.body == b"{}" and got.primary.body == b'{"id":"gen-1"}'


async def test_append_is_idempotent_per_id(outbox):
    r = rec()
    first = await outbox.append(r)
    again = await outbox.append(r)
    assert first.seq == again.seq == 1
    assert await outbox.pending_for("svc", r.account, "new") == 1


async def test_binary_bodies_survive_storage(outbox):
    body = bytes(range(256))
    stored = await outbox.append(rec(body=body))
    assert (await outbox.get(stored.id)).request.body == body


async def test_concurrent_appends_are_all_stored_with_unique_contiguous_seqs(outbox):
    records = [rec(f"acct{i % 5}") for i in range(300)]
    stored = await asyncio.gather(*(outbox.append(r) for r in records))
    by_account: dict[str, list[int]] = {}
    for s in stored:
        by_account.setdefault(s.account, []).append(s.seq)
    for seqs in by_account.values():
        assert sorted(seqs) == list(range(1, 61))
    assert (await outbox.status())["svc"].backlog == 300


async def test_claim_hands_out_only_lane_heads_and_blocks_the_lane_until_ack(outbox):
    a1 = await outbox.append(rec("a"))
    a2 = await outbox.append(rec("a"))
    b1 = await outbox.append(rec("b"))
    first = await outbox.claim("w1", 10, lease_s=30)
    assert sorted(r.id for r in first) == sorted([a1.id, b1.id])
    # a2 waits behind the leased a1, even for another worker.
    assert await outbox.claim("w2", 10, lease_s=30) == []
    assert await outbox.ack(a1.id, "w1")
    nxt = await outbox.claim("w2", 10, lease_s=30)
    assert [r.id for r in nxt] == [a2.id]


async def test_ack_and_nack_need_the_lease(outbox):
    a1 = await outbox.append(rec("a"))
    await outbox.claim("w1", 10, lease_s=30)
    assert not await outbox.ack(a1.id, "intruder")
    assert not await outbox.nack(a1.id, "intruder", error="x", next_attempt_at=0, dead=False)
    assert await outbox.pending_for("svc", "a", "new") == 1


async def test_expired_lease_is_claimable_again(outbox):
    a1 = await outbox.append(rec("a"))
    now = time.time()
    assert [r.id for r in await outbox.claim("w1", 10, lease_s=5, now=now)] == [a1.id]
    assert await outbox.claim("w2", 10, lease_s=5, now=now + 1) == []
    again = await outbox.claim("w2", 10, lease_s=5, now=now + 6)
    assert [r.id for r in again] == [a1.id]
    assert not await outbox.ack(a1.id, "w1")  # the old holder lost it
    assert await outbox.ack(a1.id, "w2")


async def test_nack_reschedules_and_keeps_lane_order(outbox):
    a1 = await outbox.append(rec("a"))
    await outbox.append(rec("a"))
    now = time.time()
    await outbox.claim("w", 10, lease_s=30, now=now)
    assert await outbox.nack(a1.id, "w", error="HTTP 503", next_attempt_at=now + 10, dead=False)
    assert await outbox.claim("w", 10, lease_s=30, now=now + 5) == []  # not due, and a2 must wait
    later = await outbox.claim("w", 10, lease_s=30, now=now + 11)
    assert [r.id for r in later] == [a1.id]
    assert later[0].attempts == 1 and later[0].last_error == "HTTP 503"


async def test_dead_letter_is_visible_blocks_its_lane_and_retry_requeues(outbox):
    a1 = await outbox.append(rec("a"))
    a2 = await outbox.append(rec("a"))
    b1 = await outbox.append(rec("b"))
    await outbox.claim("w", 1, lease_s=30)  # oldest first: a1
    assert await outbox.nack(a1.id, "w", error="HTTP 400: bad", next_attempt_at=0, dead=True)
    dead = await outbox.dead_letters()
    assert [d.id for d in dead] == [a1.id] and dead[0].state == "dead" and dead[0].last_error == "HTTP 400: bad"
    assert await outbox.dead_letters(service="other") == []
    st = (await outbox.status())["svc"]
    assert (st.backlog, st.dead_letters) == (2, 1)
    assert st.per_target["new"].dead == 1 and st.per_target["new"].pending == 2
    assert st.oldest_age_s is not None and st.oldest_age_s >= 0
    # Lane a is blocked by its dead head; lane b proceeds.
    assert [r.id for r in await outbox.claim("w", 10, lease_s=30)] == [b1.id]
    assert await outbox.pending_for("svc", "a", "new") == 2
    assert await outbox.retry(a1.id) == 1
    assert await outbox.dead_letters() == []
    again = await outbox.claim("w", 10, lease_s=30)
    assert [r.id for r in again] == [a1.id] and again[0].attempts == 0
    assert await outbox.ack(a1.id, "w")
    assert [r.id for r in await outbox.claim("w", 10, lease_s=30)] == [a2.id]


async def test_retry_all_filters_by_service(outbox):
    x = await outbox.append(rec("a", service="s1"))
    y = await outbox.append(rec("a", service="s2"))
    await outbox.claim("w", 10, lease_s=30)
    for r in (x, y):
        await outbox.nack(r.id, "w", error="e", next_attempt_at=0, dead=True)
    assert await outbox.retry(service="s1") == 1
    assert [d.id for d in await outbox.dead_letters()] == [y.id]
    assert await outbox.retry() == 1
    assert await outbox.retry() == 0


async def test_status_and_drain(outbox):
    assert await outbox.status() == {}
    r = await outbox.append(rec("a", target="legacy"))
    st = await outbox.status()
    assert st["svc"].per_target["legacy"].pending == 1 and "new" not in st["svc"].per_target
    assert await outbox.drain(0.05) == 1

    async def deliver_later():
        await asyncio.sleep(0.1)  # why: the delivery must come after drain() has started waiting
        await outbox.claim("w", 10, lease_s=30)
        await outbox.ack(r.id, "w")

    task = asyncio.create_task(deliver_later())
    assert await outbox.drain(5) == 0
    await task
    assert await outbox.status() == {}
    assert await outbox.pending_for("svc", "a", "legacy") == 0


def test_open_outbox_urls(tmp_path):
    ob = open_outbox(f"sqlite:///{tmp_path}/x.db")
    assert isinstance(ob, SQLiteOutbox) and ob.path == tmp_path / "x.db"
    asyncio.run(ob.aclose())
    rb = open_outbox("redis://127.0.0.1:6379/0?prefix=p1:")
    assert isinstance(rb, RedisOutbox) and rb.prefix == "p1:"
    asyncio.run(rb.aclose())
    with pytest.raises(ValueError, match="scheme must be"):
        open_outbox("postgres://x")


def test_sqlite_file_is_owner_only(tmp_path):
    ob = SQLiteOutbox(tmp_path / "o.db")
    assert (tmp_path / "o.db").stat().st_mode & 0o077 == 0
    asyncio.run(ob.aclose())


# ---- claim against a model: only due, unleased lane heads, whatever the history ------------------

_op = st.one_of(
    st.tuples(st.just("append"), st.sampled_from(["a", "b", "c"]), st.sampled_from(["new", "legacy"])),
    st.tuples(st.just("claim"), st.integers(1, 4)),
    st.tuples(st.just("ack"), st.integers(0, 20)),
    st.tuples(st.just("nack"), st.integers(0, 20), st.booleans(), st.sampled_from([0.0, 1e12])),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, max_size=30))
def test_claim_returns_exactly_the_due_unleased_lane_heads(tmp_path_factory, ops):
    """A model of the outbox (lanes of records in seq order) predicts every claim: a record is
    claimable only if it heads its lane (no older record of any state), is pending, due and not
    leased. Ordering and the dead-letter block must survive any mix of appends, claims, acks and
    nacks (the claim query was rewritten for speed; this pins its meaning)."""

    async def run() -> None:
        ob = SQLiteOutbox(tmp_path_factory.mktemp("ob") / "outbox.db")
        lanes: dict[tuple[str, str], list[dict]] = {}
        leased: list[str] = []
        try:
            for op in ops:
                if op[0] == "append":
                    r = await ob.append(rec(op[1], target=op[2]))
                    lanes.setdefault((op[1], op[2]), []).append({"id": r.id, "state": "pending", "due": 0.0,
                                                                 "leased": False})
                elif op[0] == "claim":
                    expected = {lane[0]["id"] for lane in lanes.values()
                                if lane and lane[0]["state"] == "pending" and lane[0]["due"] <= time.time()
                                and not lane[0]["leased"]}
                    got = await ob.claim("w", 100, lease_s=600)
                    assert {r.id for r in got} == expected
                    for lane in lanes.values():
                        if lane and lane[0]["id"] in expected:
                            lane[0]["leased"] = True
                            leased.append(lane[0]["id"])
                elif leased:
                    rid = leased.pop(op[1] % len(leased))
                    lane = next(lane for lane in lanes.values() if lane and lane[0]["id"] == rid)
                    if op[0] == "ack":
                        assert await ob.ack(rid, "w")
                        lane.pop(0)
                    else:
                        _, _, dead, due = op
                        assert await ob.nack(rid, "w", error="x", next_attempt_at=due, dead=dead)
                        lane[0].update(state="dead" if dead else "pending", due=due, leased=False)
        finally:
            await ob.aclose()

    asyncio.run(run())


async def test_undelivered_accounts_is_the_per_service_view_of_pending_for(tmp_path):
    ob = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        a = await ob.append(rec("a", target="new"))
        await ob.append(rec("b", target="legacy"))
        c = await ob.append(rec("c", target="new"))
        await ob.append(rec("d", target="new", service="other"))
        assert await ob.undelivered_accounts("svc", "new") == {"a", "c"}
        claimed = {r.id for r in await ob.claim("w", 10, lease_s=30)}
        assert {a.id, c.id} <= claimed
        assert await ob.ack(a.id, "w")
        assert await ob.nack(c.id, "w", error="x", next_attempt_at=0, dead=True)
        # delivered: gone; dead: still undelivered (it blocks its lane until retried)
        assert await ob.undelivered_accounts("svc", "new") == {"c"}
        for acct in ("a", "b", "c", "d"):
            assert (acct in await ob.undelivered_accounts("svc", "new")) == (await ob.pending_for("svc", acct, "new") > 0)
    finally:
        await ob.aclose()
