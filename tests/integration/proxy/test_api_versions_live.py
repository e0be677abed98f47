"""API versions through a real proxy and real upstreams: /api/v1 is the stage's API, other
versions reach only routes that declare them, /internal/api never leaves the cluster."""

from __future__ import annotations

import httpx
import pytest
from conftest import Proc, cli

pytestmark = pytest.mark.integration

ROUTES = """\
version: 1
stage_prefix: /chariot
bucket_by: [header:account]
legacy: {{invoker: http, url: "{legacy}"}}
services:
  svc: {{phase: 1, url: "{new}"}}
routes:
  - {{path: /my, methods: [GET], service: svc}}
  - {{path: /my, methods: [GET], service: svc, versions: [v2], name: "cursor /my"}}
  - {{path: /schema, methods: [GET], service: svc,
     deprecation: {{since: "2026-12-01", sunset: "2027-06-30", link: "https://docs.example.com/schema"}}}}
  - {{path: "/internal/api/{{rest+}}", methods: [GET], service: svc}}   # ignored at the edge
"""


@pytest.fixture
def proxy(tmp_path, procs, start_proxy):
    legacy = Proc(cli("example-upstream", "legacy", "--port", "0"))
    new = Proc(cli("example-upstream", "new", "--port", "0"))
    procs += [legacy, new]
    legacy.wait_http()
    new.wait_http()
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, new=new.url))
    return start_proxy(routes)


def test_v1_is_the_stage_api_and_later_versions_keep_their_prefix(proxy):
    staged = httpx.get(f"{proxy.url}/chariot/my", params={"key": "#asset#"}, headers={"account": "a@x.com"})
    v1 = httpx.get(f"{proxy.url}/api/v1/my", params={"key": "#asset#"}, headers={"account": "a@x.com"})
    assert staged.status_code == v1.status_code == 200
    assert staged.json()["path"] == v1.json()["path"] == "/my"
    assert staged.json()["query"] == v1.json()["query"]
    v2 = httpx.get(f"{proxy.url}/api/v2/my", headers={"account": "a@x.com"})
    assert v2.status_code == 200 and v2.json()["raw_path"] == "/api/v2/my"  # the service sees the version


def test_a_version_a_route_lacks_is_404_naming_the_versions_that_exist(proxy):
    r = httpx.get(f"{proxy.url}/api/v3/my", headers={"account": "a@x.com"})
    assert r.status_code == 404 and r.json()["versions"] == ["v1", "v2"]
    r = httpx.get(f"{proxy.url}/api/v2/schema", headers={"account": "a@x.com"})
    assert r.status_code == 404 and r.json()["versions"] == ["v1"]


@pytest.mark.parametrize("path", ["/internal/api/entities", "/chariot/internal/api/entities",
                                  "/internal//api/entities", "/internal/%61pi/entities"])
def test_the_internal_api_is_404_whatever_routes_yaml_says(proxy, path):
    r = httpx.get(f"{proxy.url}{path}", headers={"account": "a@x.com"})
    assert r.status_code == 404 and "service-to-service" in r.json()["error"]
    assert "x-migrate-side" not in r.headers  # no side was asked


def test_deprecated_routes_say_so_on_every_answer(proxy):
    for path in ("/chariot/schema", "/api/v1/schema"):
        r = httpx.get(f"{proxy.url}{path}", headers={"account": "a@x.com"})
        assert r.status_code == 200
        assert r.headers["deprecation"] == "@1796083200"
        assert r.headers["sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
        assert r.headers["link"] == '<https://docs.example.com/schema>; rel="deprecation"'
    assert "deprecation" not in httpx.get(f"{proxy.url}/api/v1/my", headers={"account": "a@x.com"}).headers
