"""The controller's leader lease: pure decisions, the Redis edge and fenced writes (real Redis)."""

import uuid

import pytest
import redis

from chariot_migrate.rollout import state as st
from chariot_migrate.rollout.cluster import count_changes, render_metrics
from chariot_migrate.rollout.lease import (
    FencedStore,
    LeaseLost,
    LeaseView,
    RedisLease,
    after_acquire,
    after_error,
    after_renew,
    may_act,
    next_action,
)
from chariot_migrate.rollout.state import HistoryEntry, ServiceState
from chariot_migrate.rollout.store import open_state_store


def test_pure_lease_decisions():
    v = LeaseView("a", lease_ms=3000)
    assert next_action(v) == "acquire" and not may_act(v, 0.0)
    v = after_acquire(v, "7|a", sent_at=100.0)
    assert v.token == 7 and next_action(v) == "renew"
    assert may_act(v, 102.3) and not may_act(v, 102.5)  # only in the first 80 % of the lease
    assert after_acquire(LeaseView("a"), None, 1.0).value is None  # someone else holds it
    v2 = after_renew(v, True, sent_at=102.0)
    assert v2.renewed_at == 102.0 and may_act(v2, 104.0)
    assert after_renew(v, False, 102.0).value is None  # lost: the term ends at once
    assert after_error(v, 101.0) == v  # Redis blip: keep the term while it is surely valid
    assert after_error(v, 103.0).value is None  # then give it up


@pytest.fixture
def prefix():
    p = f"test:{uuid.uuid4().hex}:"
    yield p
    r = redis.Redis()
    for k in r.scan_iter(p + "*"):
        r.delete(k)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_one_holder_takeover_after_expiry_and_fencing_of_the_deposed(prefix):
    store = open_state_store(f"redis://127.0.0.1:6379/0?prefix={prefix}")
    ca, cb = Clock(), Clock()
    a = RedisLease(store.client, prefix, "controller", "a", lease_ms=300, clock=ca)
    b = RedisLease(store.client, prefix, "controller", "b", lease_ms=300, clock=cb)
    assert a.step().token == 1 and a.may_act()
    assert b.step().value is None and not b.may_act()  # the second waits
    assert a.holder() == "1|a"
    fa, fb = FencedStore(store, a), FencedStore(store, b)
    default = ServiceState(service="svc")
    fa.update("svc", lambda s: st.shift(s, 5), default=default, actor="ctl", action="shift")
    with pytest.raises(LeaseLost):
        fb.update("svc", lambda s: st.shift(s, 50), default=default, actor="ctl", action="shift")
    # a stops renewing (paused); its key expires in Redis and b takes over with a new term
    import time

    time.sleep(0.4)  # why: waits out the lease TTL on purpose (a stops renewing; expiry is the subject)
    assert b.step().token == 2 and b.may_act()
    # a still *believes* it leads (its clock did not move): the fence in the transaction refuses it
    assert a.may_act()
    with pytest.raises(LeaseLost):
        fa.update("svc", lambda s: st.shift(s, 50), default=default, actor="ctl", action="shift")
    assert a.step().value is None  # its renewal fails: it knows now
    fb.update("svc", lambda s: st.shift(s, 25), default=default, actor="ctl", action="shift")
    h = store.history("svc")
    assert [(e.after["percent_bp"], e.evidence["leader"], e.evidence["term"]) for e in h] == [(500, "a", 1),
                                                                                             (2500, "b", 2)]
    b.release()
    assert store.client.get(b.key) is None and b.view.value is None
    store.close()


def test_fencing_needs_the_redis_store(tmp_path):
    s = open_state_store(f"sqlite:///{tmp_path}/s.db")
    with pytest.raises(ValueError, match="Redis"):
        FencedStore(s, object())


def _h(service, action, before, after):
    return HistoryEntry(service=service, at=0, actor="x", action=action, before=before, after=after)


def test_changes_are_counted_from_the_history_for_annotations():
    hist = [
        _h("account", "shift", {"percent_bp": 0, "stage": "legacy"}, {"percent_bp": 100, "stage": "canary"}),
        _h("account", "promote → 5", {"percent_bp": 100}, {"percent_bp": 500}),
        _h("account", "hold at 5", {"percent_bp": 500}, {"percent_bp": 500}),
        _h("account", "approve 25", {"percent_bp": 500}, {"percent_bp": 500}),
        _h("account", "rollback → 1%", {"percent_bp": 500}, {"percent_bp": 100}),
        _h("account", "rollback", {"percent_bp": 100}, {"percent_bp": 0}),
        _h("account", "pin a→new", {"percent_bp": 0}, {"percent_bp": 0}),
    ]
    assert count_changes(hist) == {("account", "shift"): 2, ("account", "approve"): 1, ("account", "rollback"): 2}
    text = render_metrics(count_changes(hist), leader=True, term=3, services=["account", "risk"])
    assert 'migration_changes_total{action="rollback",service="account"} 2.0' in text
    assert 'migration_changes_total{action="shift",service="risk"} 0.0' in text
    assert "migration_controller_leader 1.0" in text and "migration_controller_term 3.0" in text
