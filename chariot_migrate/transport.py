"""The one request/response shape every upstream speaks, and the Transport interface.

The proxy never knows whether a side is a container over HTTP or a Lambda function behind an
API Gateway event: both are a ``Transport`` (after httpx's transport abstraction). That keeps
the hot path small and lets tests swap any side for an in-memory one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import quote

Headers = list[tuple[str, str]]  # header names lower-case, order and duplicates kept


@dataclass(slots=True)
class HttpRequest:
    """A request as the proxy forwards it to one side.

    ``path`` is the normalised, decoded path *without* the API stage prefix (e.g. ``/asset``,
    what routes match and a Lambda event's ``path`` carries); ``raw_path`` is the same path as
    the client encoded it (e.g. ``/hook/p/pin%23zz``), what an HTTP upstream receives. The
    routing fields tell a Lambda transport which function and resource template to use.
    """

    method: str
    path: str
    query: str = ""  # raw query string without '?'
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    # Routing context (filled by the proxy, ignored by plain HTTP transports).
    route_template: str | None = None  # e.g. "/account/{member}"
    path_params: dict[str, str] = field(default_factory=dict)
    function: str | None = None  # legacy Lambda function name
    principal: str | None = None  # verified caller, for the authorizer context
    stage: str = ""  # API Gateway stage name, e.g. "chariot"
    client_ip: str = "127.0.0.1"
    request_id: str = ""
    raw_path: str | None = None  # as received (percent-encoding kept); None: encode ``path``

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    @property
    def target_path(self) -> str:
        """The path as it goes on the wire: the client's raw path, else ``path`` encoded so that
        ``?``, ``#``, ``%`` and spaces inside a segment stay data (``/`` stays the separator)."""
        return self.raw_path if self.raw_path is not None else quote_path(self.path)


def quote_path(path: str) -> str:
    """A decoded path as a request target: ``?``, ``#``, ``%``, spaces and non-ASCII inside a
    segment are percent-encoded (UTF-8); ``/`` stays the separator."""
    return quote(path, safe="/!$&'()*+,;=:@-._~")


@dataclass(slots=True)
class HttpResponse:
    """An upstream's answer. Either ``body`` is complete or ``stream`` yields it in chunks."""

    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None

    async def read(self) -> bytes:
        """Buffer the whole body (consumes ``stream``)."""
        if self.stream is not None:
            chunks = [c async for c in self.stream]
            self.body = b"".join(chunks)
            self.stream = None
        return self.body

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default


UpstreamErrorKind = Literal["connect", "timeout", "protocol", "function"]


class UpstreamError(Exception):
    """The side could not produce an HTTP response at all.

    ``kind`` decides the client-facing status: ``timeout`` → 504, everything else → 502.
    """

    def __init__(self, kind: UpstreamErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Transport(Protocol):
    """Sends one request to one side. Implementations: HTTP (aiohttp), Lambda invokers."""

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse: ...

    async def aclose(self) -> None: ...
