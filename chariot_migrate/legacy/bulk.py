"""``POST /bulk/{entity}``: upsert many items; per-item results go to a file named by the job.

The real API runs these asynchronously; here they run inline (small batches) and the returned
job is already passed, with ``config.results_s3_key`` naming the results file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from chariot_migrate.model.status import job_status

from . import blobs, store
from .auth import Caller
from .http import ApiError, Request


def run(req: Request, caller: Caller, entity: str, one: Callable[[Caller, dict[str, Any]], dict[str, Any]]) -> Any:
    from chariot_migrate.model.requests import BulkBody

    body = req.body_dict()
    m = req.model(BulkBody, body)
    results = []
    failed = 0
    for i, item in enumerate(m.items):
        try:
            if not isinstance(item, dict):
                raise ValueError("item must be a JSON object")
            out = one(caller, item)
            results.append({"index": i, "status": "ok", "key": out.get("key")})
        except (ApiError, ValueError) as e:
            failed += 1
            results.append({"index": i, "status": "error", "message": getattr(e, "message", str(e))})
    job_id = caller.adopt(body, "id", str(uuid.uuid4()))
    now = caller.now
    results_key = f"bulk/{entity}/{job_id}.json"
    blobs.write(caller.username, results_key, json.dumps(results).encode(), now, "application/json")
    code = "JP" if not failed or failed < len(m.items) else "JF"
    job = {"username": caller.username, "key": f"#job#bulk#{job_id}#{entity}", "dns": "bulk",
           "source": f"bulk-{entity}#{now}", "status": job_status(code, now), "created": now, "updated": now,
           "started": now, "finished": now, "config": {"results_s3_key": results_key, "action": m.action,
                                                        "items": str(len(m.items)), "failed": str(failed)}}
    store.put(job)
    return job
