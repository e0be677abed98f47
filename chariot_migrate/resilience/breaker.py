"""Circuit breaker as a small pure state machine (no IO, clock injected): the proxy (per upstream
instance) and the service kit (per peer) both use it.

closed ──(N consecutive failures, or failure rate ≥ threshold over the last `window` calls
          with at least `min_calls`)──▶ open ──(cooldown elapsed)──▶ half_open
half_open ──(probe succeeds `success_threshold` times)──▶ closed;  ──(probe fails)──▶ open
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 5  # consecutive failures that open the circuit
    failure_rate: float = 0.5  # or: this failure rate over the window …
    window: int = 20  # … of the last `window` calls …
    min_calls: int = 10  # … once at least this many calls were seen
    cooldown: float = 10.0  # seconds open before a probe is allowed
    half_open_max_calls: int = 1  # probes in flight at once
    success_threshold: int = 1  # successful probes needed to close

    def __post_init__(self) -> None:
        if (
            self.failure_threshold < 1
            or self.window < 1
            or self.min_calls < 1
            or self.half_open_max_calls < 1
        ):
            raise ValueError("breaker thresholds must be >= 1")
        if not 0 < self.failure_rate <= 1:
            raise ValueError("failure_rate must be in (0, 1]")


class CircuitOpenError(Exception):
    """Raised by callers when ``allow()`` refuses: fail fast instead of waiting on a sick peer."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry in {retry_after:.1f}s")
        self.name = name
        self.retry_after = retry_after


class CircuitBreaker:
    def __init__(
        self,
        name: str = "default",
        config: BreakerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock
        self.state: State = "closed"
        self._consecutive_failures = 0
        self._outcomes: deque[bool] = deque(maxlen=self.config.window)  # True = failure
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self.transitions: list[tuple[State, State]] = []
        # Called after every state change (e.g. to set a metrics gauge); must not raise.
        self.on_transition: Callable[[State, State], None] | None = None
        self.forced = False  # True while a change told by someone else (force_*) is applied

    # -- changes decided elsewhere (e.g. another proxy worker's breaker for the same instance) --
    def force_open(self) -> None:
        """Open now (a full cooldown from now), as if this breaker had seen the failures."""
        self.forced = True
        try:
            self._probes_in_flight = 0
            self._open()
        finally:
            self.forced = False

    def force_close(self) -> None:
        self.forced = True
        try:
            self._move("closed")
        finally:
            self.forced = False

    # -- queries --------------------------------------------------------------------------
    def retry_after(self) -> float:
        if self.state != "open":
            return 0.0
        return max(0.0, self._opened_at + self.config.cooldown - self._clock())

    def available(self) -> bool:
        """Would ``allow()`` say yes now? Unlike ``allow()`` it reserves nothing (for load balancers)."""
        if self.state == "open":
            return self._clock() - self._opened_at >= self.config.cooldown
        if self.state == "half_open":
            return self._probes_in_flight < self.config.half_open_max_calls
        return True

    def allow(self) -> bool:
        """May a call go out now? In half-open, a True answer reserves a probe slot."""
        if self.state == "open":
            if self._clock() - self._opened_at < self.config.cooldown:
                return False
            self._move("half_open")
        if self.state == "half_open":
            if self._probes_in_flight >= self.config.half_open_max_calls:
                return False
            self._probes_in_flight += 1
            return True
        return True

    # -- outcomes -------------------------------------------------------------------------
    def record_success(self) -> None:
        if self.state == "half_open":
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            self._probe_successes += 1
            if self._probe_successes >= self.config.success_threshold:
                self._move("closed")
            return
        self._consecutive_failures = 0
        self._outcomes.append(False)

    def record_failure(self) -> None:
        if self.state == "half_open":
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            self._open()
            return
        if self.state == "open":
            return
        self._consecutive_failures += 1
        self._outcomes.append(True)
        if self._consecutive_failures >= self.config.failure_threshold or self._rate_exceeded():
            self._open()

    def release(self) -> None:
        """A permitted call ended without a verdict (e.g. cancelled): free its probe slot."""
        if self.state == "half_open":
            self._probes_in_flight = max(0, self._probes_in_flight - 1)

    # -- internals ------------------------------------------------------------------------
    def _rate_exceeded(self) -> bool:
        n = len(self._outcomes)
        return n >= self.config.min_calls and sum(self._outcomes) / n >= self.config.failure_rate

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move("open")

    def _move(self, to: State) -> None:
        if to == self.state:
            return
        self.transitions.append((self.state, to))
        frm, self.state = self.state, to
        if to == "closed":
            self._consecutive_failures = 0
            self._outcomes.clear()
        if to in ("closed", "half_open"):
            self._probes_in_flight = 0
            self._probe_successes = 0
        if self.on_transition is not None:
            self.on_transition(frm, to)
