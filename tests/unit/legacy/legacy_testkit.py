"""Test helpers for the legacy handlers: v1 events, an in-process moto stack, tokens."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import moto  # noqa: E402  (imported before any boto3 client exists, so clients are mocked)

from chariot_migrate.legacy import aws, resources, signing  # noqa: E402
from chariot_migrate.model import tokens  # noqa: E402


def v1_event(method: str, path: str, *, body: Any = None, query: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None, resource: str | None = None,
             path_params: dict[str, str] | None = None, b64: bool = False) -> dict[str, Any]:
    raw = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    if isinstance(raw, bytes):
        raw, b64 = base64.b64encode(raw).decode(), True
    elif b64 and raw is not None:
        raw = base64.b64encode(raw.encode()).decode()
    mv = {k: (v if isinstance(v, list) else [str(v)]) for k, v in (query or {}).items()} or None
    return {
        "resource": resource or path, "path": path, "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in mv.items()} if mv else None,
        "multiValueQueryStringParameters": mv, "pathParameters": path_params, "stageVariables": None,
        "requestContext": {"resourcePath": resource or path, "httpMethod": method, "stage": "chariot",
                           "path": "/chariot" + path + ("?" + urlencode(query or {}) if query else ""),
                           "requestId": "test", "identity": {"sourceIp": "127.0.0.1"}},
        "body": raw, "isBase64Encoded": b64,
    }


@dataclass
class Stack:
    user: str = "customer@example.com"

    def other(self, name: str) -> str:
        """A fresh email for another person in this test (data is partitioned per user)."""
        return f"{name}-{uuid.uuid4().hex[:8]}@example.com"

    def token(self, principal: str | None = None, **kw: Any) -> str:
        return tokens.issue(principal or self.user, signing.load(), **kw)

    def call(self, handler: Any, method: str, path: str, body: Any = None, *, token: str | None = "",
             principal: str | None = None, account: str | None = None, query: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None, resource: str | None = None,
             path_params: dict[str, str] | None = None) -> tuple[int, Any]:
        h = dict(headers or {})
        if token == "":
            token = self.token(principal)
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if account:
            h["account"] = account
        resp = handler(v1_event(method, path, body=body, query=query, headers=h, resource=resource,
                                path_params=path_params), None)
        assert set(resp) >= {"statusCode", "headers", "body"}
        text = resp["body"]
        if resp.get("isBase64Encoded"):
            return resp["statusCode"], base64.b64decode(text)
        return resp["statusCode"], json.loads(text) if text else None


REAL_GENERATE = tokens.generate_signing_key
_KEY: list[tokens.SigningKey] = []  # one RSA key per test session: generating one costs ~0.2 s
_ENV = {"CHARIOT_TABLE": "chariot-test", "CHARIOT_BUCKET": "chariot-test-files",
        "CHARIOT_SIGNING_SECRET_ID": "chariot/test-signing"}


@pytest.fixture(scope="module")
def _moto_stack() -> Iterator[None]:
    """One in-process moto per test module (starting one costs ~0.7 s); tests use fresh users."""
    mp = pytest.MonkeyPatch()
    for k, v in _ENV.items():
        mp.setenv(k, v)
    mp.delenv("AWS_ENDPOINT_URL", raising=False)
    mp.delenv("CHARIOT_JOB_WORKER", raising=False)
    key = _KEY or _KEY.append(REAL_GENERATE()) or _KEY
    mp.setattr(tokens, "generate_signing_key", lambda: key[0])
    try:
        with moto.mock_aws():
            aws.reset()
            resources.provision(None, "us-east-1")
            yield
    finally:
        aws.reset()
        mp.undo()


@pytest.fixture
def stack(_moto_stack: None) -> Stack:
    return Stack(user=f"u{uuid.uuid4().hex[:10]}@example.com")
