"""The state store goes away mid-run (a private Redis is stopped, then restarted): the proxy keeps
serving from its last known state, says so on /ready, and recovers by itself."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile

import httpx
import pytest
from conftest import cli, eventually

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")]

ROUTES = """\
version: 1
bucket_by: [header:account]
legacy: {{invoker: http, url: "{legacy}"}}
services:
  svc: {{phase: 1, url: "{new}", dual_write: "on"}}
routes:
  - {{path: /r, methods: [GET], service: svc}}
"""


def start_redis(path: str, tmp_path) -> subprocess.Popen:
    """A private Redis on a Unix socket (no TCP port: nothing to pick, nothing another process
    could take between a stop and a restart)."""
    p = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", path, "--save", "",
                          "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)

    def accepting() -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.2)
                s.connect(path)
                return True
        except OSError:
            return False

    try:
        eventually(accepting, timeout=10, what="redis-server to accept on its socket")
    except AssertionError:
        p.kill()
        raise
    return p


def test_proxy_serves_through_a_state_store_outage_and_recovers(tmp_path, start_echo, start_proxy):
    legacy, new = start_echo("legacy"), start_echo("new")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, new=new.url))
    sock_path = tempfile.mkdtemp(prefix="chariot-redis-") + "/redis.sock"  # short: sun_path is ~107 bytes
    url = f"unix://{sock_path}?db=0"
    redis = start_redis(sock_path, tmp_path)
    try:
        proxy = start_proxy(routes, state=url)
        admin = f"http://127.0.0.1:{proxy.info['admin_port']}"

        def shift(pct: str) -> subprocess.CompletedProcess:
            return subprocess.run(cli("shift", "svc", pct, "--routes", str(routes), "--state", url),
                                  capture_output=True, text=True, timeout=30)

        assert shift("100").returncode == 0
        side = lambda: httpx.get(proxy.url + "/r", headers={"account": "a@x.com"}, timeout=5)  # noqa: E731
        eventually(lambda: side().headers["x-migrate-side"] == "new", what="the proxy to pick up the 100 % shift")

        redis.kill()
        redis.wait(5)
        # the worker has polled the dead store (and logged it) before we check it keeps serving
        eventually(lambda: any("state store unavailable" in line for line in proxy.stderr_lines),
                   what="the proxy to notice the state store outage")
        # Still serving, from the last known state (100 % new), with no failed request.
        results = [side() for _ in range(20)]
        assert all(r.status_code == 200 and r.headers["x-migrate-side"] == "new" for r in results)
        ready = httpx.get(admin + "/ready", timeout=5)
        assert ready.status_code == 503 and "state store" in ready.text.lower()
        bad = shift("0")
        assert bad.returncode == 1 and "unavailable" in bad.stderr and "Traceback" not in bad.stderr

        redis = start_redis(sock_path, tmp_path)  # same socket, empty: the store starts over
        eventually(lambda: httpx.get(admin + "/ready", timeout=5).status_code == 200, timeout=10, interval=0.3,
                   what="the proxy to notice the store came back")
        assert shift("0").returncode == 0  # changes work again and reach the proxy
        eventually(lambda: side().headers["x-migrate-side"] == "legacy", timeout=5, interval=0.2,
                   what="the proxy to route back to legacy after the shift to 0 %")
        assert any("state store unavailable" in line for line in proxy.stderr_lines)
    finally:
        redis.kill()
        redis.wait(5)
