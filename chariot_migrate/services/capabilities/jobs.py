"""Job rules (pure): the job item ``POST /job`` queues, and its status transitions.

Byte-compatible with legacy/job.py: same key, fields, status format and dedupe of active jobs.
"""

from __future__ import annotations

from typing import Any

from chariot_migrate.model import keys
from chariot_migrate.model.status import job_code, job_status

ACTIVE = frozenset({"JQ", "JR", "JQA", "JRA"})


def target_model(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in ("key", "dns", "name", "value", "source") if k in item}


def is_active(job: dict[str, Any] | None) -> bool:
    return job is not None and bool(job) and job_code(job.get("status", "")) in ACTIVE and not job.get("allowRepeat")


def new_job(account: str, target: dict[str, Any], capability: str, config: dict[str, Any],
            credential_ids: list[str], now: str, created: str | None = None) -> dict[str, Any]:
    dns, identifier = keys.dns_and_name(target["key"])
    kind = keys.kind_of(target["key"])
    return {
        "username": account, "key": keys.job_key(dns, identifier, capability), "dns": dns,
        "source": f"{capability}#{now}", "status": job_status("JQ", now), "created": created or now,
        "updated": now, "started": "", "finished": "", "ttl": 0, "retries": 0, "allowRepeat": False,
        "config": {str(k): str(v) for k, v in config.items()}, "credential_ids": credential_ids,
        "capabilities": [capability],
        "target": {"type": kind, "model": target_model(target)},
        "origin": {"type": kind, "model": {"key": target["key"]}},
    }


def job_key_for(target_key: str, capability: str) -> str:
    dns, identifier = keys.dns_and_name(target_key)
    return keys.job_key(dns, identifier, capability)


def mark(job: dict[str, Any], code: str, now: str, **fields: Any) -> dict[str, Any]:
    return dict(job) | {"status": job_status(code, now), "updated": now} | fields


def capability_of(job: dict[str, Any]) -> str:
    return (job.get("capabilities") or [str(job.get("source", "")).split("#")[0]])[0]
