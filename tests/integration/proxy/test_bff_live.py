"""The BFF through a real proxy process and two real Chariot-like upstreams on 127.0.0.1: the
dashboard fans out through the same side decision as any request of the account (0 % → legacy's
data, 100 % → new's), a failed part is `partial`, answers are cached per caller; NDJSON streams
every page of a list and stops fetching pages while the client is not reading."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

pytestmark = pytest.mark.integration

ROUTES = """\
version: 1
stage_prefix: /chariot
bucket_by: [header:account]
legacy: {{invoker: http, url: "{legacy}"}}
services:
  inventory: {{phase: 1, url: "{new}", percent: {percent}}}
routes:
  - {{path: /my/count, methods: [GET], service: inventory}}
  - {{path: /my, methods: [GET], service: inventory}}
  - {{path: /account/alert, methods: [GET], service: inventory}}
bff:
  aggregates:
    - path: /dashboard
      cache_s: 30
      timeout_s: 3
      parts:
        assets: {{path: /my/count, query: {{key: "#asset#"}}, pick: status}}
        risks: {{path: /my/count, query: {{key: "#risk#"}}, pick: status}}
        jobs: {{path: /my, query: {{key: "status:JR"}}}}
        notifications: {{path: /account/alert}}
  ndjson: [/my]
