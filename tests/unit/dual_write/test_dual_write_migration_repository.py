"""MigrationRepository with in-memory repositories and a real SQLite outbox."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from chariot_migrate.dual_write.replay_protocol import build_replay_request
from chariot_migrate.dual_write.repository import MigrationRepository, RepositoryTransport, hash_bucket
from chariot_migrate.dual_write.sqlite_outbox import SQLiteOutbox
from chariot_migrate.dual_write.worker import ReplayWorker
from chariot_migrate.transport import HttpRequest


class MemoryRepo:
    def __init__(self, name: str):
        self.name = name
        self.items: dict[str, dict] = {}
        self.down = False
        self.log: list[tuple[str, str]] = []

    def _check(self):
        if self.down:
            raise ConnectionError(f"{self.name} is down")

    def put(self, item):  # sync on purpose: both kinds of repository are supported
        self._check()
        self.items[item["id"]] = dict(item)
        self.log.append(("put", item["id"]))
        return item

    async def get(self, key):
        self._check()
        return self.items.get(key["id"])

    async def delete(self, key):
        self._check()
        self.items.pop(key["id"], None)
        self.log.append(("delete", key["id"]))


@pytest.fixture
async def outbox(tmp_path):
    ob = SQLiteOutbox(tmp_path / "o.db")
    yield ob
    await ob.aclose()


def make(outbox, new_accounts=frozenset()):
    legacy, new = MemoryRepo("legacy"), MemoryRepo("new")
    repo = MigrationRepository(legacy, new, 0, outbox, lambda acct: acct in new_accounts, service="assets", name="assets")
    return repo, legacy, new


async def test_writes_go_to_primary_then_secondary_reads_from_primary(outbox):
    repo, legacy, new = make(outbox, new_accounts={"n@x"})
    await repo.put("l@x", {"id": "1", "v": 1})
    await repo.put("n@x", {"id": "2", "v": 2})
    assert legacy.items.keys() == new.items.keys() == {"1", "2"}
    new.items["1"]["v"] = "drift"
    legacy.items["2"]["v"] = "drift"
    assert (await repo.get("l@x", {"id": "1"}))["v"] == 1  # legacy account reads legacy
    assert (await repo.get("n@x", {"id": "2"}))["v"] == 2  # new account reads new
    await repo.delete("l@x", {"id": "1"})
    assert "1" not in legacy.items and "1" not in new.items


async def test_failed_secondary_write_goes_to_the_outbox_and_is_replayed(outbox):
    repo, legacy, new = make(outbox)
    new.down = True
    await repo.put("a@x", {"id": "1", "n": Decimal("1.5")})
    assert legacy.items["1"]["n"] == Decimal("1.5") and new.items == {}
    assert await outbox.pending_for("assets", "a@x", "new") == 1
    # Later writes of the same account queue behind it even once the side is back up ...
    new.down = False
    await repo.put("a@x", {"id": "1", "n": Decimal("2")})
    await repo.delete("a@x", {"id": "1"})
    assert new.log == [] and await outbox.pending_for("assets", "a@x", "new") == 3
    # ... and another account is unaffected.
    await repo.put("b@x", {"id": "9"})
    assert new.log == [("put", "9")]
    worker = ReplayWorker(
        outbox, lambda service, side: RepositoryTransport(new if side == "new" else legacy),
        base_delay_s=0.001, poll_interval_s=0.005,
    )
    worker.start()
    assert await outbox.drain(5) == 0
    await worker.stop()
    assert new.log == [("put", "9"), ("put", "1"), ("put", "1"), ("delete", "1")]
    assert "1" not in new.items


async def test_primary_failure_raises_and_writes_nothing(outbox):
    repo, legacy, new = make(outbox)
    legacy.down = True
    with pytest.raises(ConnectionError):
        await repo.put("a@x", {"id": "1"})
    assert new.items == {} and await outbox.status() == {}


async def test_replayed_value_types_survive_the_outbox(outbox):
    repo, legacy, new = make(outbox)
    new.down = True
    item = {"id": "1", "n": Decimal("3.25"), "tags": {"a", "b"}, "blob": b"\x00\xff", "nested": {"l": [1, "x"]}}
    await repo.put("a@x", item)
    new.down = False
    (rec,) = await outbox.claim("w", 1, 30)
    resp = await RepositoryTransport(new).send(build_replay_request(rec, None), 1)
    assert resp.status == 204 and new.items["1"] == item


async def test_repository_transport_errors_become_retries_or_rejections():
    repo = MemoryRepo("x")
    repo.down = True
    assert (await RepositoryTransport(repo).send(HttpRequest("PUT", "/", body=b'{"item":{"id":"1"}}'), 1)).status == 503
    assert (await RepositoryTransport(repo).send(HttpRequest("PUT", "/", body=b"not json"), 1)).status == 400
    assert (await RepositoryTransport(repo).send(HttpRequest("POST", "/", body=b"{}"), 1)).status == 400


def test_default_bucket_is_monotonic_in_percent():
    legacy, new = MemoryRepo("l"), MemoryRepo("n")
    accounts = [f"user{i}@x.com" for i in range(2000)]
    pct = {"v": 0.0}
    repo = MigrationRepository(legacy, new, lambda: pct["v"], None, service="s", dual_write=False)
    previous: set[str] = set()
    for p in (0, 1, 5, 25, 50, 100):
        pct["v"] = p
        on_new = {a for a in accounts if repo.side_for(a) == "new"}
        assert previous <= on_new
        assert abs(len(on_new) - len(accounts) * p / 100) <= len(accounts) * 0.04
        previous = on_new
    assert 0 <= hash_bucket("s", random.choice(accounts)) < 10000


def test_dual_write_requires_an_outbox():
    with pytest.raises(ValueError, match="outbox"):
        MigrationRepository(MemoryRepo("l"), MemoryRepo("n"), 0, None, service="s")
