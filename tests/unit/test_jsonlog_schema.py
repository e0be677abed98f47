"""One log schema: a line from the proxy (its formatter and its access log) and one from a service
parse with the same fields, and the one redaction policy hides a secret in both."""

from __future__ import annotations

import io
import json
import logging
import os
import re

from chariot_migrate.jsonlog import SCHEMA_FIELDS
from chariot_migrate.jsonlog import JsonFormatter as ProxyFormatter
from chariot_migrate.proxy.accesslog import AccessLog
from chariot_migrate.services.kit.context import correlation_id_var
from chariot_migrate.services.kit.logs import JsonFormatter as ServiceFormatter

SECRET = "hunter2-very-secret"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _line(formatter: logging.Formatter, name: str, **extra) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling /hook?pin=%s with Bearer %s", SECRET, JWT, extra=extra)
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    return line


def _schema(line: str) -> dict:
    event = json.loads(line)
    assert list(event)[: len(SCHEMA_FIELDS)] == list(SCHEMA_FIELDS), line
    assert TIMESTAMP.match(event["timestamp"]), event["timestamp"]
    return event


def test_proxy_and_service_lines_share_the_schema_and_the_redaction():
    proxy_line = _line(ProxyFormatter("chariot-migrate"), "test.schema.proxy",
                       fields={"upstream": "legacy", "password": SECRET, "headers": {"Authorization": JWT}})
    token = correlation_id_var.set("corr-7")
    try:
        service_line = _line(ServiceFormatter("account"), "test.schema.service",
                             route="/x", password=SECRET, headers={"Authorization": JWT},
                             color_message="\x1b[1mcalling\x1b[0m")  # uvicorn's coloured copy: dropped
    finally:
        correlation_id_var.reset(token)
    proxy, service = _schema(proxy_line), _schema(service_line)
    assert proxy["level"] == service["level"] == "warning"
    assert proxy["correlation_id"] is None and service["correlation_id"] == "corr-7"
    assert proxy["upstream"] == "legacy" and service["route"] == "/x" and "color_message" not in service
    for line in (proxy_line, service_line):
        assert SECRET not in line and "eyJ" not in line
        assert json.loads(line)["password"] == "[REDACTED]"


def test_an_exception_is_one_field_in_both():
    for formatter in (ProxyFormatter("p"), ServiceFormatter("s")):
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), None)
        try:
            raise RuntimeError(f"password={SECRET}")
        except RuntimeError:
            import sys
            record.exc_info = sys.exc_info()
        event = _schema(formatter.format(record))
        assert "RuntimeError" in event["exception"] and SECRET not in event["exception"]


def test_the_proxy_access_log_writes_the_same_schema():
    read, write = os.pipe()
    try:
        log = AccessLog(fd=write, service="chariot-migrate")
        log.write({"correlation_id": "c1", "trace_id": "t" * 32, "route": "/asset", "status": 200})
        log.flush()
        (line,) = os.read(read, 65536).decode().splitlines()
    finally:
        os.close(read)
        os.close(write)
    event = json.loads(line)
    assert set(SCHEMA_FIELDS) <= set(event) and TIMESTAMP.match(event["timestamp"])
    assert event["message"] == "request" and event["correlation_id"] == "c1" and event["status"] == 200
