"""Abuse suite, edge part (issue 15, items 7–11, 13–15): one real proxy process between two real
echo upstreams (legacy over the `http` invoker, the new side over its pool), raw sockets where a
client library would clean the request up. Every item is tried as an attacker would send it; the
answers must be a 4xx with a reason (never a 5xx, never a traceback), and the proxy's log must stay
free of tracebacks. The Chariot-side parity of the same items runs in tests/e2e/test_e2e_abuse.py.
"""

from __future__ import annotations

import http.client
import json
import socket
import string
import time
from collections.abc import Iterator
from urllib.parse import unquote

import httpx
import pytest
from conftest import Proc, cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

OPERATOR = "abuse-operator-token"
ADMIN_TOKEN = "abuse-admin-token"
ROUTES = """\
version: 1
stage_prefix: /chariot
bucket_by: [header:account]
legacy: {{invoker: http, url: "{legacy}"}}
services:
  svc: {{phase: 1, url: "{new}"}}
routes:
  - {{path: "/account/{{member}}", methods: [POST, DELETE], service: svc}}
  - {{path: "/hook/{{principal}}/{{pin}}", methods: [PUT], service: svc}}
  - {{path: /my, methods: [POST], service: svc, match: {{body: {{"node.labels[0]": "^Asset$"}}}}}}
  - {{path: /risk, methods: [PUT, DELETE], service: svc}}
  - {{path: "/files/{{name+}}", methods: [GET], service: svc}}
"""


class Stack:
    def __init__(self, proxy: Proc, legacy: Proc, new: Proc) -> None:
        self.proxy, self.legacy, self.new = proxy, legacy, new
        self.port = proxy.port
        self.admin = f"http://127.0.0.1:{proxy.info['admin_port']}"

    def side(self, side: str) -> dict[str, str]:
        return {"x-migrate-target": side, "x-migrate-token": OPERATOR}

    def raw(self, method: str, target: str, headers: list[tuple[str, str]] = (), body: bytes = b"",
            conn: http.client.HTTPConnection | None = None) -> tuple[int, dict, bytes]:
        """One request exactly as written (http.client sends the target and repeated headers as given)."""
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        if not any(k.lower() == "host" for k, _ in headers):
            c.putheader("Host", "proxy.test")
        for k, v in headers:
            c.putheader(k, v)
        if body or method in ("POST", "PUT"):
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body or None)
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def upstream_counts(self) -> tuple[int, int]:
        return tuple(httpx.get(p.url + "/__echo/count").json()["count"] for p in (self.legacy, self.new))

    def log(self) -> str:
        return "".join(self.proxy.stderr_lines)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("abuse")
    started: list[Proc] = []
    try:
        for name in ("legacy", "new"):
            p = Proc(cli("example-upstream", name, "--port", "0"))
            started.append(p)
            p.wait_http("/__echo/count")
        legacy, new = started
        routes = tmp / "routes.yaml"
        routes.write_text(ROUTES.format(legacy=legacy.url, new=new.url))
        proxy = Proc(cli("proxy", "--routes", str(routes), "--state", f"sqlite:///{tmp}/state.db", "--port", "0",
                         "--admin-port", "0"), cwd=tmp,
                     env={"CHARIOT_MIGRATE_ADMIN_TOKEN": ADMIN_TOKEN, "CHARIOT_MIGRATE_OPERATOR_TOKEN": OPERATOR,
                          "CHARIOT_MIGRATE_HEADER_TIMEOUT_S": "1"})
        started.append(proxy)
        proxy.wait_http("/__ready_probe")
        s = Stack(proxy, legacy, new)
        yield s
        assert "Traceback" not in s.log() and "RecursionError" not in s.log(), s.log()[-3000:]
    finally:
        for p in reversed(started):
            p.stop()


def _echo(body: bytes) -> dict:
    return json.loads(body)


# --- 7. path confusion: match decoded, forward raw -----------------------------------------------------------

