"""The services' JSON logs: the one schema and redaction of :mod:`chariot_migrate.jsonlog`, on
stdout, with the correlation and trace ids of the kit's request context."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from chariot_migrate.jsonlog import JsonFormatter as CoreJsonFormatter

from .context import correlation_id_var, trace_context_var


def _request_ids() -> dict[str, str | None]:
    tc = trace_context_var.get()
    return {"correlation_id": correlation_id_var.get(), "trace_id": tc.trace_id if tc else None}


class JsonFormatter(CoreJsonFormatter):
    """The one schema (:mod:`chariot_migrate.jsonlog`) with the ids of the kit's request context."""

    def __init__(self, service: str) -> None:
        super().__init__(service, request_ids=_request_ids)


def configure_json_logging(
    service: str, level: str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Route the root logger (and uvicorn's) to one JSON line per event on ``stream`` (stdout)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    handler._chariot_kit = True  # type: ignore[attr-defined]  # lets a second call replace ours only
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_chariot_kit", False):
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    # The kit writes its own access event per request (with route template and ids).
    logging.getLogger("uvicorn.access").disabled = True
    return handler
