"""Which ASGI server the proxy's workers run under (`--server`, `$CHARIOT_MIGRATE_SERVER`)."""

from __future__ import annotations

import socket

import pytest

from chariot_migrate.lifecycle import bind, hold_port_for_child
from chariot_migrate.proxy.granian_server import listeners_on
from chariot_migrate.proxy.server import SERVER_ENV, ProxyOptions, resolve_server


def test_default_is_uvicorn_and_the_environment_or_the_option_choose(monkeypatch):
    monkeypatch.delenv(SERVER_ENV, raising=False)
    assert resolve_server(ProxyOptions()) == "uvicorn"
    monkeypatch.setenv(SERVER_ENV, "granian")
    assert resolve_server(ProxyOptions()) == "granian"
    assert resolve_server(ProxyOptions(server="uvicorn")) == "uvicorn"  # the option wins


def test_unknown_server_and_granian_on_a_handed_down_socket_are_one_sentence(monkeypatch):
    monkeypatch.delenv(SERVER_ENV, raising=False)
    with pytest.raises(RuntimeError, match="unknown server 'hypercorn'"):
        resolve_server(ProxyOptions(server="hypercorn"))
    with pytest.raises(RuntimeError, match="cannot serve on --fd"):
        resolve_server(ProxyOptions(server="granian", fd=3))
    assert resolve_server(ProxyOptions(fd=3)) == "uvicorn"


def test_listeners_on_counts_listening_sockets_only():
    holder = hold_port_for_child("127.0.0.1", 0)  # bound, not listening: what granian's port holder is
    port = holder.getsockname()[1]
    try:
        assert listeners_on(port) == 0
        a = socket.socket()
        a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        a.bind(("127.0.0.1", port))
        a.listen()
        b = socket.socket()
        b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        b.bind(("127.0.0.1", port))
        b.listen()
        assert listeners_on(port) == 2  # two "workers" joined the held port
        a.close()
        b.close()
    finally:
        holder.close()
    other = bind("127.0.0.1", 0)
    assert listeners_on(other.getsockname()[1]) == 1
    other.close()


def test_the_ready_line_waits_for_every_worker_and_not_past_the_server():
    import threading

    from chariot_migrate.proxy.granian_server import announce_when_listening

    holder = hold_port_for_child("127.0.0.1", 0)
    port = holder.getsockname()[1]
    announced = threading.Event()
    t = announce_when_listening(port, 1, announced.set, alive=lambda: True, interval_s=0.005)
    worker = socket.socket()
    try:
        assert not announced.is_set()  # nothing listens yet: the holder does not count
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        worker.bind(("127.0.0.1", port))
        worker.listen()
        assert announced.wait(10)
        t.join(10)
        assert not t.is_alive()
    finally:
        worker.close()
        holder.close()
    gone = threading.Event()
    t = announce_when_listening(port, 1, gone.set, alive=lambda: False)  # the server already ended
    t.join(10)
    assert not t.is_alive() and not gone.is_set()


def _port_in_time_wait() -> int:
    """A port whose last connection the server side closed first: it sits in TIME_WAIT (60 s)."""
    listener = bind("127.0.0.1", 0)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()
    client.recv(1)  # the server's FIN arrived
    client.close()
    listener.close()
    return port


def test_granian_restart_on_a_fixed_port_is_not_refused_by_time_wait():
    from chariot_migrate.lifecycle import PortInUse
    from chariot_migrate.proxy.server import _public_socket

    port = _port_in_time_wait()
    with pytest.raises(PortInUse):
        hold_port_for_child("127.0.0.1", port).close()  # what the plain holder would do: refused
    held = _public_socket(ProxyOptions(host="127.0.0.1", port=port), "granian")
    try:
        assert held.getsockname()[1] == port
        assert listeners_on(port) == 0  # held, not listening: the workers listen
    finally:
        held.close()
