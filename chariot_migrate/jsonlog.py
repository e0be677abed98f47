"""The one JSON log schema of every process (proxy, CLI, services): one event per line.

Every line has ``timestamp`` (UTC, ``2026-01-31T12:00:00.123Z``), ``level`` (lower case),
``service``, ``logger``, ``message``, ``correlation_id`` and ``trace_id`` (``null`` when the event
belongs to no request), then the event's own fields, and ``exception`` (the traceback) when
there is one. Values pass the one redaction policy (:mod:`chariot_migrate.redact`) so secrets
never reach a log. The proxy's access log builds the same lines directly (``proxy/accesslog.py``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from .redact import redact_text, redact_value

SCHEMA_FIELDS = ("timestamp", "level", "service", "logger", "message", "correlation_id", "trace_id")
# LogRecord attributes that are not an event's own fields (``extra=``); uvicorn adds a
# terminal-coloured copy of its message.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName", "fields", "color_message"}

# The ids of the request an event belongs to, read when the line is written.
RequestIds = Callable[[], Mapping[str, str | None]]


def timestamp(created: float) -> str:
    """``2026-01-31T12:00:00.123Z`` (UTC, milliseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """The schema above. An event's own fields come from ``extra={...}`` or, in the core's style,
    ``extra={"fields": {...}}``; ``request_ids`` supplies the ids of the current request."""

    def __init__(self, service: str = "chariot-migrate", request_ids: RequestIds | None = None) -> None:
        super().__init__()
        self.service = service
        self.request_ids = request_ids

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "timestamp": timestamp(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
            "correlation_id": None,
            "trace_id": None,
        }
        if self.request_ids is not None:
            event.update(self.request_ids())
        own = {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}
        own.update(getattr(record, "fields", None) or {})
        for k, v in own.items():
            event[k] = redact_value(v, k)
        if record.exc_info:
            event["exception"] = redact_text("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(event, default=str, separators=(",", ":"))


def configure_json_logging(service: str = "chariot-migrate", level: str | None = None) -> None:
    """The core's processes (proxy, CLI): JSON lines on stderr, once."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("CHARIOT_MIGRATE_LOG_LEVEL", "INFO"))
    for noisy in ("uvicorn.access", "werkzeug", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
