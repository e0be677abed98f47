"""``POST /bulk/{entity}``: upsert each item inline; the per-item results go to a file the job
record names. The real API runs these asynchronously; legacy and the services run them inline
and return the job already passed (``JP``), or failed (``JF``) when every item failed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .status import job_status


def run_items(items: Sequence[Any], one: Callable[[dict[str, Any]], dict[str, Any]],
              errors: tuple[type[BaseException], ...]) -> tuple[list[dict[str, Any]], int]:
    """Each item through ``one``; ``errors`` are per-item failures (recorded, not raised)."""
    results = []
    failed = 0
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValueError("item must be a JSON object")
            out = one(item)
            results.append({"index": i, "status": "ok", "key": out.get("key")})
        except errors as e:
            failed += 1
            results.append({"index": i, "status": "error", "message": getattr(e, "message", str(e))})
    return results, failed


def results_key(entity: str, job_id: str) -> str:
    return f"bulk/{entity}/{job_id}.json"


def bulk_job(username: str, entity: str, job_id: str, now: str, *, action: str, items: int,
             failed: int) -> dict[str, Any]:
    code = "JP" if not failed or failed < items else "JF"
    return {"username": username, "key": f"#job#bulk#{job_id}#{entity}", "dns": "bulk",
            "source": f"bulk-{entity}#{now}", "status": job_status(code, now), "created": now, "updated": now,
            "started": now, "finished": now, "config": {"results_s3_key": results_key(entity, job_id),
                                                         "action": action, "items": str(items),
                                                         "failed": str(failed)}}
