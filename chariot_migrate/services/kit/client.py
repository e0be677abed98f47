"""Resilient service-to-service client on httpx.AsyncClient.

Timeouts; retries with exponential backoff + full jitter for idempotent methods only; a circuit
breaker per peer; the current correlation id / traceparent propagated; a service token attached.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ...observability import tracing
from .breaker import BreakerConfig, CircuitBreaker, CircuitOpenError
from .context import outbound_headers

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3  # total tries for idempotent methods (1 = no retry)
    base: float = 0.05  # seconds
    cap: float = 2.0

    def backoff(self, retry: int, rng: Callable[[float, float], float] = random.uniform) -> float:
        """Full jitter: uniform(0, min(cap, base·2^retry)) (retry counts from 0)."""
        return rng(0.0, min(self.cap, self.base * (2**retry)))


class ServiceClient:
    """``async with ServiceClient("http://127.0.0.1:9101", peer="account", ...) as c: await c.get("/x")``.

    5xx answers and transport errors count as failures for the breaker; 4xx do not (the peer
    is healthy, the request was wrong). Non-idempotent methods are sent once.
    """

    def __init__(
        self,
        base_url: str,
        *,
        peer: str,
        token: Callable[[], str] | None = None,
        timeout: float | httpx.Timeout = 5.0,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        breaker_config: BreakerConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.peer = peer
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker(peer, breaker_config)
        self._token = token
        self._sleep = sleep
        self._rng = rng
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        account: str | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        method = method.upper()
        attempts = self.retry.attempts if method in IDEMPOTENT_METHODS else 1
        merged = outbound_headers()
        if self._token is not None:
            merged["Authorization"] = f"Bearer {self._token()}"
        if account:
            merged["account"] = account
        merged.update(headers or {})
        span = tracing.start_span(f"{method} {self.peer}", kind=tracing.SpanKind.CLIENT,
                                  attributes={"http.request.method": method, "peer.service": self.peer,
                                              "url.path": path})
        if span is not None:  # the peer's server span names this client span as its parent
            merged["traceparent"] = tracing.traceparent_of(span) or merged["traceparent"]
        try:
            response = await self._send(method, path, merged, attempts, **kwargs)
        except BaseException as e:
            tracing.end_span(span, error=e)
            raise
        tracing.end_span(span, error=f"HTTP {response.status_code}" if response.status_code >= 500 else None,
                         attributes={"http.response.status_code": response.status_code})
        return response

    async def _send(self, method: str, path: str, merged: dict[str, str], attempts: int,
                    **kwargs: Any) -> httpx.Response:
        last_exc: Exception | None = None
        for attempt in range(attempts):
            if not self.breaker.allow():
                raise CircuitOpenError(self.peer, self.breaker.retry_after())
            try:
                response = await self._http.request(method, path, headers=merged, **kwargs)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                self.breaker.record_failure()
                last_exc = exc
            except BaseException:
                self.breaker.release()
                raise
            else:
                if response.status_code >= 500:
                    self.breaker.record_failure()
                else:
                    self.breaker.record_success()
                if response.status_code not in RETRY_STATUSES or attempt == attempts - 1:
                    return response
                await response.aclose()
            if attempt < attempts - 1:
                await self._sleep(self.retry.backoff(attempt, self._rng))
        assert last_exc is not None
        raise last_exc

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)
