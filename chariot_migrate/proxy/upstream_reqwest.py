"""HTTP transport on pyreqwest (Rust reqwest/hyper behind a small Python API).

The same contract as :class:`~chariot_migrate.proxy.upstream.HttpTransport` — one asyncio timeout
over the response head and a small body, a per-chunk timeout for streamed bodies, the same
``UpstreamError`` kinds — so either can sit behind the ``Transport`` interface. Which one the
proxy uses is chosen by :func:`~chariot_migrate.proxy.upstream.http_transport`; ``make bench``
measures both (see the README's performance section).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import ConnectError, ConnectTimeoutError, PyreqwestError, ReadError, WriteError
from pyreqwest.response import Response

from ..transport import HttpRequest, HttpResponse, UpstreamError
from .upstream import CHUNK, SMALL_BODY, InstanceCycle


class ReqwestTransport:
    """Forwards to one or more instances of a service (round robin across instances)."""

    def __init__(self, base_urls: list[str] | str, *, pool_limit: int = 200, connect_timeout: float = 2.0) -> None:
        self._instances = InstanceCycle(base_urls)
        self.base_urls = self._instances.base_urls
        self._pool_limit = pool_limit
        self._connect_timeout = connect_timeout
        self._client: Client | None = None

    def _get_client(self) -> Client:
        # Built lazily inside the running loop (each worker process has its own).
        if self._client is None:
            self._client = (
                ClientBuilder()
                .max_connections(self._pool_limit)
                .pool_max_idle_per_host(self._pool_limit)
                .pool_idle_timeout(dt.timedelta(seconds=30))
                .connect_timeout(dt.timedelta(seconds=self._connect_timeout))
                # A proxy forwards bytes as they are: no redirects followed, nothing decompressed
                # (reqwest would also add its own Accept-Encoding), no cookies kept.
                .follow_redirects(False)
                .gzip(False).brotli(False).zstd(False).deflate(False)
                .default_cookie_store(False)
                .tcp_nodelay(True)
                .build()
            )
        return self._client

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        base = self._instances.next()
        url = base + request.target_path + (("?" + request.query) if request.query else "")
        # Buffer limit 1: hand over the response head as soon as it arrives (reqwest would
        # otherwise wait for 64 KiB of body first, which stalls streamed and long-poll answers).
        builder = self._get_client().request(request.method, url).headers(request.headers) \
            .streamed_read_buffer_limit(1)
        if request.body:
            builder = builder.body_bytes(request.body)
        streamed = builder.build_streamed()
        try:
            async with asyncio.timeout(timeout) as deadline:
                resp = await streamed.__aenter__()
                try:
                    whole = _is_whole(resp)
                    # Most API answers are small: read them whole (one piece, no generator).
                    body = bytes(await resp.bytes()) if whole else b""
                except BaseException:
                    await streamed.__aexit__(None, None, None)
                    raise
                if whole:
                    await streamed.__aexit__(None, None, None)
                    return HttpResponse(status=resp.status, headers=_headers(resp), body=body)
                deadline.reschedule(None)
        except TimeoutError:
            raise UpstreamError("timeout", f"no response within {timeout:g}s from {base}") from None
        except (ConnectError, ConnectTimeoutError) as e:
            raise UpstreamError("connect", f"cannot connect to {base}: {_reason(e)}") from None
        except (ReadError, WriteError) as e:
            raise UpstreamError("connect", f"connection to {base} reset: {_reason(e)}") from None
        except PyreqwestError as e:
            raise UpstreamError("protocol", f"bad response from {base}: {_reason(e)}") from None
        return HttpResponse(status=resp.status, headers=_headers(resp), stream=_stream(streamed, resp, base, timeout))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _is_whole(resp: Response) -> bool:
    length = resp.get_header("content-length")
    return length is not None and length.isdigit() and int(length) <= SMALL_BODY


def _headers(resp: Response) -> list[tuple[str, str]]:
    return list(resp.headers.items())  # names already lower-case, repeated headers kept


def _reason(e: PyreqwestError) -> str:
    # The message's first line is the useful part; the cause chain repeats the URL.
    return str(e).splitlines()[0] if str(e) else type(e).__name__


async def _stream(streamed, resp: Response, base: str, timeout: float) -> AsyncIterator[bytes]:
    reader = resp.body_reader
    try:
        while True:
            async with asyncio.timeout(timeout):  # a stalled upstream, not a slow client
                chunk = await reader.read(CHUNK)
            if not chunk:
                break
            yield bytes(chunk)
    except TimeoutError:
        raise UpstreamError("timeout", f"{base} stopped sending the body") from None
    except PyreqwestError as e:
        raise UpstreamError("protocol", f"{base} broke off the body: {_reason(e)}") from None
    finally:
        await streamed.__aexit__(None, None, None)
