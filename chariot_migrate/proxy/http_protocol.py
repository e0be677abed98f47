"""uvicorn's httptools protocol with a request-header timeout.

uvicorn bounds the idle time *between* requests (``timeout_keep_alive``) but nothing bounds a
request whose headers never finish: a client that sends half a header block and waits keeps a
connection (and a file descriptor) forever. This protocol arms a timer when a connection opens
and when a request's first byte arrives, and cancels it when the headers are complete. If it
fires first, the client gets ``408 Request Timeout`` and the connection is closed — nginx's
``client_header_timeout`` (default 60 s, also the default here) and Envoy's
``request_headers_timeout`` behave the same way.

Set the bound with ``CHARIOT_MIGRATE_HEADER_TIMEOUT_S`` (seconds; ``0`` turns it off).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("chariot_migrate.proxy")
HEADER_TIMEOUT_ENV = "CHARIOT_MIGRATE_HEADER_TIMEOUT_S"
DEFAULT_HEADER_TIMEOUT_S = 60.0

_408_BODY = b'{"error": "the request headers did not arrive in time"}'
_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(_408_BODY)).encode() + b"\r\n\r\n" + _408_BODY)


@functools.cache
def header_timeout_s() -> float:
    """The bound from the environment (read once per process); a bad value keeps the default."""
    raw = os.environ.get(HEADER_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_HEADER_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        log.warning("%s=%r is not 0 (off) or a number of seconds; using %gs", HEADER_TIMEOUT_ENV, raw,
                    DEFAULT_HEADER_TIMEOUT_S)
        return DEFAULT_HEADER_TIMEOUT_S
    return value


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """HttpToolsProtocol + a deadline for each request's header block."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout_s()
        self._header_timer: asyncio.TimerHandle | None = None
        self._request_started = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's own annotation
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_started = True
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._request_started = False
        super().on_headers_complete()

    def _arm(self) -> None:
        self._disarm()
        if self._header_timeout > 0:
            self._header_timer = self.loop.call_later(self._header_timeout, self._headers_timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._request_started:  # part of a request arrived: say why it is dropped
            self.transport.write(_408)
        self.transport.close()
