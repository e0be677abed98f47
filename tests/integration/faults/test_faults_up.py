"""Faults of `chariot-migrate up --free-ports` (issue 15, items 1–5), on a real stack: moto, one
service (an echo app, at 100 %), the proxy; legacy is an echo upstream.

* a broken routes.yaml edit never stops hot reload, is reported against the user's file;
* a SIGKILLed service is restarted on its own socket while the proxy keeps answering;
* SIGKILL of `up` takes every process it started with it;
* two stacks run side by side on one Redis, each in its own namespace;
* a port in use is one sentence before anything starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import Proc, cli
from faults_kit import BAD_EDITS, BAD_LINES, UP_ROUTES, UpStack, alive, children_of, wait_for

from chariot_migrate.lifecycle import bind, port_of
from chariot_migrate.routes.loader import load_table

pytestmark = pytest.mark.integration
ACCOUNT = {"account": "someone@example.com"}


@pytest.fixture(scope="module")
def legacy():
    p = Proc(cli("example-upstream", "legacy", "--port", "0"))
    p.wait_http()
    yield p
    p.stop()


def _routes(tmp: Path, legacy: Proc, side_header: str = "X-Migrate-Side") -> Path:
    routes = tmp / "routes.yaml"
    routes.write_text(UP_ROUTES.format(legacy=legacy.url, side_header=side_header))
    return routes


@pytest.fixture(scope="module")
def stack(legacy, tmp_path_factory):
    work = tmp_path_factory.mktemp("up")
    s = UpStack(work, _routes(work, legacy))
    yield s
    s.stop()


def _side(stack: UpStack, header: str = "x-migrate-side") -> str | None:
    try:
        r = httpx.get(stack.url + "/r", headers=ACCOUNT, timeout=5)
    except httpx.HTTPError as e:
        raise AssertionError(f"the proxy did not answer: {e!r}") from None
    assert r.status_code == 200, r.text
    return r.headers.get(header)


def test_broken_routes_edits_under_up_are_reported_against_the_users_file(stack, legacy):
    effective = stack.state_dir / "routes.effective.yaml"
    assert load_table(effective).config.services["svc"].url.endswith(f":{stack.info['services']['service-svc']}")
    assert _side(stack) == "new"
    for n, (kind, text) in enumerate(BAD_EDITS.items(), start=1):
        before = len(stack.log_text("proxy"))
        stack.routes.write_text(text)
        line = wait_for(lambda b=before: next((ln for ln in stack.log_text("proxy")[b:].splitlines() if "rejected" in ln),
                                              None), what=f"the rejection of the {kind} edit")
        assert f"{stack.routes}{BAD_LINES[kind]}" in line and "routes.effective" not in line, (kind, line)
        assert _side(stack, f"x-side-{n - 1}" if n > 1 else "x-migrate-side") is not None  # the old table
        ready = httpx.get(stack.admin + "/ready").json()
        assert ready["routes"]["valid"] is False and f"{stack.routes}{BAD_LINES[kind]}" in ready["routes"]["error"]
        stack.routes.write_text(UP_ROUTES.format(legacy=legacy.url, side_header=f"X-Side-{n}"))
        wait_for(lambda n=n: _side(stack, f"x-side-{n}") == "new", what=f"the valid edit after the {kind} one")
        assert httpx.get(stack.admin + "/ready").json()["routes"]["valid"] is True
    assert "Traceback" not in stack.log_text("proxy")
    stack.routes.write_text(UP_ROUTES.format(legacy=legacy.url, side_header="X-Migrate-Side"))
    wait_for(lambda: _side(stack) == "new", what="the original table")


def test_a_killed_service_is_restarted_on_its_socket_and_the_proxy_keeps_answering(stack):
    port = stack.info["services"]["service-svc"]
    victim = stack.child_pid("service run svc")
    os.kill(victim, signal.SIGKILL)

    def restarted() -> int | None:
        try:
            pid = stack.child_pid("service run svc")
        except LookupError:
            return None
        return pid if pid != victim else None

    # Every request meanwhile is answered (200): it waits in the service's accept queue, which
    # `up` keeps open, or legacy serves it (failover), never a refused connection.
    sides = []
    new_pid = wait_for(lambda: sides.append(_side(stack)) or restarted(), timeout=30, what="a new service process")
    wait_for(lambda: sides.append(_side(stack)) or sides[-1] == "new", timeout=30, what="the new side to answer again")
    assert set(sides) <= {"new", "legacy"}, sides
    log = stack.log_text()
    assert "service-svc exited (signal SIGKILL)" in log and "restarting it in" in log, log[-2000:]
    assert stack.child_pid("service run svc") == new_pid
    assert httpx.get(f"http://127.0.0.1:{port}/__echo/count").status_code == 200  # the same port
    assert stack.proc.poll() is None


def test_sigkill_of_up_takes_everything_it_started_with_it(stack):
    tree = children_of(stack.proc.pid)
    assert len(tree) >= 3  # the service, the proxy and the proxy's admin process at least
    os.kill(stack.proc.pid, signal.SIGKILL)
    stack.proc.wait(5)
    wait_for(lambda: not any(alive(p) for p in tree), timeout=15, what="up's children to exit")


def test_two_stacks_share_one_redis_in_their_own_namespaces(legacy, tmp_path):
    stacks = []
    try:
        for name in ("a", "b"):
            work = tmp_path / name
            work.mkdir()
            stacks.append(UpStack(work, _routes(work, legacy)))
        a, b = stacks
        assert a.info["redis_namespace"] != b.info["redis_namespace"]
        for s in stacks:
            assert _side(s) == "new"
            env = Path(f"/proc/{s.child_pid('service run svc')}/environ").read_bytes().split(b"\0")
            assert f"REDIS_NAMESPACE={s.info['redis_namespace']}".encode() in env
            assert (s.state_dir / "redis-namespace").read_text().strip() == s.info["redis_namespace"]
    finally:
        for s in stacks:
            s.stop()
    # A later run in the same state dir is the same deployment: same namespace.
    again = UpStack(tmp_path / "a", tmp_path / "a" / "routes.yaml")
    try:
        assert again.info["redis_namespace"] == stacks[0].info["redis_namespace"]
    finally:
        again.stop()


def test_up_on_a_port_in_use_is_one_sentence_and_starts_nothing(legacy, tmp_path):
    taken = bind("127.0.0.1", 0)
    port = port_of(taken)
    try:
        out = subprocess.run(cli("up", "--routes", str(_routes(tmp_path, legacy)), "--port", str(port),
                                 "--admin-port", "0", "--free-ports", "--state-dir", str(tmp_path / "state")),
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: 127.0.0.1:{port} is already in use; stop what listens there or choose another port "
        "(0 = any free port)"]
    assert "moto server" not in out.stdout
