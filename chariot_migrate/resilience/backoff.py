"""Retry decisions as pure functions: which methods may be retried, how long to wait (exponential
backoff with full jitter), and whether another attempt still fits the request's time budget."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# RFC 9110 calls PUT and DELETE idempotent too, but during a migration the two sides may not
# agree on that yet, so writes are retried only when a route opts in.
RETRY_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def is_retryable_method(method: str, retry_writes: bool = False) -> bool:
    return method in RETRY_SAFE_METHODS or (retry_writes and method in IDEMPOTENT_METHODS)


def backoff_delay(retry: int, base_s: float, max_s: float, rand: Callable[[], float] = random.random) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, min(max_s, base_s * 2**retry)].

    ``retry`` counts from 0 (the wait before the first retry)."""
    cap = min(max_s, base_s * (2 ** min(retry, 62)))
    return cap * rand()


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """A request's total time budget: retries never push the whole exchange past ``timeout_s``."""

    attempts: int  # retries after the first try (0 = no retries)
    min_attempt_s: float = 0.05  # an attempt with less time left than this is not worth starting

    def next_wait(self, retry: int, remaining_s: float, delay_s: float) -> float | None:
        """Seconds to sleep before retry number ``retry`` (0-based), or None: give up."""
        if retry >= self.attempts:
            return None
        if remaining_s - delay_s < self.min_attempt_s:
            return None
        return delay_s
