"""API Gateway REST proxy events (payload 1.0) in, Lambda proxy responses out.

``api`` wraps every HTTP handler so that bad input is a 400 with a reason and nothing ever
escapes as an unhandled exception (which API Gateway would turn into a 502).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError
from pydantic import BaseModel

from chariot_migrate import bounded_json
from chariot_migrate.model.errors import (  # legacy modules import them from here
    ApiError,
    bad_request,
    error_of,
    not_found,
)
from chariot_migrate.model.plain import plain  # legacy modules import it from here too
from chariot_migrate.model.requests import parse_model

log = logging.getLogger("chariot.legacy")
M = TypeVar("M", bound=BaseModel)


@dataclass(slots=True)
class Request:
    method: str
    path: str
    resource: str
    headers: dict[str, str]  # lower-case names
    query: dict[str, list[str]]
    path_params: dict[str, str]
    raw_body: bytes
    event: dict[str, Any] = field(repr=False, default_factory=dict)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() == "true"

    def json(self, default: Any = None) -> Any:
        if not self.raw_body.strip():
            if default is not None:
                return default
            raise bad_request("request body must be a JSON object")
        try:
            return bounded_json.loads(self.raw_body)
        except (ValueError, UnicodeDecodeError) as e:
            raise bad_request(f"request body is not valid JSON: {e}") from None

    def body_dict(self, default: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self.json(default)
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        return body

    def model(self, cls: type[M], body: Any = None) -> M:
        return parse_model(cls, self.body_dict() if body is None else body)


def parse_event(event: dict[str, Any]) -> Request:
    if not isinstance(event, dict) or "httpMethod" not in event:
        raise bad_request("not an API Gateway REST proxy event")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    for k, vs in (event.get("multiValueHeaders") or {}).items():
        if vs and str(k).lower() not in headers:
            headers[str(k).lower()] = str(vs[-1])
    query: dict[str, list[str]] = {}
    mv = event.get("multiValueQueryStringParameters")
    if mv:
        query = {k: [str(x) for x in v] for k, v in mv.items()}
    for k, v in (event.get("queryStringParameters") or {}).items():
        query.setdefault(k, [str(v)])
    body = event.get("body")
    if body is None:
        raw = b""
    elif event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body)
        except ValueError:
            raise bad_request("body is not valid base64") from None
    else:
        raw = body.encode() if isinstance(body, str) else bytes(body)
    return Request(
        method=str(event["httpMethod"]).upper(),
        path=event.get("path") or "/",
        resource=event.get("resource") or event.get("path") or "/",
        headers=headers,
        query=query,
        path_params={k: str(v) for k, v in (event.get("pathParameters") or {}).items()},
        raw_body=raw,
        event=event,
    )


def respond(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(plain(body), separators=(",", ":")),
        "isBase64Encoded": False,
    }


def error(status: int, message: str) -> dict[str, Any]:
    return respond(status, {"message": message})


Route = Callable[..., Any]


def api(fn: Callable[..., Any]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Turn ``fn(request, ...) -> body | (status, body) | response dict`` into a Lambda handler."""

    @functools.wraps(fn)
    def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        try:
            req = parse_event(event)
            out = fn(req)
            if isinstance(out, dict) and "statusCode" in out:
                return out
            if isinstance(out, tuple):
                return respond(out[0], out[1])
            return respond(200, out)
        except (ApiError, ValueError) as e:  # ValueError covers pydantic's ValidationError
            known = error_of(e) or ApiError(400, str(e))
            return error(known.status, known.message)
        except (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError) as e:
            # The AWS endpoint (DynamoDB/S3/Secrets Manager) is down: say so, retryable.
            log.error("AWS endpoint unreachable in %s: %s", fn.__qualname__, e)
            return error(503, "the data store is unreachable right now; retry shortly")
        except Exception:  # noqa: BLE001 - never let a request become a 502
            log.exception("unhandled error in %s", fn.__qualname__)
            return error(500, "internal error")

    return handler


def dispatch(req: Request, table: dict[tuple[str, str], Callable[..., Any]], *args: Any) -> Any:
    """Pick the function for (method, resource template), else 405/404."""
    fn = table.get((req.method, req.resource)) or table.get((req.method, req.path))
    if fn is None:
        if any(r in (req.resource, req.path) for _, r in table):
            raise ApiError(405, f"method {req.method} is not allowed on {req.path}")
        raise not_found(f"no route for {req.method} {req.path}")
    return fn(req, *args)
