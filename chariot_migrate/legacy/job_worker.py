"""The job worker (async, not HTTP): mark JR, run the capability, store its results, mark JP/JF.

Event: ``{"username": str, "keys": [job key, …]}`` (sent by ``POST /job`` with InvocationType=Event).
"""

from __future__ import annotations

import logging
from typing import Any

from chariot_migrate.model import capabilities as caps
from chariot_migrate.model.clock import now_iso
from chariot_migrate.model.status import job_code, job_status

from . import graph, store
from .auth import Caller

log = logging.getLogger("chariot.legacy.worker")


def _mark(job: dict[str, Any], code: str, **fields: Any) -> dict[str, Any]:
    now = now_iso()
    job = dict(job) | {"status": job_status(code, now), "updated": now} | fields
    store.put(job)
    return job


def run_job(username: str, job_key: str) -> dict[str, Any] | None:
    job = store.get(username, job_key)
    if not job or job_code(job.get("status", "")) not in ("JQ", "JQA"):
        return job
    capability = (job.get("capabilities") or [str(job.get("source", "")).split("#")[0]])[0]
    job = _mark(job, "JR", started=now_iso())
    caller = Caller(principal=capability, username=username, role="admin", now=now_iso())
    try:
        target_key = job["target"]["model"]["key"]
        target = store.get(username, target_key)
        if not target:
            raise ValueError(f"target {target_key} no longer exists")
        attrs = store.query_all(username, "#attribute#port#") if capability == "nuclei" else None
        if attrs is not None:
            attrs = [a for a in attrs if a.get("source") == target_key]
        results = caps.run(capability, target, attrs)
        for a in results["assets"]:
            graph.upsert_asset(caller, a["dns"], a["name"], status="A", source="self", origin=capability,
                               capability=capability)
        for at in results["attributes"]:
            graph.upsert_attribute(caller, at["source"], at["name"], at["value"], capability=capability)
        for r in results["risks"]:
            graph.upsert_risk(caller, r["dns"], r["name"], r["status"], source=capability, target=r["target"])
        for p in results["preseeds"]:
            graph.upsert_preseed(caller, p["type"], p["title"], p["value"], capability=capability)
        return _mark(job, "JP", finished=now_iso())
    except Exception as e:  # noqa: BLE001 - a failed job is data (JF), not a crash
        log.warning("job %s failed: %s", job_key, e)
        return _mark(job, "JF", finished=now_iso(), error=str(e)[:500])


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    username = str(event.get("username") or "")
    done = []
    for key in event.get("keys") or []:
        job = run_job(username, str(key))
        if job:
            done.append({"key": job["key"], "status": job["status"]})
    return {"jobs": done}
