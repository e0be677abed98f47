"""JSON logs, one event per line, with a redaction pass so secrets never reach a log."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time

_SECRET_WORDS = r"secret|token|password|authorization|api[-_]?key|cookie|credential|(?<![a-z])pin(?![a-z])"
_SECRET_KEY = re.compile(_SECRET_WORDS, re.I)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+(?!\[REDACTED)[A-Za-z0-9._~+/=\-]+")
# `name=value` in free text: a query string or form body quoted in a message.
_PAIR = re.compile(rf"(?i)(?P<name>[A-Za-z0-9_\-]*(?:{_SECRET_WORDS})[A-Za-z0-9_\-]*)=(?P<value>[^&\s\"',;]+)")


def redact_value(key: str, value: object) -> object:
    if _SECRET_KEY.search(key):
        return "[REDACTED]"
    if isinstance(value, str):
        return _redact_text(value)
    return value


def _redact_text(text: str) -> str:
    """A message may quote a URL or an upstream's answer: JWTs, bearer credentials, `token=…`."""
    text = _BEARER.sub(lambda m: f"{m.group(1)} [REDACTED]", _JWT.sub("[REDACTED-JWT]", text))
    return _PAIR.sub(lambda m: f"{m.group('name')}=[REDACTED]", text)


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
            "msg": _redact_text(record.getMessage()),
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
