"""plan.analysis against a real Prometheus (Debian package) scraping a real proxy's /metrics.

Real echo upstreams, the real proxy process, a real `prometheus` on a free 127.0.0.1 port with a
temporary config (1 s scrapes of the admin /metrics behind its token), and `chariot-migrate
advance/plan/rollout` reading the queries' results: no data holds, a healthy window promotes, a
failing new side rolls back, a Prometheus that is gone holds with that reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import Receiver, prometheus_tool
from test_plan_rollout_live import Load, live, percent, run, wait_for  # noqa: F401 — live: the fixture

from chariot_migrate.rollout.webhooks import SIGNATURE_HEADER, verify

pytestmark = pytest.mark.integration

ERROR_RATE = ('(sum(rate(http_request_duration_seconds_count{service="{{service}}",side="new",status_code=~"5.."}'
              '[{{window}}])) or vector(0)) / sum(rate(http_request_duration_seconds_count{service="{{service}}",'
              'side="new"}[{{window}}]))')
VOLUME = 'sum(increase(http_request_duration_seconds_count{service="{{service}}",side="new"}[{{window}}]))'


class Prometheus:
    """A real prometheus on 127.0.0.1: a free port is picked, and picked again if the bind loses a race."""

    def __init__(self, binary: str, tmp: Path, admin_port: int) -> None:
        self.tmp = tmp
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
               "scrape_configs": [{"job_name": "chariot-migrate-proxy", "metrics_path": "/metrics",
                                   "authorization": {"credentials": "test-admin-token"},
                                   "static_configs": [{"targets": [f"127.0.0.1:{admin_port}"]}]}]}
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        for _ in range(5):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            self.log = open(tmp / f"prometheus-{self.port}.log", "w")  # noqa: SIM115 — closed in stop()
            self.popen = subprocess.Popen(
                [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
                stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
            if self._ready():
                return
            self.stop()
            if "address already in use" not in (tmp / f"prometheus-{self.port}.log").read_text():
                break
        raise RuntimeError(f"prometheus did not start: {(tmp / f'prometheus-{self.port}.log').read_text()[-2000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self, timeout: float = 30) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.popen.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.2)  # why: a readiness poll that also watches the process exit
        return False

    def value(self, query: str) -> float | None:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=5).json()
        res = r["data"]["result"]
        return float(res[0]["value"][1]) if res else None

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, 15)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, 9)
                self.popen.wait(5)
        self.log.close()


@pytest.fixture
def prom_binary():
    return prometheus_tool("prometheus")


def with_analysis(routes: Path, prom_url: str, hook_url: str) -> None:
    doc = yaml.safe_load(routes.read_text())
    doc["plan"]["webhooks"] = [{"name": "chat", "url": hook_url, "secret_env": "CHAT_SECRET", "retries": 1}]
    doc["services"]["first"]["failover"] = False  # the new side's 500s reach the client (and its metrics)
    doc["plan"]["analysis"] = {"prometheus": prom_url, "metrics": [
        {"name": "new-error-rate", "query": ERROR_RATE, "max": 0.05, "on_fail": "rollback"},
        {"name": "new-requests", "query": VOLUME, "min": 5, "on_fail": "hold"}]}
    routes.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_gates_read_a_real_prometheus_scraping_the_proxy(tmp_path, live, prom_binary, monkeypatch):  # noqa: F811
    proxy, routes, fail, _ = live()
    prom = Prometheus(prom_binary, tmp_path, proxy.info["admin_port"])
    rx = Receiver()
    monkeypatch.setenv("CHAT_SECRET", "hmac-key")  # the CLI runs in-process: it reads this environment
    try:
        with_analysis(routes, prom.url, rx.url + "/chat")
        wait_for(lambda: prom.value('up{job="chariot-migrate-proxy"}') == 1, 30, "prometheus to scrape the proxy")
        run(tmp_path, "shift", "first", "25", "-m", "start the test at 25 %")
        # the target split is exported (intent, not only the observed share)
        wait_for(lambda: prom.value('migration_target_percent{service="first"}') == 25, 15, "the target % scraped")
        assert prom.value('migration_stage{service="first",stage="canary"}') == 1

        # No traffic since the change: the queries are empty → no data → hold (exit 3), never promote.
        r = run(tmp_path, "advance", "first", check=False)
        assert r.returncode == 3, r.stdout  # hold
        assert "new-error-rate: no data" in r.stdout and percent(tmp_path, "first") == 25

        with Load(proxy.url, pause_s=0.01) as load:
            wait_for(lambda: (prom.value(VOLUME.replace("{{service}}", "first").replace("{{window}}", "10s")) or 0)
                     >= 20, 45, "new-side requests in prometheus", interval=0.5)
            time.sleep(2)  # not a poll: two more 1 s scrapes inside the plan's own (shorter) window, for rate()
            out = run(tmp_path, "plan").stdout
            assert "ok  new-error-rate: 0 (threshold <= 0.05)" in out, out
            assert "new-requests:" in out and "(threshold >= 5)" in out
            r = run(tmp_path, "advance", "first", check=False)
            assert r.returncode == 0, r.stdout
            assert "ok  new-error-rate: 0 (threshold <= 0.05)" in r.stdout and percent(tmp_path, "first") == 50

            # The new side fails: the error rate since that promotion breaches → automatic rollback.
            fail.write_text("1")
            wait_for(lambda: load.statuses.get(("new", 500)), 20, "the new side's 500s at the client")
            err = ERROR_RATE.replace("{{service}}", "first").replace("{{window}}", "10s")
            wait_for(lambda: (prom.value(err) or 0) > 0.5, 45, "the error rate in prometheus", interval=0.5)
            time.sleep(1)  # not a poll: one more 1 s scrape, so the tick's window holds the failures too
            r = run(tmp_path, "rollout", "first", "--interval", "1", "--max-ticks", "1")
            assert "[rollback]" in r.stdout and "FAIL new-error-rate" in r.stdout, r.stdout
            assert percent(tmp_path, "first") == 25
            fail.unlink()
        # the chat hook heard every change, signed, with the Prometheus evidence
        kinds = [(d["event"], d["from_percent"], d["to_percent"]) for d in rx.events()]
        assert kinds == [("promoted", 0.0, 25.0), ("promoted", 25.0, 50.0), ("rolled_back", 50.0, 25.0)], kinds
        _, headers, last, body = rx.got[-1]
        assert verify("hmac-key", body, headers[SIGNATURE_HEADER])
        err = next(c for c in last["evidence"]["checks"] if c["name"] == "new-error-rate")
        assert not err["ok"] and float(err["measured"]) > 0.05 and err["threshold"] == "<= 0.05"
        assert last["actor"] == "rollout-controller" and "rolled back 50% → 25%" in last["text"]

        # Prometheus gone: hold with that reason.
        prom.stop()
        r = run(tmp_path, "advance", "first", check=False)
        assert r.returncode == 3 and "did not answer" in r.stdout, r.stdout
        assert percent(tmp_path, "first") == 25
    finally:
        prom.stop()
        rx.close()
