"""The safety rule (pure): which changes move accounts between sides, and what each needs.

Every guard the CLI, the admin API and the controller apply is ``check_change`` over state +
evidence; these tests pin its answers and its sentences."""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from chariot_migrate.rollout import state as st
from chariot_migrate.rollout.evidence import StaticDataEvidence
from chariot_migrate.rollout.operations import OperationError, Operations
from chariot_migrate.rollout.safety import (
    VERIFY_STALE_S,
    DataEvidence,
    check_change,
    movement,
    readiness,
    refusal,
)
from chariot_migrate.rollout.state import ServiceState
from chariot_migrate.rollout.store import open_state_store
from chariot_migrate.routes.models import RoutesFile

NOW = 1_000_000.0
BASE = ServiceState(service="svc")
ON = st.set_dual_write(BASE, "on", now=NOW - 100)
PREPARED = DataEvidence(now=NOW, backfill_started_at=NOW - 90, backfill_finished_at=NOW - 60, verify_at=NOW - 30,
                        verify_ok=True)
NOTHING = DataEvidence(now=NOW)


def test_a_fresh_service_is_not_prepared_and_says_what_is_missing():
    v = readiness("asset-discovery", BASE, NOTHING)
    assert not v.ok
    assert v.missing == ("dual write is off", "no backfill has run", "no data verify since the backfill")
    assert refusal("asset-discovery", BASE, st.shift(BASE, 50), v) == (
        "asset-discovery is not prepared: dual write is off, no backfill has run and no data verify since the "
        "backfill; run `chariot-migrate prepare asset-discovery` (or pass --force with a --reason)")


def test_prepared_means_dual_write_on_then_backfill_then_clean_recent_verify():
    assert readiness("svc", ON, PREPARED).ok
    partial = st.set_dual_write(BASE, "on", 50, now=NOW - 100)
    assert readiness("svc", partial, PREPARED).missing == ("dual write covers only 50% of accounts",)
    early = DataEvidence(now=NOW, backfill_started_at=NOW - 200, backfill_finished_at=NOW - 60, verify_at=NOW - 30,
                         verify_ok=True)
    assert "before dual write was turned on" in readiness("svc", ON, early).missing[0]
    drift = DataEvidence(**{**PREPARED.__dict__, "verify_ok": False})
    assert readiness("svc", ON, drift).missing == ("the last data verify found drift",)
    old_verify = DataEvidence(**{**PREPARED.__dict__, "verify_at": NOW - 50})
    stale = DataEvidence(**{**old_verify.__dict__, "now": NOW + VERIFY_STALE_S})
    assert readiness("svc", ON, stale).missing == ("the last data verify is 24 h old (stale after 24 h)",)
    verify_before_backfill = DataEvidence(**{**PREPARED.__dict__, "verify_at": NOW - 70})
    assert readiness("svc", ON, verify_before_backfill).missing == ("no data verify since the backfill",)


def test_a_service_without_data_of_its_own_needs_only_dual_write():
    no_data = DataEvidence(now=NOW, has_data=False)
    assert readiness("svc", ON, no_data).ok
    assert readiness("svc", BASE, no_data).missing == ("dual write is off",)


def test_dead_letters_toward_new_block_and_name_the_retry_command():
    ev = DataEvidence(**{**PREPARED.__dict__, "dead": {"new": 2}})
    v = readiness("svc", ON, ev)
    assert v.missing == ("2 write(s) toward new are dead letters",)
    assert v.fixes == ("chariot-migrate dual-write retry --all --service svc",)


def test_pending_writes_are_a_note_not_a_refusal():
    ev = DataEvidence(**{**PREPARED.__dict__, "pending": {"new": 3, "legacy": 1}})
    v = check_change("svc", ON, st.shift(ON, 25), ev)
    assert v.ok and "3 write(s) are still on their way to new" in v.notes[0]


def test_rollback_needs_writes_made_on_new_to_reach_legacy():
    on_new_without_dual_write = st.shift(BASE, 50)
    v = check_change("svc", on_new_without_dual_write, st.rollback(on_new_without_dual_write), NOTHING)
    assert v.missing == ("dual write is off, so writes made on the new side have not reached legacy",)
    assert refusal("svc", on_new_without_dual_write, st.rollback(on_new_without_dual_write), v).startswith(
        "moving svc's accounts back to legacy now would lose writes: dual write is off")
    at50 = st.shift(ON, 50)
    assert check_change("svc", at50, st.rollback(at50), NOTHING).ok  # no backfill needed to go back
    dead = DataEvidence(now=NOW, dead={"legacy": 4})
    v = check_change("svc", at50, st.rollback(at50), dead)
    assert v.missing == ("4 write(s) made on the new side failed to reach legacy (dead letters)",)
    assert v.fixes == ("chariot-migrate dual-write retry --all --service svc",)
    pending = DataEvidence(now=NOW, pending={"legacy": 2})
    assert check_change("svc", at50, st.rollback(at50), pending).notes[0].startswith("2 write(s) are still on their way")


