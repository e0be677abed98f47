"""HTTP request <-> API Gateway Lambda proxy events, and handler results -> HTTP responses.

Pure functions over plain data (no I/O). Formats follow what API Gateway sends and accepts:
REST API proxy integration (payload 1.0) and HTTP API (payload 2.0); see
``reference/lambda-and-moto.md`` §3.

``HttpRequest.headers`` carry lower-case names (HTTP header names are case-insensitive), so
the v1 ``headers``/``multiValueHeaders`` keys are lower-case too: API Gateway keeps the case
the client sent, and handlers must not depend on it anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode

from chariot_migrate.transport import Headers, HttpRequest, HttpResponse

EventFormat = Literal["v1", "v2"]

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_API_ID = "localapi01"
DEFAULT_REGION = "us-east-1"
GREEDY_RESOURCE = "/{proxy+}"

INTERNAL_SERVER_ERROR = b'{"message": "Internal server error"}'
ENDPOINT_TIMED_OUT = b'{"message": "Endpoint request timed out"}'

_TEXT_TYPES = ("application/json", "application/javascript", "application/x-www-form-urlencoded")
# Keys API Gateway (REST) accepts in a proxy response; anything else is a malformed response.
_V1_RESPONSE_KEYS = frozenset(
    {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded", "base64Encoded", "cookies"}
)


# --------------------------------------------------------------------------------------------
# request -> event


def is_text_content_type(content_type: str | None) -> bool:
    """Whether API Gateway would pass a body of this type as text rather than base64."""
    if not content_type:
        return True  # no declared type: text if it decodes, see encode_body
    ct = content_type.split(";", 1)[0].strip().lower()
    return (
        ct.startswith("text/")
        or ct in _TEXT_TYPES
        or ct.endswith("+json")
        or ct.endswith("/xml")
        or ct.endswith("+xml")
    )


def encode_body(body: bytes, content_type: str | None) -> tuple[str | None, bool]:
    """(body, isBase64Encoded) as an event carries it: text for textual UTF-8, else base64."""
    if not body:
        return None, False
    if is_text_content_type(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _request_times(now: float | None) -> tuple[str, int]:
    now = time.time() if now is None else now
    dt = datetime.fromtimestamp(now, UTC)
    return dt.strftime("%d/%b/%Y:%H:%M:%S +0000"), int(now * 1000)


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True) if query else []


def _resource_for(req: HttpRequest, resource: str | None) -> str:
    return resource or req.route_template or GREEDY_RESOURCE


def _path_params(req: HttpRequest, resource: str) -> dict[str, str] | None:
    if req.path_params:
        return dict(req.path_params)
    if resource == GREEDY_RESOURCE:
        return {"proxy": req.path.lstrip("/")}
    return None


def _principal_authorizer_v1(req: HttpRequest, authorizer: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not req.principal and not authorizer:
        return None
    out: dict[str, Any] = {}
    if req.principal:
        out["principalId"] = req.principal
        out["claims"] = {"sub": req.principal}
    for k, v in (authorizer or {}).items():
        if k == "claims" and isinstance(v, Mapping):
            out["claims"] = {**out.get("claims", {}), **v}
        else:
            out[k] = v
    return out


def build_v1_event(
    req: HttpRequest,
    *,
    stage: str | None = None,
    resource: str | None = None,
    authorizer: Mapping[str, Any] | None = None,
    api_id: str = DEFAULT_API_ID,
    account_id: str = DEFAULT_ACCOUNT_ID,
    region: str = DEFAULT_REGION,
    now: float | None = None,
) -> dict[str, Any]:
    """REST API Lambda proxy event (payload 1.0) for one request.

    As API Gateway builds it: ``path`` and ``pathParameters`` are decoded (``/hook/p/pin%23zz``
    arrives as path ``/hook/p/pin#zz``, pin ``pin#zz``), the query string parameters too.

    ``resource`` defaults to ``req.route_template`` and then to ``/{proxy+}``. An authorizer
    context is present when ``req.principal`` is set (``principalId`` + ``claims.sub``) or
    ``authorizer`` is given (merged over it).
    """
    stage = req.stage if stage is None else stage
    resource = _resource_for(req, resource)
    method = req.method.upper()

    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for k, v in req.headers:
        headers[k] = v
        multi_headers.setdefault(k, []).append(v)

    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for k, v in _query_pairs(req.query):
        query[k] = v
        multi_query.setdefault(k, []).append(v)

    body, is_b64 = encode_body(req.body, req.header("content-type"))
    request_time, epoch_ms = _request_times(now)
    request_id = req.request_id or str(uuid.uuid4())
    domain = headers.get("host") or f"{api_id}.execute-api.{region}.amazonaws.com"

    context: dict[str, Any] = {
        "accountId": account_id,
        "apiId": api_id,
        "resourceId": hashlib.sha1(resource.encode()).hexdigest()[:6],
        "resourcePath": resource,
        "httpMethod": method,
        "extendedRequestId": base64.b32encode(uuid.uuid4().bytes)[:16].decode().rstrip("="),
        "requestTime": request_time,
        "requestTimeEpoch": epoch_ms,
        "path": f"/{stage}{req.path}" if stage else req.path,
        "stage": stage or "$default",
        "protocol": "HTTP/1.1",
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "requestId": request_id,
        "identity": {
            "cognitoIdentityPoolId": None,
            "accountId": None,
            "cognitoIdentityId": None,
            "caller": None,
            "apiKey": None,
            "apiKeyId": None,
            "accessKey": None,
            "sourceIp": req.client_ip,
            "principalOrgId": None,
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
            "userArn": None,
            "userAgent": headers.get("user-agent"),
            "user": None,
        },
    }
    auth = _principal_authorizer_v1(req, authorizer)
    if auth is not None:
        context["authorizer"] = auth

    return {
        "resource": resource,
        "path": req.path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": _path_params(req, resource),
        "stageVariables": None,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": is_b64,
    }


def build_v2_event(
    req: HttpRequest,
    *,
    stage: str | None = None,
    route_key: str | None = None,
    authorizer: Mapping[str, Any] | None = None,
    api_id: str = DEFAULT_API_ID,
    account_id: str = DEFAULT_ACCOUNT_ID,
    region: str = DEFAULT_REGION,
    now: float | None = None,
) -> dict[str, Any]:
    """HTTP API Lambda event (payload 2.0).

    Header names lower-case, repeated headers and query keys comma-joined, the ``cookie``
    header moved into ``cookies``. ``rawPath`` is the path without the stage (HTTP APIs with a
    named stage would prefix it; handlers should not depend on that).
    """
    stage = req.stage if stage is None else stage
    method = req.method.upper()
    if route_key is None:
        route_key = f"{method} {req.route_template}" if req.route_template else "$default"

    headers: dict[str, str] = {}
    cookies: list[str] = []
    for k, v in req.headers:
        k = k.lower()
        if k == "cookie":
            cookies.extend(c.strip() for c in v.split(";") if c.strip())
            continue
        headers[k] = f"{headers[k]},{v}" if k in headers else v

    query: dict[str, str] = {}
    for k, v in _query_pairs(req.query):
        query[k] = f"{query[k]},{v}" if k in query else v

    body, is_b64 = encode_body(req.body, req.header("content-type"))
    request_time, epoch_ms = _request_times(now)
    request_id = req.request_id or str(uuid.uuid4())
    domain = headers.get("host") or f"{api_id}.execute-api.{region}.amazonaws.com"

    context: dict[str, Any] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": method,
            "path": req.path,
            "protocol": "HTTP/1.1",
            "sourceIp": req.client_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": stage or "$default",
        "time": request_time,
        "timeEpoch": epoch_ms,
    }
    if req.principal or authorizer:
        claims = {"sub": req.principal} if req.principal else {}
        auth: dict[str, Any] = {"jwt": {"claims": claims, "scopes": None}}
        for k, v in (authorizer or {}).items():
            if k == "claims" and isinstance(v, Mapping):
                auth["jwt"]["claims"] = {**claims, **v}
            else:
                auth[k] = v
        context["authorizer"] = auth

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": req.target_path,  # as the client encoded it; requestContext.http.path is decoded
        "rawQueryString": req.query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": is_b64,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if req.path_params:
        event["pathParameters"] = dict(req.path_params)
    if body is not None:
        event["body"] = body
    return event


def build_event(req: HttpRequest, fmt: EventFormat, **kwargs: Any) -> dict[str, Any]:
    if fmt == "v1":
        return build_v1_event(req, **kwargs)
    if fmt == "v2":
        return build_v2_event(req, **kwargs)
    raise ValueError(f"unknown event format {fmt!r}: use 'v1' or 'v2'")


def request_from_event(event: Mapping[str, Any]) -> HttpRequest:
    """Decode an API Gateway event (v1 or v2) back into an ``HttpRequest``.

    The inverse of the builders as far as the formats allow: v1 groups repeated query keys
    and headers by name; v2 comma-joins them (so they come back as one joined value).
    """
    body_s = event.get("body")
    body = b""
    if body_s is not None:
        body = base64.b64decode(body_s) if event.get("isBase64Encoded") else body_s.encode("utf-8")
    ctx = event.get("requestContext") or {}
    if event.get("version") == "2.0":
        headers: Headers = [(k, v) for k, v in (event.get("headers") or {}).items()]
        if event.get("cookies"):
            headers.append(("cookie", "; ".join(event["cookies"])))
        http = ctx.get("http", {})
        route_key = event.get("routeKey", "$default")
        template = route_key.split(" ", 1)[1] if " " in route_key else None
        principal = ((ctx.get("authorizer") or {}).get("jwt") or {}).get("claims", {}).get("sub")
        return HttpRequest(
            method=http.get("method", "GET"),
            path=unquote(event.get("rawPath", "/")),
            raw_path=event.get("rawPath", "/"),
            query=event.get("rawQueryString", ""),
            headers=headers,
            body=body,
            route_template=template,
            path_params=dict(event.get("pathParameters") or {}),
            principal=principal,
            stage=ctx.get("stage", ""),
            client_ip=http.get("sourceIp", ""),
            request_id=ctx.get("requestId", ""),
        )
    multi_h = event.get("multiValueHeaders") or {k: [v] for k, v in (event.get("headers") or {}).items()}
    headers = [(k.lower(), v) for k, vs in multi_h.items() for v in vs]
    multi_q = event.get("multiValueQueryStringParameters") or {
        k: [v] for k, v in (event.get("queryStringParameters") or {}).items()
    }
    query = urlencode([(k, v) for k, vs in multi_q.items() for v in vs])
    resource = event.get("resource")
    return HttpRequest(
        method=event.get("httpMethod", "GET"),
        path=event.get("path", "/"),
        query=query,
        headers=headers,
        body=body,
        route_template=resource if resource and resource != GREEDY_RESOURCE else None,
        path_params=dict(event.get("pathParameters") or {}) if resource != GREEDY_RESOURCE else {},
        principal=(ctx.get("authorizer") or {}).get("principalId"),
        stage=ctx.get("stage", ""),
        client_ip=(ctx.get("identity") or {}).get("sourceIp", ""),
        request_id=ctx.get("requestId", ""),
    )


# --------------------------------------------------------------------------------------------
# result -> response


class MalformedResponse(ValueError):
    """The handler's result is not a valid proxy response (API Gateway answers 502)."""


def internal_server_error() -> HttpResponse:
    return HttpResponse(502, [("content-type", "application/json")], INTERNAL_SERVER_ERROR)


def endpoint_timed_out() -> HttpResponse:
    return HttpResponse(504, [("content-type", "application/json")], ENDPOINT_TIMED_OUT)


def _status(value: Any) -> int:
    if isinstance(value, bool):
        raise MalformedResponse("statusCode must be an integer")
    if isinstance(value, int):
        status = value
    elif isinstance(value, str) and value.strip().isdigit():
        status = int(value)
    else:
        raise MalformedResponse(f"statusCode {value!r} is not an integer")
    if not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode {status} is out of range")
    return status


def _header_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise MalformedResponse(f"header value {value!r} is not a string")


def _body(result: Mapping[str, Any]) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise MalformedResponse("body must be a string")
    if result.get("isBase64Encoded") or result.get("base64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as e:
            raise MalformedResponse(f"body is not valid base64: {e}") from e
    return body.encode("utf-8")


def _mapping(result: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = result.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedResponse(f"{key} must be an object")
    return value


def _parse_v1(result: Any) -> HttpResponse:
    if not isinstance(result, Mapping):
        raise MalformedResponse("the result is not a JSON object")
    unknown = set(result) - _V1_RESPONSE_KEYS
    if unknown:
        raise MalformedResponse(f"unexpected keys {sorted(unknown)}")
    if "statusCode" not in result:
        raise MalformedResponse("statusCode is missing")
    status = _status(result["statusCode"])
    if "isBase64Encoded" in result and not isinstance(result["isBase64Encoded"], bool | None):
        raise MalformedResponse("isBase64Encoded must be a boolean")
    headers: Headers = []
    seen: set[tuple[str, str]] = set()

    def add(name: str, value: Any) -> None:
        pair = (str(name).lower(), _header_value(value))
        if pair not in seen:  # headers and multiValueHeaders are merged; equal pairs kept once
            seen.add(pair)
            headers.append(pair)

    for name, values in _mapping(result, "multiValueHeaders").items():
        if not isinstance(values, list):
            raise MalformedResponse(f"multiValueHeaders[{name!r}] must be a list")
        for v in values:
            add(name, v)
    for name, value in _mapping(result, "headers").items():
        add(name, value)
    body = _body(result)
    if not any(k == "content-type" for k, _ in headers):
        headers.append(("content-type", "application/json"))
    return HttpResponse(status, headers, body)


def _parse_v2(result: Any) -> HttpResponse:
    if not isinstance(result, Mapping) or "statusCode" not in result:
        # Inferred format: any JSON value without statusCode is a 200 with that value as body.
        text = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("content-type", "application/json")], text.encode("utf-8"))
    status = _status(result["statusCode"])
    if "isBase64Encoded" in result and not isinstance(result["isBase64Encoded"], bool | None):
        raise MalformedResponse("isBase64Encoded must be a boolean")
    headers: Headers = [(str(k).lower(), _header_value(v)) for k, v in _mapping(result, "headers").items()]
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise MalformedResponse("cookies must be a list of strings")
    headers.extend(("set-cookie", c) for c in cookies)
    body = _body(result)
    if not any(k == "content-type" for k, _ in headers):
        headers.append(("content-type", "application/json"))
    return HttpResponse(status, headers, body)


def parse_result(result: Any, fmt: EventFormat) -> HttpResponse:
    """Like ``response_from_result`` but raises ``MalformedResponse`` instead of answering 502."""
    if fmt == "v1":
        return _parse_v1(result)
    if fmt == "v2":
        return _parse_v2(result)
    raise ValueError(f"unknown event format {fmt!r}: use 'v1' or 'v2'")


def response_from_result(result: Any, fmt: EventFormat = "v1") -> HttpResponse:
    """The HTTP response API Gateway makes of a handler's (JSON-decoded) result.

    A malformed result becomes 502 ``{"message": "Internal server error"}``, as API Gateway does.
    """
    try:
        return parse_result(result, fmt)
    except MalformedResponse:
        return internal_server_error()


def response_from_payload(payload: bytes, fmt: EventFormat = "v1") -> HttpResponse:
    """``response_from_result`` for a raw Invoke payload (JSON bytes)."""
    try:
        result = json.loads(payload) if payload else None
    except (ValueError, UnicodeDecodeError):
        return internal_server_error()
    return response_from_result(result, fmt)