@pytest.mark.parametrize("side", ["new", "legacy"])
def test_escaped_query_and_fragment_characters_reach_the_upstream_as_sent(stack, side):
    status, _, body = stack.raw("POST", "/chariot/account/x%3F@y", list(stack.side(side).items()))
    doc = _echo(body)
    assert status == 200 and doc["side"] == side
    assert doc["raw_path"] == "/account/x%3F@y" and doc["path"] == "/account/x?@y" and doc["query"] == ""
    status, _, body = stack.raw("PUT", "/chariot/hook/p/pin%23zz?a=%23b&c", list(stack.side(side).items()))
    doc = _echo(body)
    assert status == 200 and doc["raw_path"] == "/hook/p/pin%23zz" and doc["path"] == "/hook/p/pin#zz"
    assert doc["query"] == "a=%23b&c"


def test_double_slashes_are_collapsed_and_escaped_dot_segments_refused(stack):
    status, _, body = stack.raw("PUT", "/chariot//hook//p/pin%7E1", list(stack.side("new").items()))
    assert status == 200 and _echo(body)["raw_path"] == "/hook/p/pin%7E1"  # %7E stays %7E (no re-quoting)
    for target in ("/chariot/files/%2e%2e/etc", "/chariot/files/a%00b", "/chariot/files/a%2Fb"):
        status, _, body = stack.raw("GET", target)
        assert status == 400 and json.loads(body)["error"], target


_UNRESERVED = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"
_segment = st.lists(st.one_of(st.sampled_from(_UNRESERVED),
                              st.integers(0, 255).map(lambda b: f"%{b:02X}"),
                              st.integers(0, 255).map(lambda b: f"%{b:02x}")), min_size=1, max_size=8).map("".join)
_query = st.lists(st.one_of(st.sampled_from(_UNRESERVED + "/?"), st.integers(0, 255).map(lambda b: f"%{b:02X}")),
                  max_size=12).map("".join)


def _refused(segments: list[str]) -> bool:
    """What the edge refuses by default: an encoded slash, NUL, or a dot segment after decoding."""
    return any("%2f" in s.lower() or "\x00" in unquote(s) or unquote(s) in (".", "..") for s in segments)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segments=st.lists(_segment, min_size=1, max_size=4), query=_query, side=st.sampled_from(["new", "legacy"]))
def test_property_the_forwarded_raw_path_is_the_clients_raw_path(stack, segments, query, side):
    """For any client path (escapes of every byte, either case), the upstream sees exactly the
    client's raw path minus the stage prefix, and the query string untouched — or a 400."""
    raw = "/files/" + "/".join(segments)
    target = "/chariot" + raw + (f"?{query}" if query else "")
    status, _, body = stack.raw("GET", target, list(stack.side(side).items()))
    if _refused(segments):
        assert status == 400, (target, body)
        return
    assert status == 200, (target, body)
    doc = _echo(body)
    assert (doc["side"], doc["raw_path"], doc["query"]) == (side, raw, query)


# --- 8. duplicate identity headers --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["account", "Authorization", "X-Migrate-Target", "X-Migrate-Token", "Host"])
def test_a_repeated_identity_header_is_refused_before_any_upstream(stack, name):
    before = stack.upstream_counts()
    status, _, body = stack.raw("PUT", "/chariot/risk", [(name, "a@x.com"), (name.upper(), "b@x.com")], b"{}")
    assert status == 400 and name.lower() in json.loads(body)["error"]
    assert stack.upstream_counts() == before
    status, _, _ = stack.raw("PUT", "/chariot/risk", [("account", "a@x.com"), ("x-other", "1"), ("x-other", "2")],
                             b"{}")
    assert status == 200  # other headers may repeat


# --- 9. deep JSON in a body predicate -----------------------------------------------------------------------

