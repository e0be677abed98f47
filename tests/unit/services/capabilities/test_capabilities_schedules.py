from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import svc_c_testkit as kit
from hypothesis import given
from hypothesis import strategies as st
from svc_c_testkit import Stack, call_service

from chariot_migrate.legacy import asset
from chariot_migrate.model import schedules
from chariot_migrate.services.capabilities.app import CapabilitiesSettings, create_app
from chariot_migrate.services.capabilities.migration import CapabilitiesMigration

stack, _moto_stack = kit.stack, kit._moto_stack

slots = st.fixed_dictionaries({}, optional={d: st.builds(
    lambda e, h, m: {"enabled": e, "time": f"{h:02d}:{m:02d}"}, st.booleans(), st.integers(0, 23), st.integers(0, 59))
    for d in schedules.DAYS})
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)).map(
    lambda t: t.replace(tzinfo=UTC))


@given(slots, moments)
def test_next_execution_is_the_first_enabled_slot_after(week, after):
    nxt = schedules.next_execution(week, after)
    enabled = {d for d, s in week.items() if s["enabled"]}
    if not enabled:
        assert nxt is None
        return
    assert nxt is not None and after < nxt <= after + timedelta(days=7)
    day = schedules.DAYS[nxt.weekday()]
    assert day in enabled and nxt.strftime("%H:%M") == week[day]["time"]
    # nothing enabled lies strictly between `after` and `nxt` (minute resolution)
    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while t < nxt:
        d = schedules.DAYS[t.weekday()]
        assert not (d in enabled and t.strftime("%H:%M") == week[d]["time"])
        t += timedelta(minutes=max(1, int((nxt - t).total_seconds() // 60) // 50 or 1))


def test_end_date_expires_and_pause_resume_rules():
    body = schedules.ScheduleCreate.model_validate({
        "capabilityName": "portscan", "targetKey": "#asset#a.com#a.com",
        "weeklySchedule": {"monday": {"enabled": True, "time": "02:00"}},
        "startDate": "2026-01-01T00:00:00Z", "endDate": "2026-01-03T00:00:00Z"})
    item = schedules.build(body, "u@example.com", "s1", "2026-01-01T00:00:00Z")  # a Thursday
    assert item["status"] == "expired" and item["nextExecution"] == ""
    with pytest.raises(ValueError, match="only an active"):
        schedules.transition(item, "pause", "2026-01-01T00:00:00Z")


def _settings() -> CapabilitiesSettings:
    return CapabilitiesSettings.from_env("capabilities", schedule_interval_s=0, resume_queued_jobs=False)


class Peers:
    def __init__(self, known: set[str]) -> None:
        self.known = known

    async def get(self, account, key):
        return {"key": key, "dns": key.split("#")[2], "name": key.split("#")[3]} if key in self.known else None

    async def attributes_of(self, *a):
        return []


def test_schedule_crud_pause_resume_and_firing(stack: Stack):
    target = "#asset#s.com#s.com"
    stack.call(asset.handler, "PUT", "/asset", {"group": "s.com", "identifier": "s.com"})
    with kit.service(create_app, settings=_settings(), peers=Peers({target})) as c:
        c.app.state.jobs.start = lambda *a, **k: None
        week = {"monday": {"enabled": True, "time": "02:00"}, "thursday": {"enabled": True, "time": "23:30"}}
        body = {"capabilityName": "portscan", "targetKey": target, "weeklySchedule": week,
                "startDate": "2026-01-01", "config": {"depth": 2}}
        bad = [({**body, "capabilityName": "zap"}, "unknown capability: zap"),
               ({**body, "weeklySchedule": {"funday": {"enabled": True}}}, "unknown day 'funday'"),
               ({**body, "weeklySchedule": {"monday": {"enabled": True, "time": "25:00"}}}, "time must be HH:MM"),
               ({**body, "weeklySchedule": {"monday": {"enabled": False}}}, "enable at least one day"),
               ({**body, "startDate": "soon"}, "dates must be RFC 3339")]
        for b, reason in bad:
            st_, out = call_service(c, stack, "POST", "/capability/schedule", b)
            assert st_ == 400 and reason in out["message"], out
        st_, out = call_service(c, stack, "POST", "/capability/schedule", {**body, "targetKey": "#asset#no#no"})
        assert st_ == 404
        st_, sched = call_service(c, stack, "POST", "/capability/schedule", body)
        assert st_ == 200 and sched["status"] == "active" and sched["config"] == {"depth": "2"}
        sid = sched["scheduleId"]
        assert sched["key"] == f"#capability_schedule#{sid}" and sched["nextExecution"]
        st_, found = call_service(c, stack, "GET", "/my", query={"key": "#capability_schedule#"})
        assert [s["scheduleId"] for s in found["capabilityschedules"]] == [sid]
        st_, upd = call_service(c, stack, "PUT", f"/capability/schedule/{sid}",
                                {"weeklySchedule": {"friday": {"enabled": True, "time": "08:15"}}})
        assert st_ == 200 and upd["weeklySchedule"] == {"friday": {"enabled": True, "time": "08:15"}}
        assert upd["nextExecution"].endswith("08:15:00Z")
        assert call_service(c, stack, "PATCH", f"/capability/schedule/{sid}/resume", {})[0] == 409
        assert call_service(c, stack, "PATCH", f"/capability/schedule/{sid}/explode", {})[0] == 400
        st_, paused = call_service(c, stack, "PATCH", f"/capability/schedule/{sid}/pause", {})
        assert st_ == 200 and paused["status"] == "paused"
        # paused schedules never fire
        later = datetime.now(UTC) + timedelta(days=8)
        assert c.portal.call(c.app.state.jobs.run_due_schedules, later) == 0
        st_, resumed = call_service(c, stack, "PATCH", f"/capability/schedule/{sid}/resume", {})
        assert resumed["status"] == "active"
        # a due schedule fires once, queues its job, and moves to the next slot
        assert c.portal.call(c.app.state.jobs.run_due_schedules, later) == 1
        assert c.portal.call(c.app.state.jobs.run_due_schedules, later) == 0
        st_, found = call_service(c, stack, "GET", "/my", query={"key": "#job#s.com#s.com#portscan", "exact": "true"})
        assert found["jobs"][0]["config"] == {"depth": "2"}
        st_, found = call_service(c, stack, "GET", "/my", query={"key": "#capability_schedule#"})
        assert found["capabilityschedules"][0]["lastExecution"]
        # readonly collaborators cannot write; delete returns the schedule, then 404
        st_, gone = call_service(c, stack, "DELETE", f"/capability/schedule/{sid}")
        assert st_ == 200 and gone["scheduleId"] == sid
        assert call_service(c, stack, "DELETE", f"/capability/schedule/{sid}")[0] == 404
        assert call_service(c, stack, "PUT", f"/capability/schedule/{sid}", {})[0] == 404


def test_migration_mapping():
    m = CapabilitiesMigration(table_prefix="t-")
    assert m.to_new({"username": "u", "key": "#job#a#b#c"})[0] == "t-capabilities-jobs"
    assert m.to_new({"username": "u", "key": "#capability_schedule#1"})[0] == "t-capabilities-schedules"
    assert m.to_new({"username": "u", "key": "#asset#a#b"}) is None
    assert m.to_new({"username": "u", "key": "#job#1234#system#report"}) is None  # reporting's export job
    assert m.to_legacy("t-capabilities-jobs", {"username": "u", "key": "#job#x", "version": 3}) == {
        "username": "u", "key": "#job#x"}
