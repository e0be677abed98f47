"""Test helpers for the capabilities / integration-hub / notification / reporting services.

One in-process moto per module (reusing the legacy testkit: table, bucket, signing secret), the
service app under ``fastapi.testclient`` (its lifespan runs), and a parity helper that sends
the same request to a legacy handler and to the service.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import legacy_testkit
from fastapi.testclient import TestClient
from legacy_testkit import Stack

stack, _moto_stack = legacy_testkit.stack, legacy_testkit._moto_stack  # fixtures, re-exported

TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalize(value: Any) -> Any:
    """Generated timestamps and uuids replaced by placeholders (the parity comparison ignores them)."""
    if isinstance(value, str):
        return UUID.sub("<uuid>", TS.sub("<ts>", value))
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items() if k != "ttl"}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


@contextmanager
def service(create_app: Callable[..., Any], **kwargs: Any) -> Iterator[TestClient]:
    app = create_app(**kwargs)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def call_service(client: TestClient, s: Stack, method: str, path: str, body: Any = None, *,
                 principal: str | None = None, account: str | None = None, query: dict[str, Any] | None = None,
                 token: str | None = "", headers: dict[str, str] | None = None,
                 raw: bytes | None = None) -> tuple[int, Any]:
    h = dict(headers or {})
    if token == "":
        token = s.token(principal)
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if account:
        h["account"] = account
    if raw is not None:
        resp = client.request(method, path, content=raw, params=query, headers=h)
    elif body is None:
        resp = client.request(method, path, params=query, headers=h)
    else:
        resp = client.request(method, path, json=body, params=query, headers=h)
    ctype = resp.headers.get("content-type", "")
    if "json" in ctype:
        return resp.status_code, resp.json()
    return resp.status_code, resp.content


def parity(client: TestClient, s: Stack, handler: Any, method: str, path: str, body: Any = None, *,
           resource: str | None = None, path_params: dict[str, str] | None = None, **kw: Any
           ) -> tuple[tuple[int, Any], tuple[int, Any]]:
    """(legacy status, body), (service status, body) for the same request."""
    legacy = s.call(handler, method, path, body, resource=resource, path_params=path_params, **kw)
    if isinstance(body, str | bytes):  # a raw (possibly invalid) body, sent as is to both sides
        raw = body.encode() if isinstance(body, str) else body
        new = call_service(client, s, method, path, raw=raw, **kw)
    else:
        new = call_service(client, s, method, path, body, **kw)
    return legacy, new


def assert_same(pair: tuple[tuple[int, Any], tuple[int, Any]]) -> Any:
    (ls, lb), (ns, nb) = pair
    assert (ls, normalize(lb)) == (ns, normalize(nb)), f"legacy {ls} {lb!r}\nservice {ns} {nb!r}"
    return nb
