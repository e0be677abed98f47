"""``POST /bulk/{entity}`` of the graph services: upsert each item inline; the per-item results
go to a file the job record names (legacy shapes)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from chariot_migrate.model import bulk
from chariot_migrate.model.errors import ApiError
from chariot_migrate.model.requests import BulkBody

from .contract import WriteContext, validate


def run_bulk(ctx: WriteContext, body: dict[str, Any], entity: str, one: Callable[[dict[str, Any]], dict[str, Any]],
             write_results: Callable[[str, bytes], None], jobs: Any) -> dict[str, Any]:
    """``POST /bulk/{entity}``: upsert each item inline; per-item results go to a file the job names."""
    m = validate(BulkBody, body)
    results, failed = bulk.run_items(m.items, one, (ApiError, ValueError))
    job_id = ctx.adopt(body, "id", str(uuid.uuid4()))
    now = ctx.now
    write_results(bulk.results_key(entity, job_id), json.dumps(results).encode())
    job = bulk.bulk_job(ctx.username, entity, job_id, now, action=m.action, items=len(m.items), failed=failed)
    jobs.put(job)
    return job
