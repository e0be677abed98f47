"""HTTP transport to a new service (or an existing API Gateway URL): aiohttp keep-alive pool.

aiohttp, not httpx, on the hot path: measured here it forwards ~9× more requests per second
under concurrency. The rest of the proxy only sees the ``Transport`` interface; pyreqwest sits
behind the same interface (``upstream_reqwest``, selectable; it won in a bare forwarder but not in
the proxy) and :func:`http_transport` picks the client.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from typing import Literal

import aiohttp
from yarl import URL

from ..transport import HttpRequest, HttpResponse, Transport, UpstreamError

CHUNK = 64 * 1024
SMALL_BODY = 256 * 1024  # bodies up to this size (with a Content-Length) are read whole
HttpClient = Literal["aiohttp", "pyreqwest"]
HTTP_CLIENTS: tuple[HttpClient, ...] = ("aiohttp", "pyreqwest")
HTTP_CLIENT_ENV = "CHARIOT_MIGRATE_HTTP_CLIENT"
DEFAULT_HTTP_CLIENT: HttpClient = "aiohttp"


def http_transport(base_urls: list[str] | str, *, client: HttpClient | None = None, **kwargs) -> Transport:
    """An HTTP transport on the chosen client (default: ``$CHARIOT_MIGRATE_HTTP_CLIENT``, else aiohttp:
    in the proxy, pyreqwest measured no better — see the README's performance section)."""
    client = client or os.environ.get(HTTP_CLIENT_ENV) or DEFAULT_HTTP_CLIENT  # type: ignore[assignment]  # any other name is refused below
    if client == "pyreqwest":
        from .upstream_reqwest import ReqwestTransport

        return ReqwestTransport(base_urls, **kwargs)
    if client != "aiohttp":
        raise ValueError(f"unknown HTTP client {client!r} (choose from {', '.join(HTTP_CLIENTS)})")
    return HttpTransport(base_urls, **kwargs)


class InstanceCycle:
    """Round robin over a service's base URLs."""

    def __init__(self, base_urls: list[str] | str) -> None:
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("an HTTP transport needs at least one base URL")
        self.base_urls = [u.rstrip("/") for u in urls]
        self._cycle = itertools.cycle(self.base_urls)
        self._single = self.base_urls[0] if len(self.base_urls) == 1 else None

    def next(self) -> str:
        return self._single or self._cycle.__next__()


class HttpTransport:
    """Forwards to one or more instances of a service (round robin across instances)."""

    def __init__(self, base_urls: list[str] | str, *, pool_limit: int = 200, connect_timeout: float = 2.0) -> None:
        self._instances = InstanceCycle(base_urls)
        self.base_urls = self._instances.base_urls
        self._pool_limit = pool_limit
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily inside the running loop (each uvicorn worker has its own).
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_limit, limit_per_host=self._pool_limit,
                                             keepalive_timeout=30, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        base = self._instances.next()
        # encoded=True: the path and query go out byte for byte as the client sent them (yarl
        # would otherwise re-quote them, e.g. turn %7E into ~).
        url = URL(base + request.target_path + (("?" + request.query) if request.query else ""), encoded=True)
        session = self._get_session()
        ct = self._timeouts.get(timeout)
        if ct is None:
            # No sock_read timer: aiohttp would re-arm it on every read. One asyncio timeout
            # covers the request and a small body; streamed bodies get a timeout per chunk.
            ct = self._timeouts[timeout] = aiohttp.ClientTimeout(
                total=None, sock_connect=min(self._connect_timeout, timeout))
        try:
            async with asyncio.timeout(timeout) as deadline:
                resp = await session.request(
                    request.method, url, headers=request.headers, data=request.body or None,
                    allow_redirects=False, timeout=ct,
                )
                length = resp.content_length
                if length is not None and length <= SMALL_BODY:
                    # Most API answers are small: read them whole and send them in one piece —
                    # far cheaper than an async generator and a send per chunk (see bench/).
                    try:
                        body = await resp.read()
                    finally:
                        resp.release()
                    return HttpResponse(status=resp.status, headers=_headers(resp), body=body)
                deadline.reschedule(None)
        except TimeoutError:
            raise UpstreamError("timeout", f"no response within {timeout:g}s from {base}") from None
        except aiohttp.ClientConnectorError as e:
            raise UpstreamError("connect", f"cannot connect to {base}: {e.os_error.strerror or e}") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
            raise UpstreamError("connect", f"connection to {base} reset: {e}") from None
        except aiohttp.ClientError as e:
            raise UpstreamError("protocol", f"bad response from {base}: {e}") from None
        return HttpResponse(status=resp.status, headers=_headers(resp), stream=_stream(resp, base, timeout))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _headers(resp: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in resp.raw_headers]


async def _stream(resp: aiohttp.ClientResponse, base: str, timeout: float) -> AsyncIterator[bytes]:
    try:
        while True:
            async with asyncio.timeout(timeout):  # a stalled upstream, not a slow client
                chunk = await resp.content.read(CHUNK)
            if not chunk:
                break
            yield chunk
    except TimeoutError:
        raise UpstreamError("timeout", f"{base} stopped sending the body") from None
    except aiohttp.ClientError as e:
        raise UpstreamError("protocol", f"{base} broke off the body: {e}") from None
    finally:
        resp.release()
