"""ReplayWorker against a real SQLite outbox and an in-memory receiving side."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chariot_migrate.dual_write.records import PrimaryResult, ReplayRecord, ReplayRequest
from chariot_migrate.dual_write.replay_protocol import decode_primary_result
from chariot_migrate.dual_write.sqlite_outbox import SQLiteOutbox
from chariot_migrate.dual_write.worker import ReplayWorker
from chariot_migrate.transport import HttpRequest, HttpResponse, UpstreamError


class Receiver:
    """Applies each Idempotency-Key once; can fail scripted or random attempts."""

    def __init__(self, fail_first: int = 0, fail_rate: float = 0.0, status_on_fail: int = 503, seed: int = 1):
        self.applied: list[tuple[str, int, str]] = []  # (account, seq, key)
        self.keys: set[str] = set()
        self.requests: list[HttpRequest] = []
        self.fail_first = fail_first
        self.fail_rate = fail_rate
        self.status_on_fail = status_on_fail
        self.rng = random.Random(seed)
        self.concurrent = 0
        self.max_concurrent_per_account: dict[str, int] = {}
        self._active: dict[str, int] = {}

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.requests.append(request)
        acct = request.header("x-migrate-replay-account")
        self._active[acct] = self._active.get(acct, 0) + 1
        self.max_concurrent_per_account[acct] = max(self.max_concurrent_per_account.get(acct, 0), self._active[acct])
        try:
            await asyncio.sleep(0)  # why: yields, so per-account overlap would show in max_concurrent
            if self.fail_first > 0:
                self.fail_first -= 1
                return HttpResponse(status=self.status_on_fail, body=b"nope")
            if self.rng.random() < self.fail_rate:
                if self.rng.random() < 0.5:
                    raise UpstreamError("connect", "refused")
                return HttpResponse(status=503)
            key = request.header("idempotency-key")
            if key in self.keys:
                return HttpResponse(status=409, body=b"already applied")
            self.keys.add(key)
            self.applied.append((acct, int(request.header("x-migrate-replay-seq")), key))
            return HttpResponse(status=201, body=b'{"ok":true}')
        finally:
            self._active[acct] -= 1

    async def aclose(self) -> None:
        pass


def rec(account: str, n: int = 0, target: str = "new") -> ReplayRecord:
    return ReplayRecord(
        service="svc", account=account, target=target, route_id="r",
        request=ReplayRequest(method="POST", path="/thing", body=f'{{"n":{n}}}'.encode()),
        primary=PrimaryResult(status=200, body=f'{{"id":"gen-{n}"}}'.encode()),
    )


@pytest.fixture
async def outbox(tmp_path):
    ob = SQLiteOutbox(tmp_path / "o.db")
    yield ob
    await ob.aclose()


def worker(outbox, receiver, **kw) -> ReplayWorker:
    kw.setdefault("base_delay_s", 0.001)
    kw.setdefault("max_delay_s", 0.01)
    kw.setdefault("poll_interval_s", 0.005)
    return ReplayWorker(outbox, lambda service, side: receiver, rng=random.Random(0), **kw)


async def run_until_drained(*workers: ReplayWorker, outbox, timeout: float = 10) -> None:
    for w in workers:
        w.start()
    try:
        assert await outbox.drain(timeout) == 0
    finally:
        for w in workers:
            await w.stop()


async def test_delivers_with_identity_idempotency_key_and_primary_result(outbox):
    recv = Receiver()
    seen = []
    r = await outbox.append(rec("a", 1))
    w = worker(outbox, recv, replay_token_provider=lambda: "replay-token", on_result=lambda rr, resp: seen.append(
        (rr.id, resp.status)))
    assert await w.run_once() == 1
    req = recv.requests[0]
    assert req.header("authorization") == "Bearer replay-token"
    assert req.header("idempotency-key") == r.id and req.header("x-migrate-replay") == "1"
    assert decode_primary_result(req.header("x-migrate-primary-result"))[0].body == b'{"id":"gen-1"}'
    assert req.body == b'{"n":1}' and req.path == "/thing"
    assert seen == [(r.id, 201)]
    assert await outbox.pending_for("svc", "a", "new") == 0


async def test_retries_with_backoff_then_succeeds(outbox):
    recv = Receiver(fail_first=3)
    await outbox.append(rec("a"))
    w = worker(outbox, recv, max_attempts=5)
    await run_until_drained(w, outbox=outbox)
    assert len(recv.applied) == 1 and len(recv.requests) == 4
    assert w.failed_attempts == 3 and w.delivered == 1


async def test_after_max_attempts_the_record_is_a_dead_letter_and_retry_delivers_it(outbox):
    recv = Receiver(fail_first=3)
    r = await outbox.append(rec("a"))
    w = worker(outbox, recv, max_attempts=3)
    w.start()
    for _ in range(200):
        if await outbox.dead_letters():
            break
        await asyncio.sleep(0.01)  # why: an async poll's interval (conftest.eventually is sync)
    dead = await outbox.dead_letters()
    assert [d.id for d in dead] == [r.id] and dead[0].attempts == 3 and "HTTP 503" in dead[0].last_error
    assert recv.applied == []
    assert await outbox.retry() == 1
    w.notify()
    assert await outbox.drain(5) == 0
    await w.stop()
    assert [k for _, _, k in recv.applied] == [r.id]


async def test_permanent_client_error_dead_letters_immediately(outbox):
    recv = Receiver(fail_first=1, status_on_fail=422)
    await outbox.append(rec("a"))
    w = worker(outbox, recv, max_attempts=8)
    await w.run_once()
    dead = await outbox.dead_letters()
    assert len(dead) == 1 and dead[0].attempts == 1 and dead[0].last_error.startswith("HTTP 422")


async def test_conflict_409_counts_as_already_applied(outbox):
    recv = Receiver()
    r = await outbox.append(rec("a"))
    recv.keys.add(r.id)
    await worker(outbox, recv).run_once()
    assert await outbox.pending_for("svc", "a", "new") == 0 and recv.applied == []


async def test_transport_exceptions_are_retried_not_fatal(outbox):
    class Broken:
        async def send(self, request, timeout):
            raise RuntimeError("bug")

        async def aclose(self):
            pass

    await outbox.append(rec("a"))
    w = ReplayWorker(outbox, lambda s, side: Broken(), base_delay_s=0.001, max_attempts=2)
    await w.run_once()
    (r,) = await outbox.claim("peek", 1, 1, now=1e12)
    assert r.attempts == 1 and "RuntimeError: bug" in r.last_error


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plan=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=40),
    fail_rate=st.floats(0, 0.6),
    seed=st.integers(0, 1000),
)
async def test_property_every_write_arrives_exactly_once_in_lane_order(tmp_path_factory, plan, fail_rate, seed):
    ob = SQLiteOutbox(tmp_path_factory.mktemp("p") / "o.db")
    try:
        for i, acct in enumerate(plan):
            await ob.append(rec(acct, i))
        recv = Receiver(fail_rate=fail_rate, seed=seed)
        # Two workers share the outbox: leases must keep them from delivering a record twice
        # at once, and head-of-line claiming must keep each account in order.
        w1 = worker(ob, recv, max_attempts=1000, concurrency=3)
        w2 = worker(ob, recv, max_attempts=1000, concurrency=3)
        await run_until_drained(w1, w2, outbox=ob)
        per_account: dict[str, list[int]] = {}
        for acct, seq, _ in recv.applied:
            per_account.setdefault(acct, []).append(seq)
        for acct in set(plan):
            assert per_account[acct] == list(range(1, plan.count(acct) + 1))
        assert len(recv.keys) == len(plan)
        assert all(v == 1 for v in recv.max_concurrent_per_account.values())
    finally:
        await ob.aclose()


async def test_lease_must_outlive_the_delivery_timeout(outbox):
    with pytest.raises(ValueError, match="lease_s"):
        ReplayWorker(outbox, lambda s, side: None, timeout_s=10, lease_s=5)
