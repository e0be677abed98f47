"""Faults of a standalone `chariot-migrate proxy` (issue 15, items 2, 4, 6), on real processes:
every kind of broken routes.yaml edit leaves the old table serving and says so; the admin process
and the workers die with a SIGKILLed proxy; a port in use and a corrupt state database are one
sentence before anything listens."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import Proc, cli
from faults_kit import BAD_EDITS, BAD_LINES, alive, children_of, wait_for

from chariot_migrate.lifecycle import bind, port_of

pytestmark = pytest.mark.integration

ROUTES = """\
version: 1
bucket_by: [header:account]
legacy: {{invoker: http, url: "{legacy}"}}
defaults: {{side_header: {side_header}}}
services:
  svc: {{phase: 1, url: "{legacy}"}}
routes:
  - {{path: /r, methods: [GET], service: svc}}
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_every_kind_of_broken_routes_edit_keeps_the_old_table_serving(tmp_path, start_echo, start_proxy, workers):
    legacy = start_echo("legacy")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, side_header="X-Side-0"))
    proxy = start_proxy(routes, workers=workers)
    admin = f"http://127.0.0.1:{proxy.info['admin_port']}"
    assert "x-side-0" in httpx.get(proxy.url + "/r").headers

    for n, (kind, text) in enumerate(BAD_EDITS.items(), start=1):
        before = len(proxy.stderr_lines)
        routes.write_text(text)
        line = wait_for(lambda b=before: next((ln for ln in proxy.stderr_lines[b:] if "rejected" in ln), None),
                        what=f"the rejection of the {kind} edit")
        # One line naming the file and the line of the problem; no traceback.
        assert f"{routes}{BAD_LINES[kind]}" in line, (kind, line)
        assert not any("Traceback" in ln for ln in proxy.stderr_lines[before:])
        assert proxy.popen.poll() is None, f"the proxy exited on the {kind} edit"
        r = httpx.get(proxy.url + "/r")
        assert r.status_code == 200 and f"x-side-{n - 1}" in r.headers, kind  # the old table
        ready = httpx.get(admin + "/ready").json()
        assert ready["ready"] is True and ready["routes"]["valid"] is False, ready
        assert f"{routes}{BAD_LINES[kind]}" in ready["routes"]["error"]
        # The next valid edit applies, in every worker: each polls routes.yaml on its own (and one
        # still starting loads it at start, logging no reload), so wait until a run of requests on
        # fresh connections, which the kernel spreads over the workers, all see the new table.
        before = len(proxy.stderr_lines)
        routes.write_text(ROUTES.format(legacy=legacy.url, side_header=f"X-Side-{n}"))
        wait_for(lambda n=n: all(f"x-side-{n}" in httpx.get(proxy.url + "/r").headers for _ in range(10 * workers)),
                 what=f"every worker applying the valid edit after {kind}")
        assert any("routes.yaml reloaded" in ln for ln in proxy.stderr_lines[before:])
        assert httpx.get(admin + "/ready").json()["routes"]["valid"] is True


def test_a_worker_started_while_routes_yaml_is_broken_serves_the_last_valid_table(tmp_path, start_echo, start_proxy):
    legacy = start_echo("legacy")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, side_header="X-Side-good"))
    proxy = start_proxy(routes, workers=2)
    routes.write_text(BAD_EDITS["not YAML"])
    wait_for(lambda: any("rejected" in ln for ln in proxy.stderr_lines), what="the rejection")
    spawned = sorted(p for p in children_of(proxy.popen.pid) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes())
    assert len(spawned) == 3  # the admin process (started first), then two workers
    workers = spawned[1:]
    for pid in workers:  # uvicorn's supervisor replaces each killed worker
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len([p for p in children_of(proxy.popen.pid) if p not in spawned]) >= 2, timeout=30,
             what="replacement workers")
    # The replacements started while routes.yaml is broken, and serve the last table that loaded
    # (the killed workers are gone, so any answer now comes from a replacement).
    r = wait_for(lambda: _get(proxy.url + "/r"), timeout=30, what="an answer from a replacement worker")
    assert r.status_code == 200 and "x-side-good" in r.headers


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None


def test_sigkill_of_the_proxy_takes_its_admin_process_and_workers_with_it(tmp_path, start_echo, start_proxy):
    legacy = start_echo("legacy")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, side_header="X-Side"))
    proxy = start_proxy(routes, workers=2)
    kids = children_of(proxy.popen.pid)
    assert len(kids) >= 3
    os.kill(proxy.popen.pid, signal.SIGKILL)
    proxy.popen.wait(5)
    wait_for(lambda: not any(alive(k) for k in kids), timeout=10, what="the proxy's children to exit")
    # The ports are free again: a restart on the same ports works.
    port, admin_port = proxy.port, proxy.info["admin_port"]
    again = Proc(cli("proxy", "--routes", str(routes), "--state", f"sqlite:///{tmp_path}/state.db",
                     "--port", str(port), "--admin-port", str(admin_port)),
                 cwd=tmp_path, env={"CHARIOT_MIGRATE_ADMIN_TOKEN": "t"})
    try:
        again.wait_http("/health", port=admin_port)
        assert httpx.get(f"http://127.0.0.1:{port}/r").status_code == 200
    finally:
        again.stop()


def _refused(args: list[str], cwd) -> subprocess.CompletedProcess:
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "CHARIOT_MIGRATE_ADMIN_TOKEN": "t"})
    assert out.returncode == 1, out
    assert "proxy.listening" not in out.stdout and "Traceback" not in out.stderr, out
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr  # one sentence
    return out


@pytest.mark.parametrize("which", ["--port", "--admin-port"])
def test_a_port_in_use_is_one_sentence(tmp_path, start_echo, which):
    legacy = start_echo("legacy")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, side_header="X-Side"))
    taken = bind("127.0.0.1", 0)
    try:
        ports = {"--port": "0", "--admin-port": "0", which: str(port_of(taken))}
        out = _refused(cli("proxy", "--routes", str(routes), "--state", f"sqlite:///{tmp_path}/s.db",
                           *[x for kv in ports.items() for x in kv]), tmp_path)
        assert f"127.0.0.1:{port_of(taken)} is already in use" in out.stderr
    finally:
        taken.close()


def test_a_corrupt_state_database_refuses_to_start_before_listening(tmp_path, start_echo):
    legacy = start_echo("legacy")
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url, side_header="X-Side"))
    db = tmp_path / "state.db"
    db.write_bytes(os.urandom(8192))
    out = _refused(cli("proxy", "--routes", str(routes), "--state", f"sqlite:///{db}", "--port", "0",
                       "--admin-port", "0"), tmp_path)
    assert "not a usable SQLite database" in out.stderr and "move the file aside" in out.stderr
