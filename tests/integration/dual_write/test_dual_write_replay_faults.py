"""Replay worker fault tests with real processes and real HTTP on 127.0.0.1.

The receiving side is ``dual_write_receiver_app.py`` in its own process; the outbox is a real
SQLite file or the real Redis; the worker runs in the test's event loop and speaks HTTP
through a small aiohttp Transport.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from uuid import uuid4

import aiohttp
import pytest

from chariot_migrate.dual_write.records import PrimaryResult, ReplayRecord, ReplayRequest
from chariot_migrate.dual_write.redis_outbox import RedisOutbox
from chariot_migrate.dual_write.sqlite_outbox import SQLiteOutbox
from chariot_migrate.dual_write.worker import ReplayWorker
from chariot_migrate.transport import HttpRequest, HttpResponse, UpstreamError

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
TOKEN = "replay-token"


class Receiver:
    """The receiver process: start, kill, restart on the same port, inspect."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "dual_write_receiver_app.py"), "--log", str(self.log),
             "--port", str(self.port), "--token", TOKEN],
            stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), f"receiver did not start: {line!r}"
        self.port = int(line.split()[1])

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def control(self, **settings: int) -> None:
        async with aiohttp.ClientSession() as s, s.post(f"{self.url}/_control", json=settings) as r:
            assert r.status == 200

    def applied(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


class AiohttpTransport:
    def __init__(self, base_url_fn) -> None:
        self.base_url_fn = base_url_fn
        self.session: aiohttp.ClientSession | None = None

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        url = f"{self.base_url_fn()}{request.path}" + (f"?{request.query}" if request.query else "")
        try:
            async with self.session.request(
                request.method, url, headers=request.headers, data=request.body,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as r:
                return HttpResponse(status=r.status, headers=[(k.lower(), v) for k, v in r.headers.items()],
                                    body=await r.read())
        except aiohttp.ClientConnectionError as exc:
            raise UpstreamError("connect", str(exc)) from exc
        except TimeoutError as exc:
            raise UpstreamError("timeout", "replay timed out") from exc

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()


@pytest.fixture
def receiver(tmp_path):
    r = Receiver(tmp_path / "applied.jsonl")
    r.start()
    yield r
    r.kill()


@pytest.fixture(params=["sqlite", "redis"])
async def outbox(request, tmp_path):
    if request.param == "sqlite":
        ob = SQLiteOutbox(tmp_path / "outbox.db")
        yield ob
        await ob.aclose()
    else:
        ob = RedisOutbox("redis://127.0.0.1:6379/0", prefix=f"test:{uuid4().hex}:")
        yield ob
        await ob.delete_all()
        await ob.aclose()


def record(account: str, n: int) -> ReplayRecord:
    return ReplayRecord(
        service="widgets", account=account, target="new", route_id="POST /widget",
        request=ReplayRequest(method="POST", path="/widget", headers=[("content-type", "application/json")],
                              body=json.dumps({"n": n}).encode()),
        primary=PrimaryResult(status=201, body=json.dumps({"id": f"gen-{account}-{n}"}).encode()),
    )


def make_worker(outbox, receiver: Receiver, **kw) -> tuple[ReplayWorker, AiohttpTransport]:
    transport = AiohttpTransport(lambda: receiver.url)
    kw.setdefault("base_delay_s", 0.01)
    kw.setdefault("max_delay_s", 0.2)
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("lease_s", 10.0)
    kw.setdefault("poll_interval_s", 0.02)
    w = ReplayWorker(outbox, lambda service, side: transport, replay_token_provider=lambda: TOKEN, **kw)
    return w, transport


def assert_exactly_once_in_order(applied: list[dict], appended: list[ReplayRecord]) -> None:
    assert sorted(a["key"] for a in applied) == sorted(r.id for r in appended)  # exactly once
    by_account: dict[str, list[int]] = {}
    for a in applied:
        by_account.setdefault(a["account"], []).append(a["seq"])
    for acct, seqs in by_account.items():
        assert seqs == sorted(seqs), f"{acct} applied out of order: {seqs}"
    # The receiver adopted the primary's generated ids.
    want = {r.id: json.loads(r.primary.body)["id"] for r in appended}
    assert all(a["adopted_id"] == want[a["key"]] for a in applied)


async def test_flaky_secondary_gets_every_write_exactly_once_in_order(outbox, receiver):
    # 30 % fail before applying, 30 % of the rest apply but lose the reply (a retry must dedupe).
    await receiver.control(fail_percent=30, fail_after_apply_percent=30)
    statuses: list[int] = []
    w, transport = make_worker(outbox, receiver, max_attempts=50, on_result=lambda r, resp: statuses.append(resp.status))
    w.start()
    appended = []
    for i in range(60):  # appends keep arriving while the worker runs
        appended.append(await outbox.append(record(f"acct{i % 6}", i)))
        w.notify()
    try:
        assert await outbox.drain(30) == 0
    finally:
        await w.stop()
        await transport.aclose()
    # Both failure kinds happened, and lost replies came back as 409 "already applied".
    assert {503, 500, 409} <= set(statuses)
    assert_exactly_once_in_order(receiver.applied(), appended)
    assert (await outbox.status()) == {}


async def test_secondary_down_for_seconds_then_backlog_drains(tmp_path, receiver):
    outbox = SQLiteOutbox(tmp_path / "outbox.db")
    receiver.kill()  # connection refused from now on
    w, transport = make_worker(outbox, receiver, max_attempts=100, max_delay_s=0.3)
    w.start()
    appended = [await outbox.append(record(f"acct{i % 3}", i)) for i in range(15)]
    await asyncio.sleep(1.5)  # why: the outage must last seconds (oldest_age_s >= 1.0 below is the point)
    st = (await outbox.status())["widgets"]
    assert st.backlog == 15 and st.dead_letters == 0 and st.oldest_age_s >= 1.0
    assert w.failed_attempts >= 3
    receiver.start()  # same port
    try:
        assert await outbox.drain(15) == 0
    finally:
        await w.stop()
        await transport.aclose()
        await outbox.aclose()
    assert_exactly_once_in_order(receiver.applied(), appended)


async def test_dead_letter_is_visible_and_retry_delivers_it(outbox, receiver):
    await receiver.control(fail_percent=100)
    w, transport = make_worker(outbox, receiver, max_attempts=3)
    first = await outbox.append(record("a", 1))
    second = await outbox.append(record("a", 2))
    w.start()
    try:
        for _ in range(300):
            if await outbox.dead_letters():
                break
            await asyncio.sleep(0.01)  # why: an async poll's interval (conftest.eventually is sync)
        (dead,) = await outbox.dead_letters(service="widgets")
        assert dead.id == first.id and dead.attempts == 3 and "503" in dead.last_error
        st = (await outbox.status())["widgets"]
        assert (st.dead_letters, st.backlog) == (1, 1)  # the second waits behind the first
        assert await outbox.pending_for("widgets", "a", "new") == 2
        assert receiver.applied() == []
        await receiver.control(fail_percent=0)
        assert await outbox.retry(dead.id) == 1
        w.notify()
        assert await outbox.drain(10) == 0
    finally:
        await w.stop()
        await transport.aclose()
    assert [a["key"] for a in receiver.applied()] == [first.id, second.id]


_APPEND_THEN_DIE = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from chariot_migrate.dual_write.records import PrimaryResult, ReplayRecord, ReplayRequest
    from chariot_migrate.dual_write.outbox import open_outbox

    async def main():
        ob = open_outbox(sys.argv[1])
        recs = [ReplayRecord(service="widgets", account="a", target="legacy",
                             request=ReplayRequest(method="PUT", path="/w", body=b"payload-%d" % i),
                             primary=PrimaryResult(status=200, body=b'{"id":"x"}')) for i in range(5)]
        stored = await asyncio.gather(*(ob.append(r) for r in recs))
        print(" ".join(r.id for r in stored), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush, no atexit

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_appended_records_survive_sigkill_right_after_append(tmp_path, backend):
    prefix = f"test:{uuid4().hex}:"
    url = f"sqlite:///{tmp_path}/outbox.db" if backend == "sqlite" else f"redis://127.0.0.1:6379/0?prefix={prefix}"
    proc = subprocess.run(
        [sys.executable, "-c", _APPEND_THEN_DIE, url], capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ids = proc.stdout.split()
    assert len(ids) == 5
    ob = SQLiteOutbox(tmp_path / "outbox.db") if backend == "sqlite" else RedisOutbox(prefix=prefix)
    try:
        got = [await ob.get(i) for i in ids]
        assert [(g.seq, g.state, g.request.body) for g in got] == [
            (n + 1, "pending", b"payload-%d" % n) for n in range(5)
        ]
        assert await ob.pending_for("widgets", "a", "legacy") == 5
    finally:
        if isinstance(ob, RedisOutbox):
            await ob.delete_all()
        await ob.aclose()


async def test_group_commit_keeps_append_throughput_high(tmp_path):
    """Concurrent appends share fsyncs: 2000 appends from 200 concurrent writers stay fast."""
    ob = SQLiteOutbox(tmp_path / "outbox.db")
    try:
        records = [record(f"acct{i % 50}", i) for i in range(2000)]
        t0 = time.perf_counter()
        sem = asyncio.Semaphore(200)

        async def one(r):
            async with sem:
                return await ob.append(r)

        stored = await asyncio.gather(*(one(r) for r in records))
        elapsed = time.perf_counter() - t0
        assert len({(s.account, s.seq) for s in stored}) == 2000
        assert 2000 / elapsed > 500, f"only {2000 / elapsed:.0f} appends/s"
    finally:
        await ob.aclose()
