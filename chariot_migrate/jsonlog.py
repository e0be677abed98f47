"""JSON logs, one event per line, with a redaction pass so secrets never reach a log."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time

_SECRET_KEY = re.compile(r"secret|token|password|authorization|api[-_]?key|cookie|credential", re.I)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")


def redact_value(key: str, value: object) -> object:
    if _SECRET_KEY.search(key):
        return "[REDACTED]"
    if isinstance(value, str):
        return _JWT.sub("[REDACTED-JWT]", value)
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "chariot-migrate") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": _JWT.sub("[REDACTED-JWT]", record.getMessage()),
        }
        for k, v in (getattr(record, "fields", None) or {}).items():
            doc[k] = redact_value(k, v)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(doc, default=str)


def configure_json_logging(service: str = "chariot-migrate", level: str | None = None) -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("CHARIOT_MIGRATE_LOG_LEVEL", "INFO"))
    for noisy in ("uvicorn.access", "werkzeug", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
