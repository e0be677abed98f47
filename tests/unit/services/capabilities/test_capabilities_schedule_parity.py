"""Schedules answer alike on legacy's job function and the capabilities service: the same request
sequence (bad bodies, create, list, update, pause/resume, delete, missing ids) gives the same
statuses and (normalised) JSON on both sides, and the rows are ``#capability_schedule#{id}``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import svc_c_testkit as kit
from svc_c_testkit import Stack, call_service, normalize

from chariot_migrate.legacy import asset, functions, job, search
from chariot_migrate.legacy import store as legacy_store
from chariot_migrate.services.capabilities.app import CapabilitiesSettings, create_app

stack, _moto_stack = kit.stack, kit._moto_stack

ONE = "/capability/schedule/{scheduleId}"
ACTION = "/capability/schedule/{scheduleId}/{action}"


class LegacyTargets:
    """The service's target lookup over the legacy table, so both sides see the same targets."""

    async def get(self, account: str, key: str) -> dict[str, Any] | None:
        return legacy_store.get(account, key)

    async def attributes_of(self, *a: Any) -> list[dict[str, Any]]:
        return []


@pytest.fixture
def svc(stack: Stack):
    settings = CapabilitiesSettings.from_env("capabilities", schedule_interval_s=0, resume_queued_jobs=False)
    with kit.service(create_app, settings=settings, peers=LegacyTargets()) as client:
        yield client


def _legacy(s: Stack, method: str, path: str, body: Any, resource: str, params: dict[str, str]):
    return s.call(job.handler, method, path, body, resource=resource, path_params=params or None)


def both(svc, s: Stack, method: str, resource: str, body: Any = None, ids: tuple[str, str] = ("", ""),
         action: str = "") -> tuple[tuple[int, Any], tuple[int, Any]]:
    """Send one request to each side; ``ids`` are (legacy id, service id) for ``{scheduleId}``."""
    out = []
    for side, sid in zip(("legacy", "new"), ids, strict=True):
        params = {k: v for k, v in (("scheduleId", sid), ("action", action)) if "{" + k + "}" in resource}
        if side == "legacy":
            path = resource.replace("{scheduleId}", sid).replace("{action}", action)
            out.append(_legacy(s, method, path, body, resource, params))
        else:
            path = resource.replace("{scheduleId}", quote(sid, safe="")).replace("{action}", action)
            raw = body.encode() if isinstance(body, str) else None
            out.append(call_service(svc, s, method, path, None if raw else body, raw=raw))
    return out[0], out[1]


def same(pair) -> tuple[int, Any, Any]:
    """(status, legacy body, service body) once both sides answered alike."""
    (ls, lb), (ns, nb) = pair
    assert (ls, normalize(lb)) == (ns, normalize(nb)), f"legacy {ls} {lb!r}\nservice {ns} {nb!r}"
    return ls, lb, nb


def test_schedule_routes_are_legacy_job_routes():
    for method, template in (("POST", "/capability/schedule"), ("PUT", ONE), ("DELETE", ONE), ("PATCH", ACTION)):
        assert functions.ROUTE_FUNCTIONS[(method, template)] == "chariot-job"
        assert (method, template) in job.ROUTES


def test_contract_case_schedule_bad(stack: Stack, svc):
    """The e2e contract's ``schedule-bad`` case, one request at a time."""
    missing = ("missing-id", "missing-id")
    ls, lb, _ = same(both(svc, stack, "POST", "/capability/schedule", {}))
    assert ls == 400 and "capabilityName" in lb["message"]
    gone = (404, {"message": "schedule missing-id not found"})
    assert same(both(svc, stack, "PUT", ONE, {}, missing))[:2] == gone
    assert same(both(svc, stack, "DELETE", ONE, None, missing))[:2] == gone
    assert same(both(svc, stack, "PATCH", ACTION, None, missing, "pause"))[:2] == gone


def test_schedule_lifecycle_answers_alike(stack: Stack, svc):
    target = "#asset#p.com#p.com"
    stack.call(asset.handler, "PUT", "/asset", {"group": "p.com", "identifier": "p.com"})
    week = {"monday": {"enabled": True, "time": "02:00"}, "thursday": {"enabled": True, "time": "23:30"}}
    body = {"capabilityName": "portscan", "targetKey": target, "weeklySchedule": week,
            "startDate": "2026-01-01", "config": {"depth": 2}}
    for bad in ({**body, "capabilityName": "zap"}, {**body, "weeklySchedule": {"funday": {"enabled": True}}},
                {**body, "weeklySchedule": {"monday": {"enabled": True, "time": "25:00"}}},
                {**body, "weeklySchedule": {"monday": {"enabled": False}}}, {**body, "startDate": "soon"},
                {**body, "targetKey": "p.com"}, {**body, "targetKey": "#asset#no#no"}, "not json", [1]):
        assert same(both(svc, stack, "POST", "/capability/schedule", bad))[0] in (400, 404)
    _, lb, nb = same(both(svc, stack, "POST", "/capability/schedule", body))
    ids = (lb["scheduleId"], nb["scheduleId"])
    assert lb["key"] == f"#capability_schedule#{ids[0]}" and lb["status"] == "active" and lb["nextExecution"]
    assert legacy_store.get(stack.user, lb["key"])["capabilityName"] == "portscan"
    # listed by GET /my on both sides (legacy: the search function over its table)
    legacy_list = stack.call(search.handler, "GET", "/my", query={"key": "#capability_schedule#"})
    new_list = call_service(svc, stack, "GET", "/my", query={"key": "#capability_schedule#"})
    same((legacy_list, new_list))
    assert [s["scheduleId"] for s in legacy_list[1]["capabilityschedules"]] == [ids[0]]
    same(both(svc, stack, "PUT", ONE, {"weeklySchedule": {"friday": {"enabled": True, "time": "08:15"}}}, ids))
    same(both(svc, stack, "PUT", ONE, {"weeklySchedule": {"friday": {"enabled": False}}}, ids))
    for action, status in (("resume", 409), ("explode", 400), ("pause", 200), ("pause", 409), ("resume", 200)):
        assert same(both(svc, stack, "PATCH", ACTION, None, ids, action))[0] == status, action
    same(both(svc, stack, "PUT", ONE, {}, ("a#b", "a#b")))
    ls, gone, _ = same(both(svc, stack, "DELETE", ONE, None, ids))
    assert ls == 200 and gone["scheduleId"] == ids[0] and legacy_store.get(stack.user, gone["key"]) is None
    assert same(both(svc, stack, "DELETE", ONE, None, ids))[0] == 404
