"""One helper opens every Redis connection: credentials and TLS from the environment when the URL
carries none (the URLs live in routes.yaml and ConfigMaps, which must not hold secrets)."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from chariot_migrate.redis_conn import redis_options

PKG = Path(__file__).resolve().parents[1] / "chariot_migrate"


def test_password_and_username_come_from_the_environment_when_the_url_has_none():
    env = {"CHARIOT_MIGRATE_REDIS_PASSWORD": "s3cret", "CHARIOT_MIGRATE_REDIS_USERNAME": "ops"}
    assert redis_options("redis://redis:6379/0", env) == ("redis://redis:6379/0", {"password": "s3cret",
                                                                                    "username": "ops"})
    assert redis_options("redis://redis:6379/0", {"REDIS_PASSWORD": "p"})[1] == {"password": "p"}
    # the project's own variable wins over the generic one
    assert redis_options("redis://h/0", {"REDIS_PASSWORD": "a", "CHARIOT_MIGRATE_REDIS_PASSWORD": "b"})[1] == {
        "password": "b"}
    # what the URL says wins
    assert redis_options("redis://:inurl@h:6379/0", env) == ("redis://:inurl@h:6379/0", {})
    assert redis_options("redis://h/0?password=q", env)[1] == {}
    assert redis_options("redis://h/0", {}) == ("redis://h/0", {})


def test_tls_from_the_environment_and_rediss_urls():
    env = {"CHARIOT_MIGRATE_REDIS_TLS": "true", "CHARIOT_MIGRATE_REDIS_CA_FILE": "/etc/ca.pem"}
    assert redis_options("redis://redis:6380/0", env) == ("rediss://redis:6380/0", {"ssl_ca_certs": "/etc/ca.pem"})
    assert redis_options("rediss://redis:6380/0", {"REDIS_CA_FILE": "/ca"}) == ("rediss://redis:6380/0",
                                                                                 {"ssl_ca_certs": "/ca"})
    both = redis_options("redis://h/0", {"CHARIOT_MIGRATE_REDIS_TLS": "1", "CHARIOT_MIGRATE_REDIS_CERT_FILE": "/c",
                                          "CHARIOT_MIGRATE_REDIS_KEY_FILE": "/k"})
    assert both == ("rediss://h/0", {"ssl_certfile": "/c", "ssl_keyfile": "/k"})
    assert redis_options("redis://h/0", {"CHARIOT_MIGRATE_REDIS_TLS": "0"}) == ("redis://h/0", {})
    assert redis_options("unix:///run/redis.sock", {"CHARIOT_MIGRATE_REDIS_TLS": "1"})[0] == "unix:///run/redis.sock"


def test_no_redis_connection_bypasses_the_helper():
    offenders = []
    for p in PKG.rglob("*.py"):
        if p.name == "redis_conn.py":
            continue
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if re.search(r"\bfrom_url\(|\bRedis\(|StrictRedis\(", line):
                offenders.append(f"{p.relative_to(PKG)}:{i}: {line.strip()}")
    assert not offenders, "open Redis through chariot_migrate.redis_conn:\n" + "\n".join(offenders)


@pytest.fixture
def redis_with_password(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "pw-1",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)  # why: a startup poll's interval
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


def test_every_store_authenticates_with_the_password_from_the_environment(redis_with_password, monkeypatch):
    import asyncio

    from chariot_migrate.dual_write.outbox import open_outbox
    from chariot_migrate.rollout.store import StateStoreError, open_state_store
    from chariot_migrate.rollout.windows import open_window_store
    from chariot_migrate.shadow.store import open_diff_store

    url = redis_with_password
    with pytest.raises(StateStoreError, match="(?i)auth"):
        open_state_store(url).version()
    monkeypatch.setenv("CHARIOT_MIGRATE_REDIS_PASSWORD", "pw-1")
    st = open_state_store(url)
    st.put_record("verify", "svc", {"ok": True})
    assert st.get_record("verify", "svc") == {"ok": True}
    st.close()
    open_window_store(url).query("svc", 0)
    open_diff_store(url)

    async def outbox() -> dict:
        ob = open_outbox(url)
        try:
            return await ob.status()
        finally:
            await ob.aclose()

    assert asyncio.run(outbox()) == {}
