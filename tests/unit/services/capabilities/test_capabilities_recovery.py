"""Job leases and crash recovery: the pure rules, the recovery pass over leases, and verify's
filter of the service's own bookkeeping items (saga logs, leases)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from chariot_migrate.dual_write import data
from chariot_migrate.services.capabilities import recovery
from chariot_migrate.services.capabilities.migration import CapabilitiesMigration
from chariot_migrate.services.capabilities.service import JobService
from chariot_migrate.services.kit.repository import ConflictError

JOB = {"username": "a@x.com", "key": "#job#x.com#x.com#portscan", "status": "JR#2026-01-01T00:00:00Z"}


def lease(expires: float, attempts: int = 1, **extra: Any) -> dict[str, Any]:
    return recovery.lease_item("a@x.com", JOB["key"], "dead", expires, 0, attempts) | {"version": 1} | extra


@pytest.mark.parametrize(("job", "the_lease", "want"), [
    (JOB, lease(expires=200), "wait"),  # still renewed by its owner
    (None, lease(expires=50), "release"),  # the job is gone
    (JOB | {"status": "JP#2026"}, lease(expires=50), "release"),  # final already: a stale lease
    (JOB | {"status": "JF#2026"}, lease(expires=50), "release"),
    (JOB, lease(expires=50, attempts=1), "resume"),
    (JOB | {"status": "JQ#2026"}, lease(expires=50, attempts=2), "resume"),
    (JOB, lease(expires=50, attempts=3), "fail"),  # interrupted JOB_MAX_ATTEMPTS times
    (JOB, lease(expires=100, attempts=1), "resume"),  # expiry is inclusive
])
def test_decide(job, the_lease, want):
    assert recovery.decide(job, the_lease, now=100.0, max_attempts=3) == want


def test_lease_item_and_bookkeeping():
    item = recovery.lease_item("a@x.com", "#job#k", "me", 10.0, 30.0, 2)
    assert item["username"] == recovery.LEASE_PARTITION and item["expires"] == 40.0 and item["attempts"] == 2
    assert item["account"] == "a@x.com" and item["job_key"] == "#job#k"
    assert recovery.is_bookkeeping(item)
    assert recovery.is_bookkeeping({"username": "#saga#a@x.com", "key": "#job#k"})
    assert not recovery.is_bookkeeping({"username": "a@x.com", "key": "#job#k"})
    assert "3 times" in recovery.give_up_reason(3) and "1 time " in recovery.give_up_reason(1)


# --- the recovery pass (fakes for the table, leases and runner) ------------------------------------


class FakeJobs:
    def __init__(self, items: dict[str, dict[str, Any]]) -> None:
        self.items = items

    async def aget(self, account: str, key: str) -> dict[str, Any] | None:
        return self.items.get(key)

    async def aput(self, item: dict[str, Any]) -> dict[str, Any]:
        self.items[item["key"]] = dict(item)
        return item


class FakeLeases:
    def __init__(self, leases: list[dict[str, Any]], taken: set[str] = frozenset()) -> None:
        self.leases, self.taken, self.released, self.claimed = leases, set(taken), [], []
        self.lease_s = 30.0

    def clock(self) -> float:
        return 100.0

    async def all(self):
        return list(self.leases)

    async def claim(self, lease):
        if lease["job_key"] in self.taken:
            return None
        self.claimed.append(lease["job_key"])
        return lease

    async def release(self, account, job_key):
        self.released.append(job_key)


class FakeRunner:
    def __init__(self, leases: FakeLeases) -> None:
        self.leases, self.ran, self.gave_up = leases, [], []

    async def run(self, account, key):
        self.ran.append(key)

    async def give_up(self, account, key, attempts, applied=None):
        self.gave_up.append((key, attempts, applied))


def _lease(key: str, expires: float, attempts: int = 1) -> dict[str, Any]:
    return recovery.lease_item("a@x.com", key, "dead", expires, 0, attempts) | {"version": 1}


async def test_recover_resumes_fails_releases_and_waits():
    jobs = FakeJobs({
        "#job#resume": {"username": "a@x.com", "key": "#job#resume", "status": "JR#t"},
        "#job#fail": {"username": "a@x.com", "key": "#job#fail", "status": "JR#t"},
        "#job#live": {"username": "a@x.com", "key": "#job#live", "status": "JR#t"},
        "#job#done": {"username": "a@x.com", "key": "#job#done", "status": "JP#t"},
        "#job#raced": {"username": "a@x.com", "key": "#job#raced", "status": "JR#t"},
    })
    leases = FakeLeases([_lease("#job#resume", 50), _lease("#job#fail", 50, attempts=3) | {
        "applied": [["attribute", "#attribute#port#22#asset#x"]]}, _lease("#job#live", 500),
                         _lease("#job#done", 50), _lease("#job#raced", 50)], taken={"#job#raced"})
    runner = FakeRunner(leases)
    svc = JobService(jobs, None, None, runner, clock=lambda: "2026-02-02T00:00:00Z")  # type: ignore[arg-type]
    counts = await svc.recover(max_attempts=3)
    await svc.drain()
    assert counts == {"wait": 1, "release": 1, "resume": 2, "fail": 1}
    assert runner.ran == ["#job#resume"]  # back to JQ, then run again
    assert jobs.items["#job#resume"]["status"] == "JQ#2026-02-02T00:00:00Z"
    assert runner.gave_up == [("#job#fail", 3, [["attribute", "#attribute#port#22#asset#x"]])]
    assert leases.released == ["#job#done"]
    assert jobs.items["#job#raced"]["status"] == "JR#t"  # another replica claimed it first: untouched
    assert jobs.items["#job#live"]["status"] == "JR#t"


async def test_recover_leaves_jobs_this_process_runs():
    jobs = FakeJobs({"#job#mine": {"username": "a@x.com", "key": "#job#mine", "status": "JR#t"}})
    leases = FakeLeases([_lease("#job#mine", 50)])
    gate = asyncio.Event()

    class Slow(FakeRunner):
        async def run(self, account, key):
            await gate.wait()

    runner = Slow(leases)
    svc = JobService(jobs, None, None, runner)  # type: ignore[arg-type]
    svc.start("a@x.com", ["#job#mine"])
    svc.start("a@x.com", ["#job#mine"])  # already in flight here: not started twice
    assert len(svc._tasks) == 1
    assert (await svc.recover(max_attempts=3))["wait"] == 1
    gate.set()
    await svc.drain()
    assert leases.claimed == []


# --- the lease store (a fake Repository with its version semantics) -----------------------------------------------


class FakeRepo:
    """The three Repository calls LeaseStore makes, with its version semantics."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, account, key):
        return self.items.get((account, key))

    def put(self, item, expected_version=None):
        k = (item["username"], item["key"])
        cur = self.items.get(k)
        if expected_version == 0 and cur is not None or expected_version and (cur or {}).get("version") != expected_version:
            raise ConflictError(item["key"])
        stored = dict(item) | {"version": (expected_version or 0) + 1}
        self.items[k] = stored
        return dict(stored)

    def delete(self, account, key):
        return self.items.pop((account, key), None)

    def iter_prefix(self, account, prefix="", page_size=100):
        return [v for (a, _), v in self.items.items() if a == account]


