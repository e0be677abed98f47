"""A TCP relay in front of a service's AWS endpoint (the moto server) that holds each answer for a
while when told to: an honest way to have a request genuinely in flight inside a real service
process (its DynamoDB calls are slow), with no sleep endpoint in production code."""

from __future__ import annotations

import socket
import threading
import time


class SlowRelay:
    """``delay_s`` (changeable at any time) holds the first chunk of every answer the upstream
    sends back; ``holding`` is set while an answer is being held."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay_s = 0.0
        self.holding = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="relay-accept").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.close()
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.upstream)
            except OSError:
                return
            with self._lock:
                self._sockets += [client, upstream]
            asked = threading.Event()  # a request went up; its answer has not started yet
            threading.Thread(target=self._pump_up, args=(client, upstream, asked), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(upstream, client, asked), daemon=True).start()

    def _pump_up(self, client: socket.socket, upstream: socket.socket, asked: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                asked.set()
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _shut(upstream)

    def _pump_down(self, upstream: socket.socket, client: socket.socket, asked: threading.Event) -> None:
        try:
            while data := upstream.recv(65536):
                if asked.is_set() and self.delay_s > 0:
                    asked.clear()
                    self.holding.set()
                    time.sleep(self.delay_s)  # why: the relay's injected delay itself
                client.sendall(data)
        except OSError:
            pass
        finally:
            _shut(client)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
