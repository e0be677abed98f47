"""Parity harness for the account/configuration services: the same request sent to the legacy
Lambda handler (as an API Gateway v1 event built by ``lambda_adapters.events.build_v1_event``)
and to the service app (FastAPI TestClient), both over one in-process moto.

Importable from any test: pytest's ``pythonpath`` (pyproject.toml) holds ``tests/unit/services`` and ``tests/unit/legacy``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import legacy_testkit  # noqa: F401  (sets AWS test credentials before boto3/moto load)
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from legacy_testkit import _ENV, Stack

from chariot_migrate.lambda_adapters.events import build_v1_event
from chariot_migrate.services.kit.settings import ChariotSettings
from chariot_migrate.transport import HttpRequest

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
RANDOM_FIELDS = frozenset({"secret", "token"})


def normalize(value: Any) -> Any:
    """Ignore generated values: UUIDs, timestamps, secrets and tokens."""
    if isinstance(value, dict):
        return {k: ("<random>" if k in RANDOM_FIELDS else normalize(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str):
        return _TS.sub("<ts>", _UUID.sub("<uuid>", value))
    return value


def service_settings(service: str, **overrides: Any) -> ChariotSettings:
    return ChariotSettings(
        service_name=service,
        signing_secret_id=_ENV["CHARIOT_SIGNING_SECRET_ID"],
        table_prefix=f"t{uuid.uuid4().hex[:8]}-",
        **overrides,
    )


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def norm(self) -> tuple[int, Any]:
        return self.status, normalize(self.body)


@dataclass
class Pair:
    """Sends requests to the legacy handler and to the service as the same user."""

    stack: Stack
    client: TestClient
    handlers: dict[str, Callable[..., dict[str, Any]]]  # path template → legacy handler

    @property
    def user(self) -> str:
        return self.stack.user

    def _headers(self, token: str | None, principal: str | None, account: str | None,
                 headers: dict[str, str] | None) -> dict[str, str]:
        h = {"content-type": "application/json"}
        if token == "":
            token = self.stack.token(principal)
        if token is not None:
            h["authorization"] = f"Bearer {token}"
        if account:
            h["account"] = account
        h.update({k.lower(): v for k, v in (headers or {}).items()})
        return h

    @staticmethod
    def _raw(body: Any) -> bytes:
        if body is None:
            return b""
        if isinstance(body, bytes):
            return body
        return (body if isinstance(body, str) else json.dumps(body)).encode()

    def legacy(self, method: str, path: str, body: Any = None, *, template: str | None = None,
               query: dict[str, Any] | None = None, token: str | None = "", principal: str | None = None,
               account: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        template = template or path
        params: dict[str, str] = {}
        if "{" in template:
            for t, p in zip(template.strip("/").split("/"), path.strip("/").split("/"), strict=True):
                if t.startswith("{"):
                    params[t[1:-1]] = p
        req = HttpRequest(
            method=method, path=path, query=urlencode(query or {}),
            headers=list(self._headers(token, principal, account, headers).items()),
            body=self._raw(body), route_template=template, path_params=params, stage="chariot",
        )
        resp = self.handlers[template](build_v1_event(req), None)
        text = resp.get("body") or ""
        if resp.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        return Reply(resp["statusCode"], json.loads(text) if text else None,
                     {k.lower(): v for k, v in (resp.get("headers") or {}).items()})

    def service(self, method: str, path: str, body: Any = None, *, template: str | None = None,
                query: dict[str, Any] | None = None, token: str | None = "", principal: str | None = None,
                account: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        resp = self.client.request(method, path, params=query, content=self._raw(body),
                                   headers=self._headers(token, principal, account, headers))
        return Reply(resp.status_code, resp.json() if resp.content else None, dict(resp.headers))

    def both(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[Reply, Reply]:
        return self.legacy(method, path, body, **kw), self.service(method, path, body, **kw)

    def same(self, method: str, path: str, body: Any = None, **kw: Any) -> Reply:
        """Send to both; assert identical status and normalised JSON; return the service reply."""
        old, new = self.both(method, path, body, **kw)
        assert new.norm == old.norm, f"{method} {path}: legacy {old.status} {old.body!r} != new {new.status} {new.body!r}"
        return new


@pytest.fixture(scope="module")
def make_client(_moto_stack: None) -> Iterator[Callable[[FastAPI], TestClient]]:
    """``make_client(app)`` → a started TestClient (lifespan run), closed at module end."""
    clients: list[TestClient] = []

    def make(app: FastAPI) -> TestClient:
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)