async def test_lease_store_counts_attempts_and_one_claim_wins():
    from chariot_migrate.services.capabilities.leases import LeaseStore

    t = [100.0]
    repo = FakeRepo()
    a = LeaseStore(repo, lease_s=10, owner="a", clock=lambda: t[0])  # type: ignore[arg-type]
    b = LeaseStore(repo, lease_s=10, owner="b", clock=lambda: t[0])  # type: ignore[arg-type]
    first = await a.acquire("u@x.com", "#job#k")
    assert (first["attempts"], first["expires"], first["owner"]) == (1, 110.0, "a")
    t[0] = 105.0
    renewed = await a.renew(first)
    assert renewed["expires"] == 115.0
    t[0] = 200.0  # a died
    [stale] = await b.all()
    assert recovery.decide({"status": "JR#t"}, stale, t[0], 3) == "resume"
    assert (await b.claim(stale))["owner"] == "b"
    assert await a.claim(stale) is None  # the same stale version cannot be claimed twice
    with pytest.raises(ConflictError):
        await a.renew(renewed)  # a's heartbeat learns it lost the lease
    assert (await b.acquire("u@x.com", "#job#k"))["attempts"] == 2
    await b.release("u@x.com", "#job#k")
    assert await b.all() == []


async def test_a_run_lists_its_results_in_the_lease_and_giving_up_undoes_them():
    from chariot_migrate.services.capabilities.leases import HeldLease, LeaseStore
    from chariot_migrate.services.capabilities.runner import JobRunner

    repo = FakeRepo()
    store = LeaseStore(repo, lease_s=10, owner="a", clock=lambda: 100.0)  # type: ignore[arg-type]
    held = HeldLease(store, await store.acquire("u@x.com", JOB["key"]))
    await held.applied("asset", "#asset#x.com#x.com")
    await held.applied("attribute", "#attribute#port#22#asset#x.com#x.com")
    await held.applied("asset", "#asset#x.com#x.com")  # a second run writes the same item: listed once
    await held.renew()  # the heartbeat keeps the list
    [lease] = await store.all()
    assert lease["applied"] == [["asset", "#asset#x.com#x.com"], ["attribute", "#attribute#port#22#asset#x.com#x.com"]]
    assert not held.lost

    undone: list[tuple[str, str]] = []
    events = []

    class Sink:
        async def undo(self, account, kind, key):
            if kind == "attribute":
                raise RuntimeError("asset-discovery is down")
            undone.append((kind, key))

    async def publish(event):
        events.append(event)

    jobs_table = FakeJobs({JOB["key"]: dict(JOB)})
    runner = JobRunner(jobs_table, None, Sink(), publish, clock=lambda: "2026-03-03T00:00:00Z",  # type: ignore[arg-type]
                       leases=store)
    done = await runner.give_up("u@x.com", JOB["key"], 3, lease["applied"])
    assert undone == [("asset", "#asset#x.com#x.com")]  # newest first; the failing one is reported
    assert done["status"] == "JF#2026-03-03T00:00:00Z"
    assert done["error"].startswith("job interrupted 3 times") and "1 result it had written undone (1 could not" in done["error"]
    assert [e.type for e in events] == ["job.completed"] and events[0].data["status"].startswith("JF#")
    assert await store.all() == []  # the lease is gone
    # another instance took the lease over: this run stops writing to it
    held2 = HeldLease(store, await store.acquire("u@x.com", JOB["key"]))
    repo.items[(recovery.LEASE_PARTITION, recovery.lease_key("u@x.com", JOB["key"]))]["version"] += 1
    await held2.applied("risk", "#risk#x.com#weak")
    assert held2.lost


