"""events.py: HTTP request <-> API Gateway events, handler result -> HTTP response."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import defaultdict
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventModel,
    APIGatewayProxyEventV2Model,
)
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mangum import Mangum

from chariot_migrate.lambda_adapters.events import (
    build_v1_event,
    build_v2_event,
    encode_body,
    request_from_event,
    response_from_payload,
    response_from_result,
)
from chariot_migrate.transport import HttpRequest

# ------------------------------------------------------------------------------ strategies

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_seg = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.~", min_size=1, max_size=8)
paths = st.lists(_seg, min_size=0, max_size=4).map(lambda segs: "/" + "/".join(segs))
_qtext = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)
query_pairs = st.lists(st.tuples(st.sampled_from(["a", "b", "key", "x y", "é"]), _qtext), max_size=6)
header_names = st.sampled_from(["x-multi", "accept", "x-custom-id", "user-agent", "x-a"])
header_values = st.text("abcdefghijklmnopqrstuvwxyz0123456789 /=;.-", min_size=1, max_size=12).map(str.strip).filter(
    bool
)
headers_st = st.lists(st.tuples(header_names, header_values), max_size=6)
bodies = st.one_of(
    st.just(("", b"")),
    st.tuples(st.just("application/json"), st.text(max_size=30).map(lambda t: json.dumps(t).encode())),
    st.tuples(st.just("text/plain; charset=utf-8"), st.text(max_size=30).map(str.encode)),
    st.tuples(st.sampled_from(["image/png", "application/octet-stream"]), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("text/plain"), st.binary(min_size=1, max_size=40)),  # maybe not UTF-8
)


@st.composite
def requests_st(draw: st.DrawFn) -> HttpRequest:
    method = draw(st.sampled_from(METHODS))
    path = draw(paths)
    pairs = draw(query_pairs)
    headers = [("host", "api.example.com"), *draw(headers_st)]
    ctype, body = draw(bodies)
    if body:
        headers.append(("content-type", ctype))
    principal = draw(st.one_of(st.none(), st.emails()))
    return HttpRequest(
        method=method,
        path=path,
        query=urlencode(pairs),
        headers=headers,
        body=body,
        principal=principal,
        stage="chariot",
        client_ip="10.1.2.3",
        request_id="req-1",
    )


def grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for k, v in pairs:
        out[k].append(v)
    return dict(out)


# ------------------------------------------------------------------------------ v1


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(requests_st())
def test_v1_event_validates_and_round_trips(req: HttpRequest) -> None:
    event = build_v1_event(req)
    APIGatewayProxyEventModel.model_validate(event)  # powertools: a well-formed REST proxy event
    json.dumps(event)  # serialisable as an Invoke payload

    back = request_from_event(event)
    assert back.method == req.method
    assert back.path == req.path
    assert back.body == req.body
    assert grouped(back.headers) == grouped(req.headers)
    assert grouped(parse_qsl(back.query, keep_blank_values=True)) == grouped(
        parse_qsl(req.query, keep_blank_values=True)
    )
    assert back.principal == req.principal
    assert back.client_ip == req.client_ip

    # single-value views: last value wins
    for k, vs in grouped(req.headers).items():
        assert event["headers"][k] == vs[-1]
    q = grouped(parse_qsl(req.query, keep_blank_values=True))
    assert event["queryStringParameters"] == ({k: v[-1] for k, v in q.items()} or None)
    assert event["multiValueQueryStringParameters"] == (q or None)


def test_v1_event_fields() -> None:
    req = HttpRequest(
        method="PUT",
        path="/account/bob@example.com",
        query="",
        headers=[("host", "abc123.execute-api.us-east-1.amazonaws.com"), ("user-agent", "ua/1")],
        route_template="/account/{member}",
        path_params={"member": "bob@example.com"},
        principal="alice@example.com",
        stage="chariot",
    )
    ev = build_v1_event(req, api_id="abc123", account_id="111122223333", now=1428582896.0)
    assert ev["resource"] == "/account/{member}"
    assert ev["pathParameters"] == {"member": "bob@example.com"}
    assert ev["queryStringParameters"] is None and ev["multiValueQueryStringParameters"] is None
    assert ev["stageVariables"] is None
    assert ev["body"] is None and ev["isBase64Encoded"] is False
    ctx = ev["requestContext"]
    assert ctx["path"] == "/chariot/account/bob@example.com"
    assert ctx["stage"] == "chariot"
    assert ctx["resourcePath"] == "/account/{member}"
    assert ctx["requestTime"] == "09/Apr/2015:12:34:56 +0000"
    assert ctx["requestTimeEpoch"] == 1428582896000
    assert ctx["accountId"] == "111122223333" and ctx["apiId"] == "abc123"
    assert ctx["domainName"] == "abc123.execute-api.us-east-1.amazonaws.com" and ctx["domainPrefix"] == "abc123"
    assert ctx["identity"]["userAgent"] == "ua/1" and ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["identity"]["user"] is None
    assert ctx["authorizer"] == {"principalId": "alice@example.com", "claims": {"sub": "alice@example.com"}}


def test_v1_event_without_headers_or_route() -> None:
    ev = build_v1_event(HttpRequest(method="GET", path="/a/b"), stage="prod")
    assert ev["headers"] is None and ev["multiValueHeaders"] is None
    assert ev["resource"] == "/{proxy+}" and ev["pathParameters"] == {"proxy": "a/b"}
    assert "authorizer" not in ev["requestContext"]


def test_v1_authorizer_extra_context_merges_claims() -> None:
    req = HttpRequest(method="GET", path="/x", headers=[("host", "h")], principal="p1")
    ev = build_v1_event(req, authorizer={"claims": {"email": "p1@x"}, "tenant": "t"})
    assert ev["requestContext"]["authorizer"] == {
        "principalId": "p1",
        "claims": {"sub": "p1", "email": "p1@x"},
        "tenant": "t",
    }


@pytest.mark.parametrize(
    ("ctype", "body", "is_b64"),
    [
        ("application/json", b'{"a": 1}', False),
        ("text/html; charset=utf-8", "héllo".encode(), False),
        ("application/xml", b"<a/>", False),
        ("application/x-www-form-urlencoded", b"a=1&b=2", False),
        ("application/vnd.api+json", b"{}", False),
        ("image/png", b"\x89PNG\r\n", True),
        ("application/octet-stream", b"abc", True),
        ("text/plain", b"\xff\xfe", True),  # declared text, not UTF-8
        (None, b"plain", False),
        (None, b"\x00\xff", True),
    ],
)
def test_body_encoding_by_content_type(ctype: str | None, body: bytes, is_b64: bool) -> None:
    encoded, flag = encode_body(body, ctype)
    assert flag is is_b64
    assert (base64.b64decode(encoded) if flag else encoded.encode()) == body


# ------------------------------------------------------------------------------ v2


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(requests_st(), st.lists(st.sampled_from(["a=1", "b=2", "sid=x y"]), max_size=3))
def test_v2_event_validates_and_round_trips(req: HttpRequest, cookies: list[str]) -> None:
    if cookies:
        req.headers.append(("cookie", "; ".join(cookies)))
    event = build_v2_event(req)
    APIGatewayProxyEventV2Model.model_validate(event)
    json.dumps(event)
    assert event["version"] == "2.0" and event["rawQueryString"] == req.query
    if cookies:
        assert event["cookies"] == cookies
        assert "cookie" not in event["headers"]
    else:
        assert "cookies" not in event

    back = request_from_event(event)
    assert back.method == req.method and back.path == req.path and back.body == req.body
    assert back.query == req.query
    # v2 comma-joins repeated headers and query values
    joined = {k: ",".join(vs) for k, vs in grouped(req.headers).items()}
    assert dict(back.headers) == joined
    q = grouped(parse_qsl(req.query, keep_blank_values=True))
    assert event.get("queryStringParameters", {}) == {k: ",".join(v) for k, v in q.items()}
    assert back.principal == req.principal


def test_v2_event_fields() -> None:
    req = HttpRequest(
        method="GET",
        path="/orders/42",
        query="x=1&x=2&y=",
        headers=[("host", "h.example"), ("user-agent", "ua"), ("x-multi", "1"), ("x-multi", "2")],
        route_template="/orders/{id}",
        path_params={"id": "42"},
        principal="alice",
        stage="",
    )
    ev = build_v2_event(req, now=1428582896.0)
    assert ev["routeKey"] == "GET /orders/{id}"
    assert ev["requestContext"]["routeKey"] == "GET /orders/{id}"
    assert ev["requestContext"]["stage"] == "$default"
    assert ev["requestContext"]["timeEpoch"] == 1428582896000
    assert ev["requestContext"]["http"] == {
        "method": "GET",
        "path": "/orders/42",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "ua",
    }
    assert ev["headers"]["x-multi"] == "1,2"
    assert ev["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert ev["pathParameters"] == {"id": "42"}
    assert ev["requestContext"]["authorizer"]["jwt"]["claims"] == {"sub": "alice"}
    assert "body" not in ev and ev["isBase64Encoded"] is False
    assert build_v2_event(HttpRequest(method="GET", path="/"))["routeKey"] == "$default"


# ------------------------------------------------------------------------------ results -> responses


def test_v1_response_merges_headers_and_multi_value_headers() -> None:
    resp = response_from_result(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-One": "1", "Set-Cookie": "a=1"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "X-Num": [3]},
            "body": "hi",
            "isBase64Encoded": False,
        },
        "v1",
    )
    assert resp.status == 201 and resp.body == b"hi"
    assert sorted(v for k, v in resp.headers if k == "set-cookie") == ["a=1", "b=2"]  # a=1 kept once
    assert resp.header("x-num") == "3" and resp.header("content-type") == "text/plain"


def test_v1_response_base64_and_default_content_type() -> None:
    resp = response_from_result(
        {"statusCode": "200", "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}, "v1"
    )
    assert resp.status == 200 and resp.body == b"\x00\x01"
    assert resp.header("content-type") == "application/json"
    assert response_from_result({"statusCode": 204}, "v1").body == b""


@pytest.mark.parametrize(
    "result",
    [
        None,
        "just a string",
        [1, 2],
        {},
        {"body": "no status"},
        {"statusCode": "abc"},
        {"statusCode": True},
        {"statusCode": 99},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
        {"statusCode": 200, "isBase64Encoded": "yes"},
        {"statusCode": 200, "headers": ["x"]},
        {"statusCode": 200, "headers": {"x": {"nested": 1}}},
        {"statusCode": 200, "multiValueHeaders": {"x": "not-a-list"}},
        {"statusCode": 200, "unexpected": 1},
    ],
)
def test_v1_malformed_result_is_502(result: object) -> None:
    resp = response_from_result(result, "v1")
    assert resp.status == 502
    assert json.loads(resp.body) == {"message": "Internal server error"}


def test_payload_that_is_not_json_is_502() -> None:
    assert response_from_payload(b"not json", "v1").status == 502
    assert response_from_payload(b"not json", "v2").status == 502
    assert response_from_payload(b'{"statusCode": 200, "body": "ok"}', "v1").body == b"ok"


def test_v2_inferred_format_and_cookies() -> None:
    r = response_from_result({"hello": "world"}, "v2")
    assert r.status == 200 and json.loads(r.body) == {"hello": "world"}
    assert r.header("content-type") == "application/json"
    r = response_from_result("plain", "v2")
    assert r.status == 200 and r.body == b"plain"
    r = response_from_result(7, "v2")
    assert r.status == 200 and r.body == b"7"
    r = response_from_result(
        {"statusCode": 302, "headers": {"Location": "/x"}, "cookies": ["a=1; Path=/", "b=2"], "body": ""}, "v2"
    )
    assert r.status == 302 and r.header("location") == "/x"
    assert [v for k, v in r.headers if k == "set-cookie"] == ["a=1; Path=/", "b=2"]


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "x"},
        {"statusCode": 200, "body": 5},
        {"statusCode": 200, "body": "!!", "isBase64Encoded": True},
        {"statusCode": 200, "cookies": "a=1"},
    ],
)
def test_v2_malformed_result_is_502(result: object) -> None:
    assert response_from_result(result, "v2").status == 502


# ------------------------------------------------------------------------------ through Mangum + FastAPI

app = FastAPI()


@app.api_route("/items/{item_id}", methods=["GET", "POST", "PUT", "DELETE"])
async def item(item_id: str, request: Request) -> Response:
    body = await request.body()
    payload = {
        "item_id": item_id,
        "method": request.method,
        "query": sorted(request.query_params.multi_items()),
        # Repeated headers may arrive comma-joined (v2, Mangum): equal under HTTP semantics.
        "x_custom": [p.strip() for h in request.headers.getlist("x-custom") for p in h.split(",")],
        "cookies": dict(request.cookies),
        "body_b64": base64.b64encode(body).decode(),
        "ua": request.headers.get("user-agent"),
    }
    resp = Response(json.dumps(payload, sort_keys=True), status_code=201 if request.method == "POST" else 200,
                    media_type="application/json")
    resp.set_cookie("seen", item_id)
    resp.set_cookie("other", "1")
    return resp


@app.get("/binary")
async def binary() -> Response:
    return Response(bytes(range(256)), media_type="image/png")


mangum_handler = Mangum(app, lifespan="off")


class _Ctx:
    function_name = "fn"
    aws_request_id = "r"


def _direct(req: HttpRequest) -> httpx.Response:
    with TestClient(app, base_url="http://h.example") as c:
        return c.request(
            req.method, req.path + ("?" + req.query if req.query else ""), headers=req.headers, content=req.body
        )


MANGUM_CASES = [
    HttpRequest(method="GET", path="/items/42", query="a=1&a=2&b=x+y",
                headers=[("host", "h.example"), ("x-custom", "1"), ("x-custom", "2"), ("user-agent", "t/1"),
                         ("cookie", "sid=abc; theme=dark")],
                route_template="/items/{item_id}", path_params={"item_id": "42"}),
    HttpRequest(method="POST", path="/items/7", headers=[("host", "h.example"), ("user-agent", "t/2"), ("content-type", "application/json")],
                body=b'{"name": "caf\xc3\xa9"}', route_template="/items/{item_id}", path_params={"item_id": "7"}),
    HttpRequest(method="PUT", path="/items/9", headers=[("host", "h.example"), ("user-agent", "t/3"), ("content-type", "image/png")],
                body=bytes(range(256)), route_template="/items/{item_id}", path_params={"item_id": "9"}),
    HttpRequest(method="GET", path="/binary", headers=[("host", "h.example"), ("user-agent", "t/4")], route_template="/binary"),
]


@pytest.mark.parametrize("fmt", ["v1", "v2"])
@pytest.mark.parametrize("req", MANGUM_CASES, ids=lambda r: f"{r.method} {r.path}")
def test_mangum_round_trip_equals_direct_asgi(req: HttpRequest, fmt: str) -> None:
    event = build_v1_event(req, stage="") if fmt == "v1" else build_v2_event(req, stage="")
    # Mangum runs its own event loop, hence a sync test. It uses asyncio.get_event_loop(), which
    # refuses once an earlier test's asyncio.run() cleared the loop: give it a fresh one.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        result = json.loads(json.dumps(mangum_handler(event, _Ctx())))  # through the Invoke JSON boundary
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    via_lambda = response_from_result(result, fmt)  # type: ignore[arg-type]
    direct = _direct(req)

    assert via_lambda.status == direct.status_code
    assert via_lambda.body == direct.content
    assert via_lambda.header("content-type") == direct.headers["content-type"]
    assert sorted(v for k, v in via_lambda.headers if k == "set-cookie") == sorted(
        direct.headers.get_list("set-cookie")
    )


@pytest.mark.parametrize(("raw", "pin"), [("/chariot/hook/p/pin%23zz", "pin#zz"), ("/chariot/hook/p/x%3F%40y", "x?@y"),
                                          ("/chariot/hook/p/%E2%82%AC%25", "€%")])
def test_events_carry_what_api_gateway_makes_of_a_raw_path(raw, pin):
    """Issue 15 item 7: v1 ``path`` and ``pathParameters`` decoded, v2 ``rawPath`` as sent."""
    from chariot_migrate.routes.matcher import RequestView, RouteTable, split_raw_path
    from chariot_migrate.routes.models import RoutesFile

    cfg = RoutesFile.model_validate({"legacy": {"invoker": "http", "url": "http://x"}, "stage_prefix": "/chariot",
                                     "services": {"s": {"phase": 1}},
                                     "routes": [{"path": "/hook/{principal}/{pin}", "methods": ["PUT"], "service": "s"}]})
    rp, problem = split_raw_path(raw, "/chariot")
    assert problem is None
    match = RouteTable(cfg).match(RequestView("PUT", rp.path))
    req = HttpRequest("PUT", rp.path, raw_path=rp.raw, route_template=match.route.template,
                      path_params=match.path_params, stage="chariot")
    v1 = build_v1_event(req)
    assert v1["path"] == f"/hook/p/{pin}" and v1["pathParameters"] == {"principal": "p", "pin": pin}
    assert v1["resource"] == "/hook/{principal}/{pin}"
    v2 = build_v2_event(req)
    assert v2["rawPath"] == raw.removeprefix("/chariot") and v2["pathParameters"]["pin"] == pin
    back = request_from_event(v2)
    assert (back.path, back.raw_path) == (rp.path, rp.raw)
