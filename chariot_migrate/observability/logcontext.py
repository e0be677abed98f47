"""The current request's trace id for log lines of code that has no request context object.

The proxy's JSON formatter (``chariot_migrate.jsonlog``) writes ``record.fields``; the filter
below adds ``trace_id`` there from a contextvar the proxy's tracing add-on sets per request
(each request runs in its own asyncio task, so the value never leaks into another request).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

trace_id_var: ContextVar[str | None] = ContextVar("chariot_trace_id", default=None)


class TraceIdFilter(logging.Filter):
    """Adds ``trace_id`` to a record's JSON fields while a request is being handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        tid = trace_id_var.get()
        if tid is not None:
            fields = getattr(record, "fields", None)
            if isinstance(fields, dict):
                fields.setdefault("trace_id", tid)
            elif fields is None:
                record.fields = {"trace_id": tid}
        return True


def install(logger_names: tuple[str, ...]) -> TraceIdFilter:
    f = TraceIdFilter()
    for name in logger_names:
        logging.getLogger(name).addFilter(f)
    return f


def uninstall(f: TraceIdFilter, logger_names: tuple[str, ...]) -> None:
    for name in logger_names:
        logging.getLogger(name).removeFilter(f)
