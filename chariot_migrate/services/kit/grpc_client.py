"""Resilient unary gRPC calls to a peer service: the kit's HTTP client rules, over gRPC.

A deadline on every attempt; retries (the service's :class:`~.client.RetryPolicy`, full jitter)
for the codes that mean "the peer did not answer" on read calls; the peer's circuit breaker
(``UNAVAILABLE``/``DEADLINE_EXCEEDED``/``INTERNAL``/``UNKNOWN`` count as failures, an answer with
any other code, e.g. ``INVALID_ARGUMENT``, means the peer is healthy); the internal token and
account as metadata. Synchronous: graph peers are read from a worker thread.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Literal

import grpc

from .breaker import BreakerConfig, CircuitBreaker, CircuitOpenError
from .client import RetryPolicy
from .grpc_auth import call_metadata

RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
FAILURE_CODES = RETRY_CODES | {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
Outcome = Literal["retry", "fail", "raise"]


def outcome(code: grpc.StatusCode, attempt: int, attempts: int) -> Outcome:
    """What to do with a call that ended with ``code`` (attempt counts from 0)."""
    if code in RETRY_CODES and attempt < attempts - 1:
        return "retry"
    return "fail" if code in FAILURE_CODES else "raise"


class GrpcPeer:
    """``GrpcPeer("127.0.0.1:9112", peer="asset-discovery", token=...).call(stub.Method, req, account)``."""

    def __init__(self, target: str, *, peer: str, token: Callable[[], str] | None, deadline_s: float = 5.0,
                 retry: RetryPolicy | None = None, breaker: CircuitBreaker | None = None,
                 breaker_config: BreakerConfig | None = None, channel: grpc.Channel | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: Callable[[float, float], float] = random.uniform) -> None:
        self.peer, self.deadline_s = peer, deadline_s
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker(peer, breaker_config)
        self.channel = channel or grpc.insecure_channel(target)
        self._token, self._sleep, self._rng = token, sleep, rng

    def close(self) -> None:
        self.channel.close()

    def call(self, method: Callable[..., Any], request: Any, account: str, *, idempotent: bool = True) -> Any:
        attempts = self.retry.attempts if idempotent else 1
        for attempt in range(attempts):
            if not self.breaker.allow():
                raise CircuitOpenError(self.peer, self.breaker.retry_after())
            try:
                answer = method(request, timeout=self.deadline_s, metadata=call_metadata(account, self._token))
            except grpc.RpcError as e:
                code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
                decision = outcome(code, attempt, attempts)
                if code in FAILURE_CODES:
                    self.breaker.record_failure()
                else:
                    self.breaker.record_success()
                if decision != "retry":
                    raise
                self._sleep(self.retry.backoff(attempt, self._rng))
                continue
            except BaseException:
                self.breaker.release()
                raise
            self.breaker.record_success()
            return answer
        raise AssertionError("unreachable: the last attempt returns or raises")
