"""``POST /job`` (queue capability jobs and start the worker asynchronously),
``GET /capabilities`` (the built-in registry) and capability schedules
(``POST /capability/schedule``, ``PUT|DELETE /capability/schedule/{scheduleId}``,
``PATCH /capability/schedule/{scheduleId}/{action}``; rows ``#capability_schedule#{id}``).
The schedule rules live in :mod:`chariot_migrate.model.schedules`, shared with the capabilities service."""

from __future__ import annotations

import json
import logging
import os
import uuid
from typing import Any

from chariot_migrate.model import capabilities as caps
from chariot_migrate.model import keys, schedules
from chariot_migrate.model.requests import JobAdd
from chariot_migrate.model.status import job_code, job_status

from . import aws, store
from .auth import Caller, secured
from .http import ApiError, Request, bad_request, dispatch, not_found

log = logging.getLogger("chariot.legacy.job")
ACTIVE = {"JQ", "JR", "JQA", "JRA"}
JOB_TTL_S = 7 * 86400


def _target_model(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in ("key", "dns", "name", "value", "source") if k in item}


def queue(caller: Caller, target: dict[str, Any], capability: str, config: dict[str, Any],
          credential_ids: list[str], body: dict[str, Any] | None = None) -> dict[str, Any]:
    dns, identifier = keys.dns_and_name(target["key"])
    key = keys.job_key(dns, identifier, capability)
    existing = store.get(caller.username, key)
    if existing and job_code(existing.get("status", "")) in ACTIVE and not existing.get("allowRepeat"):
        return existing
    now = caller.stamp(body)
    kind = keys.kind_of(target["key"])
    job = {
        "username": caller.username, "key": key, "dns": dns, "source": f"{capability}#{now}",
        "status": job_status("JQ", now), "created": caller.adopt(body, "created", now), "updated": now,
        "started": "", "finished": "", "ttl": 0, "retries": 0, "allowRepeat": False,
        "config": {str(k): str(v) for k, v in config.items()}, "credential_ids": credential_ids,
        "capabilities": [capability],
        "target": {"type": kind, "model": _target_model(target)},
        "origin": {"type": kind, "model": {"key": target["key"]}},
    }
    store.put(job)
    return job


def start_worker(username: str, job_keys: list[str]) -> bool:
    """Fire-and-forget invoke of the worker; a failure leaves the jobs queued (never a 500)."""
    name = os.environ.get("CHARIOT_JOB_WORKER")
    if not name or not job_keys:
        return False
    try:
        aws.lambda_client().invoke(FunctionName=name, InvocationType="Event",
                                   Payload=json.dumps({"username": username, "keys": job_keys}).encode())
        return True
    except Exception as e:  # noqa: BLE001 - the job stays JQ and can be picked up later
        log.warning("could not start job worker %s: %s", name, e)
        return False


def add(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    m = req.model(JobAdd, body)
    bad = caps.unknown(m.capabilities)
    if bad:
        raise bad_request(f"unknown capability: {bad[0]}")
    target = store.get(caller.username, m.key)
    if not target:
        raise not_found(f"target {m.key} not found")
    names = m.capabilities or caps.default_for(keys.kind_of(m.key))
    if not names:
        raise bad_request(f"no capability targets {keys.kind_of(m.key) or 'this key'}; name one in 'capabilities'")
    jobs = [queue(caller, target, n, m.config, m.credential_ids, body) for n in names]
    queued = [j["key"] for j in jobs if job_code(j["status"]) == "JQ"]
    start_worker(caller.username, queued)
    return jobs


def capabilities(req: Request, caller: Caller) -> Any:
    return caps.capability_list(req.param("name") or "", req.param("target") or "", req.param("executor") or "")


# -- schedules (same order of checks, statuses and messages as the capabilities service) ----------


def _schedule(req: Request, caller: Caller) -> dict[str, Any]:
    schedule_id = req.path_params.get("scheduleId", "")
    problem = schedules.id_problem(schedule_id)
    if problem:
        raise bad_request(problem)
    item = store.get(caller.username, schedules.schedule_key(schedule_id))
    if not item:
        raise not_found(schedules.not_found_message(schedule_id))
    return item


def create_schedule(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    m = req.model(schedules.ScheduleCreate, body)
    if not store.get(caller.username, m.target_key):
        raise not_found(f"target {m.target_key} not found")
    now = caller.adopt(body, "createdAt", caller.now)
    item = schedules.build(m, caller.username, str(caller.adopt(body, "scheduleId", str(uuid.uuid4()))), now)
    return store.put(item)


def update_schedule(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    m = req.model(schedules.ScheduleUpdate, body)
    item = _schedule(req, caller)
    return store.put(schedules.apply_update(item, m, caller.stamp(body, "updatedAt")))


def delete_schedule(req: Request, caller: Caller) -> Any:
    item = _schedule(req, caller)
    store.delete(caller.username, item["key"])
    return item


def pause_resume(req: Request, caller: Caller) -> Any:
    problem = schedules.action_problem(req.path_params.get("action", ""))
    if problem:
        raise bad_request(problem)
    body = req.body_dict({})
    item = _schedule(req, caller)
    try:
        changed = schedules.transition(item, req.path_params["action"], caller.stamp(body, "updatedAt"))
    except ValueError as e:
        raise ApiError(409, str(e)) from None
    return store.put(changed)


ROUTES = {("POST", "/job"): add, ("POST", "/job/"): add, ("GET", "/capabilities"): capabilities,
          ("POST", "/capability/schedule"): create_schedule,
          ("PUT", "/capability/schedule/{scheduleId}"): update_schedule,
          ("DELETE", "/capability/schedule/{scheduleId}"): delete_schedule,
          ("PATCH", "/capability/schedule/{scheduleId}/{action}"): pause_resume}


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