def test_rolling_back_a_service_nobody_was_moved_to_needs_nothing():
    assert check_change("svc", BASE, st.rollback(BASE), NOTHING).ok


def test_turning_dual_write_off_while_accounts_are_on_new_is_refused():
    at50 = st.shift(ON, 50)
    v = check_change("svc", at50, st.set_dual_write(at50, "off"), PREPARED)
    assert v.missing == ("accounts are on the new side, and their writes would stop reaching legacy",)
    assert check_change("svc", ON, st.set_dual_write(ON, "off"), NOTHING).ok  # nobody on new: fine


def test_pins_move_single_accounts():
    m = movement(BASE, st.pin(BASE, "a@x", "new"))
    assert m.to_new and not m.to_legacy
    pinned_new = st.pin(st.shift(BASE, 0), "a@x", "new")
    assert movement(pinned_new, st.unpin(pinned_new, "a@x")).to_legacy
    at100 = st.shift(BASE, 100)
    m = movement(at100, st.pin(at100, "a@x", "legacy"))
    assert m.to_legacy and not m.to_new
    pinned_legacy = st.pin(at100, "a@x", "legacy")
    assert movement(pinned_legacy, st.unpin(pinned_legacy, "a@x")).to_new
    assert movement(pinned_new, st.pin(pinned_new, "a@x", "new")) == movement(BASE, BASE)


states = hs.builds(
    lambda p, pins, dw: st.set_dual_write(st.shift(BASE, p / 100), dw).model_copy(update={"pins": pins}),
    hs.integers(0, 10_000), hs.dictionaries(hs.sampled_from(["a", "b"]), hs.sampled_from(["legacy", "new"]), max_size=2),
    hs.sampled_from(["on", "off"]))


@given(states, states)
def test_raising_the_percentage_always_counts_as_moving_toward_new(before, after):
    m = movement(before, after)
    if after.percent_bp > before.percent_bp:
        assert m.to_new
    if after.percent_bp < before.percent_bp:
        assert m.to_legacy
    if before == after:
        assert not (m.to_new or m.to_legacy or m.less_dual_write)


@given(states, states)
def test_a_refused_change_is_never_ok_and_an_ok_one_has_no_missing_parts(before, after):
    v = check_change("svc", before, after, NOTHING)
    assert v.ok == (not v.missing)
    if movement(before, after).to_new:
        assert not v.ok  # nothing was backfilled or verified: moving toward new is never safe here


# --- the operations apply it --------------------------------------------------------------------


def _ops(tmp_path, evidence):
    cfg = RoutesFile.model_validate({"legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
                                     "services": {"svc": {"phase": 1}}})
    return Operations(open_state_store(f"sqlite:///{tmp_path}/state.db"), cfg, data_evidence=evidence)


def test_every_traffic_operation_refuses_an_unprepared_service(tmp_path):
    ops = _ops(tmp_path, StaticDataEvidence(DataEvidence(now=0.0)))
    for attempt in (lambda: ops.shift("svc", 5), lambda: ops.pin("svc", "a@x", "new")):
        with pytest.raises(OperationError, match=r"svc is not prepared: dual write is off.*chariot-migrate prepare svc"):
            attempt()
    assert ops.store.get("svc") is None  # nothing was written
    ops.set_shadow("svc", 100)  # copies only: not a traffic step
    assert ops.store.get("svc").shadow_bp == 10_000


def test_force_needs_a_reason_and_is_recorded_with_what_was_skipped(tmp_path):
    ops = _ops(tmp_path, StaticDataEvidence(DataEvidence(now=0.0)))
    with pytest.raises(OperationError, match="needs a --reason"):
        ops.shift("svc", 5, force=True)
    ops.shift("svc", 5, force=True, reason="incident 42")
    h = ops.history("svc", 1)[-1]
    assert h.action == "shift (forced)" and h.reason == "incident 42"
    assert h.evidence["forced"] is True and "dual write is off" in h.evidence["skipped"]
    with pytest.raises(OperationError, match="would lose writes: dual write is off"):
        ops.rollback("svc")
    ops.rollback("svc", force=True, reason="new side down")
    assert ops.store.get("svc").percent_bp == 0
    assert ops.history("svc", 1)[-1].action == "rollback (forced)"


