"""The access log's per-request line is exactly what the generic JSON writer makes of it."""

import json
import os

import pytest

from chariot_migrate.proxy.accesslog import AccessLog


@pytest.mark.parametrize("route, service, method, trace", [
    ("/bench/{id}", "svc", "GET", "0af7651916cd43dd8448eb211c80319c"),
    ('/we"ird/\\{x}', None, "PATCH", 'ab"c\\d' + "e" * 26),
    ("/ünicode", "risk-assessment", "M\u00e9", "0" * 32),
])
def test_the_fast_line_equals_the_generic_one(route, service, method, trace):
    r, w = os.pipe()
    log = AccessLog(fd=w)
    fields = {"correlation_id": "cid-1", "trace_id": trace, "method": method, "route": route,
              "upstream_service": service, "side": "new", "decision": "draining", "status": 201,
              "duration_ms": 1.25}
    log.write(fields)
    log.request("cid-1", trace, method, json.dumps(route), json.dumps(service), "new", "draining", 201, 1.25)
    log.flush()
    os.close(w)
    generic, fast = os.read(r, 65536).decode().splitlines()
    os.close(r)
    assert json.loads(generic)["timestamp"][:19] == json.loads(fast)["timestamp"][:19]
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k != "timestamp"}  # noqa: E731
    assert strip(fast) == strip(generic) == {**fields, "level": "info", "service": "chariot-migrate",
                                             "logger": "chariot_migrate.access", "message": "request"}
    assert fast.split('"level"')[1] == generic.split('"level"')[1]  # byte for byte after the stamp
