"""failover_to_new with real processes: a proxy between a legacy side that starts failing (500s)
and a healthy new side. For the prepared service (dual write on, no data of its own) the failed
reads are served by new, marked and counted; for the unprepared one the setting is ignored with
the reason in the proxy's log and legacy's error stands; writes never fail over."""

from __future__ import annotations

import httpx
import pytest
from conftest import Proc, cli, eventually
from test_edge_live import metric

pytestmark = pytest.mark.integration


def test_legacy_failures_are_served_by_new_only_for_a_prepared_service(tmp_path, procs, start_proxy):
    flag = tmp_path / "legacy-fails"
    legacy = Proc(cli("example-upstream", "legacy", "--port", "0"), env={"ECHO_FAIL_FLAG": str(flag)})
    procs.append(legacy)
    new = Proc(cli("example-upstream", "new", "--port", "0"))
    procs.append(new)
    for p in (legacy, new):
        p.wait_http("/__echo/count")
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""\
version: 1
legacy: {{invoker: http, url: "{legacy.url}"}}
bucket_by: [header:account]
services:
  risk-assessment: {{phase: 3, url: "{new.url}", dual_write: "on", failover_to_new: true}}
  asset-discovery: {{phase: 2, url: "{new.url}", failover_to_new: true}}
routes:
  - {{path: /risk, methods: [GET, PUT], service: risk-assessment}}
  - {{path: /asset, methods: [GET], service: asset-discovery}}
""")
    proxy = start_proxy(routes)
    h = {"account": "a@x.com"}
    with httpx.Client(timeout=10) as c:
        r = c.get(proxy.url + "/risk", headers=h)
        assert r.status_code == 200 and r.headers["x-migrate-side"] == "legacy"  # legacy healthy: it serves
        flag.write_text("")  # legacy starts failing
        eventually(lambda: c.get(proxy.url + "/risk", headers=h).headers.get("x-migrate-side") == "new", timeout=15,
                   what="legacy's failures to be served by new")
        r = c.get(proxy.url + "/risk", headers=h)
        assert r.status_code == 200 and r.headers["x-migrate-failover"] == "legacy_status_500"
        assert r.json()["side"] == "new"  # the new service answered it
        # a write never fails over; the unprepared service keeps legacy's error
        assert c.put(proxy.url + "/risk", headers=h, content=b"{}").status_code == 500
        r = c.get(proxy.url + "/asset", headers=h)
        assert r.status_code == 500 and r.headers["x-migrate-side"] == "legacy" and "x-migrate-failover" not in r.headers
        eventually(lambda: (metric(proxy, "proxy_failovers_total", service="risk-assessment",
                                   reason="legacy_status_500") or 0) >= 2, timeout=15, what="two counted failovers")
        flag.unlink()  # legacy is back: it serves again
        r = c.get(proxy.url + "/risk", headers=h)
        assert r.status_code == 200 and r.headers["x-migrate-side"] == "legacy"
    log = "".join(proxy.stderr_lines)
    assert "failover_to_new for asset-discovery is ignored: it is not prepared (dual write is off" in log
    assert "failover_to_new for risk-assessment is on (prepared)" in log
