"""One suite, both stores: SQLite (file) and Redis (the real server on 127.0.0.1:6379)."""

import threading
import uuid

import pytest
import redis

from chariot_migrate.rollout import state as st
from chariot_migrate.rollout.evidence import StaticDataEvidence
from chariot_migrate.rollout.operations import OperationError, Operations
from chariot_migrate.rollout.state import ServiceState
from chariot_migrate.rollout.store import StateStoreError, open_state_store
from chariot_migrate.routes.models import RoutesFile

CFG = RoutesFile.model_validate({
    "legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
    "services": {"account": {"phase": 1, "dual_write": "on"}, "risk-assessment": {"phase": 3, "shadow_percent": 10}},
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
    ops = Operations(store, CFG, data_evidence=StaticDataEvidence())
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


def test_records_are_kept_per_kind_and_key_and_replaced_whole(store):
    assert store.get_record("verify", "account") is None and store.records("verify") == {}
    store.put_record("verify", "account", {"ok": False, "at": 1.0})
    store.put_record("verify", "account", {"ok": True, "at": 2.0})
    store.put_record("backfill", "account", {"started_at": 1.0, "finished_at": 3.0})
    assert store.get_record("verify", "account") == {"ok": True, "at": 2.0}
    assert store.records("verify") == {"account": {"ok": True, "at": 2.0}}
    assert store.records("backfill") == {"account": {"started_at": 1.0, "finished_at": 3.0}}
    store.delete_record("verify", "account")
    assert store.get_record("verify", "account") is None
    assert store.version() == 0  # records are not rollout changes: proxies need not reload


def test_a_record_written_through_one_store_object_is_read_through_another(store, tmp_path):
    from chariot_migrate.rollout.evidence import last_verify_clean, read_record, write_record
    from chariot_migrate.rollout.sqlite_store import SQLiteStateStore

    url = (f"sqlite:///{store.path}" if isinstance(store, SQLiteStateStore)
           else f"redis://127.0.0.1:6379/0?prefix={store.prefix}")
    write_record("verify", "account", {"ok": True, "at": 5.0}, url)  # opens and closes its own connection
    assert store.get_record("verify", "account") == {"ok": True, "at": 5.0}
    assert read_record("verify", "account", store=store)["at"] == 5.0
    assert last_verify_clean("account", store=store) is True
    assert last_verify_clean("risk-assessment", store=store) is None


def test_an_old_records_file_is_read_once_and_imported_into_the_store(store, tmp_path, monkeypatch):
    import json

    from chariot_migrate.rollout.evidence import read_record

    monkeypatch.setenv("CHARIOT_MIGRATE_STATE_DIR", str(tmp_path / "dir"))
    old = tmp_path / "dir" / "verify" / "account.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"ok": True, "at": 7.0}))
    assert read_record("verify", "account", store=store) == {"ok": True, "at": 7.0}
    assert store.get_record("verify", "account") == {"ok": True, "at": 7.0}  # imported
    old.write_text(json.dumps({"ok": False, "at": 9.0}))
    assert read_record("verify", "account", store=store)["ok"] is True  # the store wins from now on


def test_shadow_ignores_live_in_the_store_and_export_to_the_reviewed_file(store, tmp_path):
    from chariot_migrate.shadow.ignores import IgnoreRule, add_ignore, import_ignores, load_ignores

    f = tmp_path / "shadow-ignores.yaml"
    add_ignore(IgnoreRule(signature="aaaaaaaaaaaa", reason="ids differ"), f, store=store)
    assert [r.signature for r in load_ignores(None, store=store)] == ["aaaaaaaaaaaa"]  # no file needed
    assert "aaaaaaaaaaaa" in f.read_text() and "ids differ" in f.read_text()
    other = tmp_path / "reviewed.yaml"
    other.write_text("ignores:\n  - {signature: bbbbbbbbbbbb, reason: reviewed in git}\n")
    assert [r.signature for r in import_ignores(store, other)] == ["bbbbbbbbbbbb"]
    assert {r.signature for r in load_ignores(None, store=store)} == {"aaaaaaaaaaaa", "bbbbbbbbbbbb"}