def test_ten_thousand_levels_of_json_are_a_400_not_a_recursion_error(stack):
    deep = b'{"node": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    for _ in range(3):
        status, _, body = stack.raw("POST", "/chariot/my", [("content-type", "application/json")], deep)
        assert status == 400 and "deeper than 64" in json.loads(body)["error"]
    ok = json.dumps({"node": {"labels": ["Asset"], "filters": [[[["x"]]]]}}).encode()
    status, _, body = stack.raw("POST", "/chariot/my", list(stack.side("new").items()), ok)
    assert status == 200 and _echo(body)["side"] == "new"


# --- 10 and 13. the admin API ---------------------------------------------------------------------------------

@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize("action", ["shift", "shadow"])
def test_admin_refuses_non_finite_numbers_with_422_and_the_reason(stack, number, action):
    r = httpx.post(f"{stack.admin}/services/svc/{action}", content=f'{{"percent": {number}}}',
                   headers={"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"})
    assert r.status_code == 422 and "percent" in r.json()["error"] and "finite" in r.json()["error"]


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_admin_schema_and_docs_need_the_token(stack, path):
    assert httpx.get(stack.admin + path).status_code == 401
    r = httpx.get(stack.admin + path, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200 and ("paths" in r.json() if path.endswith(".json") else "openapi.json" in r.text)


# --- 11. WebSocket upgrade ---------------------------------------------------------------------------------------

def test_a_websocket_upgrade_is_refused_with_403_and_a_reason(stack):
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as s:
        s.sendall(b"GET /chariot/files/x HTTP/1.1\r\nHost: proxy.test\r\nConnection: Upgrade\r\n"
                  b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        data = _read_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403"), data
    assert b"not proxied" in body


# --- 14. header-read timeout ---------------------------------------------------------------------------------------

def _read_all(s: socket.socket, limit: float = 5) -> bytes:
    s.settimeout(limit)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except TimeoutError:
        pass
    return out


def test_a_connection_that_never_finishes_its_headers_is_closed_with_408(stack):
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as s:
        s.sendall(b"GET /chariot/files/x HTTP/1.1\r\nHost: proxy.test\r\nX-Half: ")
        t0 = time.monotonic()
        data = _read_all(s, limit=5)
        waited = time.monotonic() - t0
    assert data.startswith(b"HTTP/1.1 408") and b"did not arrive in time" in data, data
    assert 0.8 <= waited < 4, waited
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as s:  # silent: closed, no answer
        t0 = time.monotonic()
        assert _read_all(s, limit=5) == b"" and time.monotonic() - t0 < 4


def test_a_slow_but_steady_keep_alive_client_is_served(stack):
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    for _ in range(3):
        time.sleep(0.6)  # idle between requests, each under the bound
        status, _, _ = stack.raw("GET", "/chariot/files/a", conn=conn)
        assert status == 200
    conn.close()


# --- 15. 405 with Allow on a known path -------------------------------------------------------------------------

def test_a_method_no_route_on_the_path_takes_is_405_with_allow(stack):
    before = stack.upstream_counts()
    status, headers, body = stack.raw("POST", "/chariot/hook/p/pin", [], b"{}")
    assert status == 405 and headers["allow"] == "PUT" and "POST" in json.loads(body)["error"]
    status, headers, _ = stack.raw("GET", "/chariot/risk")
    assert status == 405 and headers["allow"] == "PUT, DELETE"
    assert stack.upstream_counts() == before
    # Unknown paths, a method some route on the path takes (predicates unmatched), HEAD of a GET
    # route and OPTIONS all still reach the legacy default.
    for method, target, body in [("GET", "/chariot/unknown/path", b""), ("POST", "/chariot/my", b"{}"),
                                 ("HEAD", "/chariot/files/a", b""), ("OPTIONS", "/chariot/hook/p/pin", b"")]:
        status, headers, _ = stack.raw(method, target, [], body)
        assert status == 200 and headers["x-migrate-side"] == "legacy", (method, target)
