"""Moved to the toolkit core (``chariot_migrate.resilience.breaker``) so the proxy can use it
without importing ``services``; re-exported here so the kit keeps its import path."""

from chariot_migrate.resilience.breaker import BreakerConfig, CircuitBreaker, CircuitOpenError, State

__all__ = ["BreakerConfig", "CircuitBreaker", "CircuitOpenError", "State"]
