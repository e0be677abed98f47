"""A risk's update (status, comment, title, tags, note removal), as the legacy handler shapes it:
a status change appends ``{from,to,by,updated[,comment]}`` and resets the priority, a comment-only
update ``{by,comment,updated}``, ``remove: i`` clears note ``i``."""

from __future__ import annotations

from typing import Any

from .history import history_entry
from .status import risk_priority


def updated_risk(item: dict[str, Any], principal: str, now: str, *, status: str | None = None,
                 comment: str | None = None, title: str | None = None, tags: list[str] | None = None,
                 remove: int | None = None) -> dict[str, Any]:
    item = dict(item)
    old = item.get("status")
    history = list(item.get("history", []))
    if remove is not None:
        if not 0 <= remove < len(history):
            raise ValueError(f"remove: history index {remove} is out of range (0 to {len(history) - 1})")
        history[remove] = {k: v for k, v in history[remove].items() if k != "comment"}
    if status and status != old:
        item["status"] = status
        item["priority"] = risk_priority(status)
        history.append(history_entry(old or "", status, principal, now, comment))
    elif comment:
        history.append({"by": principal, "comment": comment, "updated": now})
    if title is not None:
        item["title"] = title
    if tags:
        item["tags"] = sorted(set(item.get("tags", [])) | set(tags))
    item["history"] = history
    item["updated"] = item["visited"] = now
    return item
