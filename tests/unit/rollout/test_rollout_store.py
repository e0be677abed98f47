"""One suite, both stores: SQLite (file) and Redis (the real server on 127.0.0.1:6379)."""

import threading
import uuid

import pytest
import redis

from chariot_migrate.rollout import state as st
from chariot_migrate.rollout.operations import OperationError, Operations
from chariot_migrate.rollout.state import ServiceState
from chariot_migrate.rollout.store import StateStoreError, open_state_store
from chariot_migrate.routes.models import RoutesFile

CFG = RoutesFile.model_validate({
    "legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
    "services": {"account": {"phase": 1}, "risk-assessment": {"phase": 3, "shadow_percent": 10}},
})


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_state_store(f"sqlite:///{tmp_path}/state.db")
        yield s
        s.close()
    else:
        prefix = f"test:{uuid.uuid4().hex}:"
        s = open_state_store(f"redis://127.0.0.1:6379/0?prefix={prefix}")
        yield s
        r = redis.Redis()
        for k in r.scan_iter(prefix + "*"):
            r.delete(k)
        s.close()


def test_update_bumps_version_and_writes_history(store):
    assert store.version() == 0 and store.all() == {}
    default = ServiceState(service="account")
    s1 = store.update("account", lambda s: st.shift(s, 25), default=default, actor="alice", action="shift", reason="canary 1")
    assert s1.percent_bp == 2500 and s1.stage == "canary" and s1.version == 1 and s1.updated_by == "alice"
    s2 = store.update("account", lambda s: st.pin(s, "qa@x.com", "new"), default=default, actor="bob", action="pin")
    assert s2.percent_bp == 2500 and s2.pins == {"qa@x.com": "new"} and store.version() == 2
    h = store.history("account")
    assert [e.actor for e in h] == ["alice", "bob"]
    assert h[0].before["percent_bp"] == 0 and h[0].after["percent_bp"] == 2500 and h[0].reason == "canary 1"
    assert "new% 0.0→25.0" in h[0].summary()
    assert store.get("account") == s2


def test_concurrent_updates_lose_nothing(store):
    default = ServiceState(service="account")

    def bump(i):
        store.update("account", lambda s: st.pin(s, f"u{i}@x.com", "new"), default=default, actor=f"t{i}", action="pin")

    threads = [threading.Thread(target=bump, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.get("account").pins) == 16
    assert store.version() == 16 and len(store.history("account", 100)) == 16


def test_operations_validate_and_audit(store):
    ops = Operations(store, CFG)
    with pytest.raises(OperationError, match="unknown service 'acount'.*account"):
        ops.shift("acount", 5)
    with pytest.raises(OperationError, match="0.01 steps"):
        ops.shift("account", 0.001)
    with pytest.raises(OperationError, match="between 0 and 100"):
        ops.shift("account", 101)
    ops.shift("account", 50, actor="ci", reason="step")
    ops.pin("account", "QA@Example.com", "legacy", actor="ci")
    s = ops.rollback("account", actor="ci")
    assert s.percent_bp == 0 and s.pins == {"qa@example.com": "legacy"} and s.stage == "legacy"
    rows = {r.service: r for r in ops.status()}
    assert rows["risk-assessment"].state.shadow_bp == 1000 and rows["risk-assessment"].state.stage == "shadow"
    assert [h.action for h in ops.history("account")] == ["shift", "pin qa@example.com→legacy", "rollback"]


def test_unknown_store_url():
    with pytest.raises(StateStoreError, match="unknown state store URL"):
        open_state_store("postgres://x")


def test_redis_down_is_a_clear_error():
    s = open_state_store("redis://127.0.0.1:1/0")
    with pytest.raises(StateStoreError, match="unavailable"):
        s.version()