# --- data verify ignores the service's bookkeeping -------------------------------------------------


class FakeTable:
    def __init__(self, items: list[dict[str, Any]], key_schema: list[dict[str, str]] | None = None) -> None:
        self.items = items
        self.key_schema = key_schema or [{"AttributeName": "username", "KeyType": "HASH"},
                                         {"AttributeName": "key", "KeyType": "RANGE"}]
        self.name = "fake"
        self.meta = SimpleNamespace(client=self)  # data commands scan through the resource's client

    def scan(self, TableName: str = "", **kwargs: Any) -> dict[str, Any]:
        return {"Items": [i for i in self.items if "FilterExpression" not in kwargs or i["key"].startswith("#job#")]}


def test_verify_does_not_count_saga_logs_and_leases_as_missing_in_legacy():
    m = CapabilitiesMigration(table_prefix="t-")
    job = {"username": "a@x.com", "key": "#job#x.com#x.com#portscan", "status": "JP#t"}
    legacy = FakeTable([job])
    jobs_table = FakeTable([
        job | {"version": 2},
        {"username": "#saga#a@x.com", "key": job["key"], "state": "completed", "version": 5},
        recovery.lease_item("a@x.com", "#job#x.com#x.com#nuclei", "me", 1.0, 30, 1) | {"version": 1},
    ])
    new = {"t-capabilities-jobs": jobs_table, "t-capabilities-schedules": FakeTable([])}
    result = data.verify(m, legacy, new)
    assert result.ok, result
    assert result.matched == 1 and result.missing_in_legacy == []
    # a real job only on the new side is still reported
    jobs_table.items.append({"username": "a@x.com", "key": "#job#y.com#y.com#portscan", "status": "JP#t"})
    result = data.verify(m, legacy, new)
    assert [r.key["key"] for r in result.missing_in_legacy] == ["#job#y.com#y.com#portscan"]