def test_a_prepared_service_moves_both_ways_and_reports_writes_in_flight(tmp_path):
    ev = DataEvidence(now=time.time(), has_data=False, pending={"legacy": 1})
    ops = _ops(tmp_path, StaticDataEvidence(ev))
    ops.set_dual_write("svc", "on")
    ops.shift("svc", 50)
    assert ops.notes == ()
    ops.rollback("svc")
    assert ops.notes and "still on their way to legacy" in ops.notes[0]


def test_the_controller_holds_an_unprepared_service_instead_of_promoting(tmp_path):
    from chariot_migrate.rollout.controller import RolloutController
    from chariot_migrate.rollout.gates import Evidence
    from chariot_migrate.rollout.plan import Plan

    class Healthy:
        def gather(self, service, since_ts, *, slo_p95_ms, shadow_step, step=""):
            return Evidence(new_requests=500, new_p95_ms=5, legacy_p95_ms=5, pairs=500, match_rate=1.0)

    cfg = RoutesFile.model_validate({"legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
                                     "services": {"svc": {"phase": 1}},
                                     "plan": {"steps": ["shadow", 5, 100], "gates": {"min_samples": 10}}})
    ops = Operations(open_state_store(f"sqlite:///{tmp_path}/state.db"), cfg,
                     data_evidence=StaticDataEvidence(DataEvidence(now=0.0)))
    ctl = RolloutController(ops, Plan.from_routes(cfg), Healthy())
    assert ctl.tick("svc").applied == "shadow"  # copies only: allowed
    held = ctl.tick("svc")
    assert held.decision == "hold" and held.applied is None
    assert "svc is not prepared: dual write is off" in held.reason
    assert ops.store.get("svc").percent_bp == 0
    ctl.tick("svc")  # the same reason is recorded once, not every interval
    holds = [h for h in ops.history("svc") if h.action.startswith("hold")]
    assert len(holds) == 1 and "chariot-migrate prepare svc" in holds[0].reason
    forced = ctl.tick("svc", force_phase=True, force_reason="vendor window", record=False, force_safety=True)
    assert forced.applied == "5" and ops.history("svc", 1)[-1].action.endswith("(forced)")


def test_a_failover_counts_as_a_new_side_error_in_the_gate_windows():
    from chariot_migrate.proxy.addons import Exchange
    from chariot_migrate.proxy.windowing import WindowAddon
    from chariot_migrate.transport import HttpRequest, HttpResponse

    addon = WindowAddon(store=None)  # type: ignore[arg-type]
    ex = Exchange(request=HttpRequest(method="GET", path="/x", query="", headers=[], body=b""), route=None,
                  service="svc", account="a", state=None, side="legacy", decision="bucket", primary=None,
                  other=None, timeout_s=1)
    ex.response, ex.latency_s = HttpResponse(200, [], b"{}"), 0.01
    ex.notes["failed_over"] = "status_500"
    addon.done(ex)
    by_side = {side: stats for (_svc, side, _second), stats in addon.recorder.take().items()}
    assert (by_side["new"].requests, by_side["new"].errors) == (1, 1)  # the new side failed it
    assert (by_side["legacy"].requests, by_side["legacy"].errors) == (1, 0)  # legacy served it


def test_a_service_moves_only_while_the_services_sharing_its_data_are_prepared_too(tmp_path):
    cfg = RoutesFile.model_validate({"legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
                                     "services": {"assets": {"phase": 1, "shares_data_with": ["risks"]},
                                                  "risks": {"phase": 2}, "other": {"phase": 3}}})
    ops = Operations(open_state_store(f"sqlite:///{tmp_path}/state.db"), cfg,
                     data_evidence=StaticDataEvidence(DataEvidence(now=0.0, has_data=False)))
    assert ops.peers("assets") == ["risks"] and ops.peers("risks") == ["assets"] and ops.peers("other") == []
    ops.set_dual_write("assets", "on")
    with pytest.raises(OperationError, match=r"assets is not prepared: it shares data with risks, which is not "
                                             r"prepared; run `chariot-migrate prepare risks`"):
        ops.shift("assets", 10)
    ops.set_dual_write("risks", "on")
    ops.shift("assets", 10)
    row = next(r for r in ops.status() if r.service == "risks")
    assert row.readiness is not None and row.readiness.ok


def test_shares_data_with_names_known_services(tmp_path):
    from chariot_migrate.routes.loader import RoutesError, load_table

    p = tmp_path / "routes.yaml"
    p.write_text("legacy: {invoker: http, url: 'http://127.0.0.1:9'}\nservices:\n"
                 "  a: {phase: 1, shares_data_with: [b]}\nroutes: []\n")
    with pytest.raises(RoutesError, match=r"routes.yaml:3: services.a.shares_data_with: unknown service 'b'"):
        load_table(p)
