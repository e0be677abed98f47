"""Chariot-agnostic resilience primitives (toolkit core): circuit breaker, backoff."""

from .backoff import RetryBudget, backoff_delay, is_retryable_method
from .breaker import BreakerConfig, CircuitBreaker, CircuitOpenError

__all__ = ["BreakerConfig", "CircuitBreaker", "CircuitOpenError", "RetryBudget", "backoff_delay",
           "is_retryable_method"]
