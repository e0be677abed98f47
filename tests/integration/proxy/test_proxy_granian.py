"""The real proxy process under granian (`--server granian`, port 0) in front of real echo upstreams:
the same contract as under uvicorn (test_proxy_live.py), through granian's own sockets."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from conftest import Proc, cli, eventually

from chariot_migrate.proxy.granian_server import listeners_on

pytestmark = pytest.mark.integration

ROUTES = """\
version: 1
stage_prefix: /chariot
bucket_by: [header:account]
legacy: {{invoker: http, url: "{legacy}"}}
defaults: {{timeout_s: 5}}
services:
  account: {{phase: 1, url: "{new}"}}
  dead: {{phase: 5, url: "http://127.0.0.1:1", dual_write: "on", failover: false}}
routes:
  - {{path: /echo, methods: [GET, POST, PUT], service: account}}
  - {{path: /dead, methods: [GET], service: dead}}
"""


@pytest.fixture
def granian_proxy(tmp_path, start_echo, procs):
    legacy, new = start_echo("legacy"), start_echo("new")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, new=new.url))

    def start(workers: int = 1) -> Proc:
        p = Proc(cli("proxy", "--routes", str(routes), "--state", f"sqlite:///{tmp_path}/state.db", "--port", "0",
                     "--admin-port", "0", "--workers", str(workers), "--server", "granian"),
                 cwd=tmp_path, env={"CHARIOT_MIGRATE_ADMIN_TOKEN": "test-admin-token"})
        procs.append(p)
        return p

    return start, legacy, routes


def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for k in map(int, kids):
                if k not in out:
                    out.add(k)
                    todo.append(k)
    return out


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _tcp(state: str) -> list[tuple[int, int, str]]:
    """(local port, remote port, inode) of the IPv4 sockets in ``state`` (hex, as in /proc/net/tcp)."""
    rows = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == state:
                rows.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16), fields[9]))
    return rows


def test_routed_request_reaches_upstream_byte_for_byte_and_ready_answers(granian_proxy):
    start, legacy, _ = granian_proxy
    proxy = start()
    # The line came after the worker listened: the very first request is served, nothing to retry.
    body = "ünïcode body, {\"k\": [1, 2]}\n".encode()
    r = httpx.post(proxy.url + "/chariot/echo?key=%23job%23a&x=1", content=body, timeout=5,
                   headers={"account": "a@x.com", "x-custom": "Value With  Spaces", "content-type": "text/plain"})
    assert r.status_code == 200, r.text
    assert r.headers["x-migrate-side"] == "legacy"
    seen = r.json()
    assert seen["method"] == "POST" and seen["path"] == "/echo" and seen["query"] == "key=%23job%23a&x=1"
    assert seen["body"].encode() == body
    assert seen["headers"]["x-custom"] == "Value With  Spaces" and seen["headers"]["account"] == "a@x.com"
    assert seen["headers"]["content-length"] == str(len(body))
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    admin = f"http://127.0.0.1:{proxy.info['admin_port']}"
    ready = httpx.get(admin + "/ready", timeout=5)
    assert ready.status_code == 200, ready.text
    assert proxy.info["event"] == "proxy.listening" and proxy.info["workers"] == 1


def test_two_workers_both_serve(granian_proxy):
    start, legacy, _ = granian_proxy
    proxy = start(workers=2)
    assert listeners_on(proxy.port) == 2  # announced only once both workers listen
    workers = {pid for pid in _descendants(proxy.popen.pid)
               if {i for lp, _, i in _tcp("0A") if lp == proxy.port} & _socket_inodes(pid)}
    assert len(workers) == 2

    def one(_: int) -> int:  # a fresh connection each: SO_REUSEPORT spreads connections over the workers
        with httpx.Client(timeout=10) as c:
            return c.get(proxy.url + "/chariot/echo", headers={"x-echo-delay-ms": "1500"}).status_code

    with concurrent.futures.ThreadPoolExecutor(24) as ex:
        futs = [ex.submit(one, i) for i in range(24)]

        def both_forwarding() -> bool:  # each worker holds a connection to the upstream while requests wait there
            upstream = {i for _, rp, i in _tcp("01") if rp == legacy.port}
            return all(upstream & _socket_inodes(pid) for pid in workers)

        eventually(both_forwarding, timeout=10, what="both workers forwarding to the upstream")
        assert [f.result() for f in futs] == [200] * 24
    # Multiprocess metrics and the access log hold under granian too: both workers' requests counted.
    admin = f"http://127.0.0.1:{proxy.info['admin_port']}"

    def counted() -> float:  # workers apply their request metrics in batches, twice a second
        m = httpx.get(admin + "/metrics", headers={"authorization": "Bearer test-admin-token"}).text
        line = next((x for x in m.splitlines() if x.startswith("http_request_duration_seconds_count{")
                     and 'endpoint="/echo"' in x), " 0")
        return float(line.rsplit(" ", 1)[1])

    eventually(lambda: counted() >= 24, what="24 requests in the metrics")
    assert counted() == 24

    def logged() -> list[dict]:
        return [json.loads(x) for x in proxy.stderr_lines if '"chariot_migrate.access"' in x and '"/echo"' in x]

    eventually(lambda: len(logged()) >= 24, what="24 access-log lines")
    assert len(logged()) == 24 and {e.get("status") for e in logged()} == {200}


@pytest.mark.parametrize(("workers", "to_group"), [(1, True), (2, False)], ids=["group-1-worker", "main-2-workers"])
def test_sigterm_drains_inflight_requests_and_exits_0(granian_proxy, workers, to_group):
    """To the whole group (systemd, `kill -- -PGID`: idle workers get it too) or to the main process
    only (granian forwards it to its workers)."""
    start, _, _ = granian_proxy
    proxy = start(workers=workers)

    def slow(_: int) -> httpx.Response:  # a fresh connection each, so with 2 workers both may hold one
        with httpx.Client(timeout=10) as c:
            return c.get(proxy.url + "/chariot/echo", headers={"x-echo-delay-ms": "1500"})

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        futs = [ex.submit(slow, i) for i in range(4)]
        time.sleep(0.5)  # lets the requests reach the upstream (the proxy exposes no in-flight count)
        if to_group:
            os.killpg(proxy.popen.pid, signal.SIGTERM)
        else:
            os.kill(proxy.popen.pid, signal.SIGTERM)
        answers = [f.result() for f in futs]
    assert [r.status_code for r in answers] == [200] * 4 and {r.json()["path"] for r in answers} == {"/echo"}
    assert proxy.popen.wait(15) == 0, "".join(proxy.stderr_lines)[-2000:]


def test_bad_upstream_is_502_with_a_reason(granian_proxy, tmp_path):
    start, _, routes = granian_proxy
    proxy = start()
    shift = subprocess.run(cli("shift", "dead", "100", "--routes", str(routes),
                               "--state", f"sqlite:///{tmp_path}/state.db"),
                           capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert shift.returncode == 0, shift.stderr

    def dead_on_new():
        got = httpx.get(proxy.url + "/chariot/dead", headers={"account": "a@x.com"}, timeout=5)
        return got if got.status_code == 502 else None

    r = eventually(dead_on_new, what="the shift to the dead service")
    assert r.json()["side"] == "new" and "cannot connect" in r.json()["error"]


def test_granian_with_fd_is_refused_in_one_sentence(tmp_path):
    p = subprocess.run(cli("proxy", "--routes", str(tmp_path / "routes.yaml"), "--fd", "3", "--server", "granian"),
                       capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert p.returncode == 1 and "--fd" in p.stderr and "Traceback" not in p.stderr
    info = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert info == []  # nothing announced
