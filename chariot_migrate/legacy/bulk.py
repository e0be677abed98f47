"""``POST /bulk/{entity}``: upsert many items; per-item results go to a file named by the job.

The real API runs these asynchronously; here they run inline (small batches) and the returned
job is already passed, with ``config.results_s3_key`` naming the results file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from chariot_migrate.model import bulk

from . import blobs, store
from .auth import Caller
from .http import ApiError, Request


def run(req: Request, caller: Caller, entity: str, one: Callable[[Caller, dict[str, Any]], dict[str, Any]]) -> Any:
    from chariot_migrate.model.requests import BulkBody

    body = req.body_dict()
    m = req.model(BulkBody, body)
    results, failed = bulk.run_items(m.items, lambda item: one(caller, item), (ApiError, ValueError))
    job_id = caller.adopt(body, "id", str(uuid.uuid4()))
    now = caller.now
    blobs.write(caller.username, bulk.results_key(entity, job_id), json.dumps(results).encode(), now,
                "application/json")
    job = bulk.bulk_job(caller.username, entity, job_id, now, action=m.action, items=len(m.items), failed=failed)
    store.put(job)
    return job
