"""JSON logs: one event per line, with service, correlation and trace ids; secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

from .context import correlation_id_var, trace_context_var

# Keys whose values are never written, at any depth of an event's extra fields.
_SECRET_WORDS = (r"authorization|cookie|secret|password|passwd|token|api[-_]?key|private[-_]?key|credential|"
                 r"(?<![a-z])pin(?![a-z])")
SECRET_KEY_PATTERN = re.compile(f"({_SECRET_WORDS})", re.I)
REDACTED = "[REDACTED]"
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
# `name=value` in free text: a query string in a library's line ("HTTP Request: GET …?pin=…").
_QUERY_PAIR = re.compile(rf"(?i)(?P<name>[A-Za-z0-9_\-]*(?:{_SECRET_WORDS})[A-Za-z0-9_\-]*)=(?P<value>[^&\s\"',;]+)")

# LogRecord attributes that are not user "extra" fields.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def redact_text(text: str) -> str:
    text = _JWT.sub(REDACTED, _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text))
    return _QUERY_PAIR.sub(lambda m: f"{m.group('name')}={REDACTED}", text)


def redact(value: Any, key: str | None = None) -> Any:
    """Redact secret-looking keys and bearer tokens/JWTs inside strings (pure)."""
    if key is not None and SECRET_KEY_PATTERN.search(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
            "correlation_id": correlation_id_var.get(),
            "trace_id": (tc.trace_id if (tc := trace_context_var.get()) else None),
        }
        for k, v in record.__dict__.items():
            if k not in _RESERVED and not k.startswith("_"):
                event[k] = redact(v, k)
        if record.exc_info:
            event["exception"] = redact_text("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(event, default=str, separators=(",", ":"))


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