"""


class ChariotLike:
    """Answers the handful of Chariot reads the dashboard and the list need, each marked with its side."""

    def __init__(self, side: str, *, assets: int = 250, page: int = 100, pad: int = 0) -> None:
        self.side, self.assets, self.page, self.pad = side, assets, page, pad
        self.alerts_down = False
        self.hits: list[tuple[str, dict]] = []
        self.callers: set[str | None] = set()
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                u = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(u.query).items()}
                if u.path != "/__ready_probe":  # the test harness's readiness probe
                    outer.hits.append((u.path, q))
                    outer.callers.add(self.headers.get("account"))
                status, doc = outer.answer(u.path, q, dict(self.headers))
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str, q: dict, headers: dict) -> tuple[int, object]:
        who = headers.get("account", "")
        if path == "/my/count":
            return 200, {"status": {"A": self.assets} if q["key"] == "#asset#" else {"OH": 2}, "side": self.side}
        if path == "/account/alert":
            if self.alerts_down:
                return 503, {"error": "alerts are down"}
            return 200, [{"key": f"#account#{who}#alert#OH", "side": self.side}]
        if path == "/my" and q.get("key") == "status:JR":
            return 200, {"jobs": [{"key": "#job#a.com#a.com#nuclei", "status": "JR", "side": self.side}]}
        if path == "/my":
            start = int(q.get("offset", "0"))
            end = min(start + self.page, self.assets)
            doc: dict = {"assets": [{"key": f"#asset#{i:06d}", "side": self.side, "pad": "x" * self.pad}
                                    for i in range(start, end)]}
            if end < self.assets:
                doc["offset"] = str(end)
            return 200, doc
        return 404, {"error": "no such path"}

    def pages(self) -> int:
        return sum(1 for p, q in self.hits if p == "/my" and q.get("key") == "#asset#")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sides():
    made = {s: ChariotLike(s) for s in ("legacy", "new")}
    yield made
    for s in made.values():
        s.close()


def _proxy(tmp_path, start_proxy, sides, percent):
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=sides["legacy"].url, new=sides["new"].url, percent=percent))
    return start_proxy(routes)


ME = {"account": "customer@example.com"}


@pytest.mark.parametrize("percent,side", [(0, "legacy"), (100, "new")])
def test_the_dashboard_reads_every_part_from_the_side_the_account_is_on(tmp_path, start_proxy, sides, percent, side):
    proxy = _proxy(tmp_path, start_proxy, sides, percent)
    r = httpx.get(f"{proxy.url}/api/v1/dashboard", headers=ME)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["partial"] == [] and r.headers["x-bff-cache"] == "miss"
    assert doc["assets"] == {"A": 250} and doc["risks"] == {"OH": 2}
    assert [j["side"] for j in doc["jobs"]["jobs"]] == [side]
    assert [n["side"] for n in doc["notifications"]] == [side]
    # Each part went through the proxy as the caller: the side got the caller's account header.
    other = "new" if side == "legacy" else "legacy"
    assert len(sides[side].hits) == 4 and sides[other].hits == [] and sides[side].callers == {ME["account"]}
    # Cached for this caller, not for another one.
    again = httpx.get(f"{proxy.url}/chariot/dashboard", headers=ME)
    assert again.json() == doc and again.headers["x-bff-cache"] == "hit" and len(sides[side].hits) == 4
    someone = httpx.get(f"{proxy.url}/api/v1/dashboard", headers={"account": "other@example.com"})
    assert someone.headers["x-bff-cache"] == "miss" and len(sides[side].hits) == 8

    # One part failing: on the new side a read fails over to legacy, as any read does...
    sides[side].alerts_down = True
    if side == "new":
        r = httpx.get(f"{proxy.url}/api/v1/dashboard", headers={"account": "fourth@example.com"})
        assert r.json()["partial"] == [] and [n["side"] for n in r.json()["notifications"]] == ["legacy"]
        sides["legacy"].alerts_down = True
    # ...and when no side can answer, the answer is partial, names it with its reason, and is not cached.
    r = httpx.get(f"{proxy.url}/api/v1/dashboard", headers={"account": "third@example.com"})
    doc = r.json()
    assert r.status_code == 200 and doc["partial"] == ["notifications"] and doc["notifications"] is None
    assert "alerts are down" in doc["errors"]["notifications"] and doc["assets"] == {"A": 250}
    sides["legacy"].alerts_down = sides["new"].alerts_down = False
    r = httpx.get(f"{proxy.url}/api/v1/dashboard", headers={"account": "third@example.com"})
    assert r.headers["x-bff-cache"] == "miss" and r.json()["partial"] == []
    assert httpx.post(f"{proxy.url}/api/v1/dashboard", headers=ME).status_code == 405
    assert httpx.get(f"{proxy.url}/api/v2/dashboard", headers=ME).status_code == 404


def test_ndjson_streams_every_page_and_stops_fetching_while_the_client_does_not_read(tmp_path, start_proxy, sides):
    big = ChariotLike("legacy", assets=3000, page=50, pad=8000)  # 60 pages of ~400 kB: 24 MB in all
    try:
        sides = {"legacy": big, "new": sides["new"]}
        proxy = _proxy(tmp_path, start_proxy, sides, 0)
        paged = httpx.get(f"{proxy.url}/chariot/my", params={"key": "#asset#"}, headers=ME).json()
        assert len(paged["assets"]) == 50 and paged["offset"] == "50"  # classic pagination stays the default
        big.hits.clear()
        with httpx.stream("GET", f"{proxy.url}/chariot/my", params={"key": "#asset#"},
                          headers={**ME, "accept": "application/x-ndjson"}, timeout=30) as r:
            it = r.iter_lines()
            assert json.loads(next(it))["key"] == "#asset#000000"
            # Not reading: the proxy fills the socket buffers, then waits instead of paging on.
            stalled = _settled(big, timeout=20)
            assert stalled < 45, f"{stalled} of 60 pages fetched while the client read one line"
            assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
            keys = [json.loads(x)["key"] for x in it]
        assert keys == [f"#asset#{i:06d}" for i in range(1, 3000)] and big.pages() == 60
    finally:
        big.close()


def _settled(side: ChariotLike, *, timeout: float) -> int:
    """The page count once it stops growing (two looks 0.5 s apart agree)."""
    deadline, last = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        n = side.pages()
        if n == last:
            return n
        last = n
        time.sleep(0.5)  # why: "stopped growing" means two looks apart in time agree; no end event to poll
    raise AssertionError(f"the proxy kept paging for {timeout}s ({last} pages)")
