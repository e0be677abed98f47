"""Proxy Prometheus metrics. Workers write to PROMETHEUS_MULTIPROC_DIR; the admin process
collects across them, so counts are right with any number of workers."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# The design seed's latency buckets.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_DURATION = Histogram(
    "http_request_duration_seconds", "Proxied request latency as the client saw it",
    ["service", "method", "endpoint", "status_code", "side"], buckets=BUCKETS,
)
REQUESTS = Counter("proxy_requests_total", "Requests by service, side and how the side was chosen",
                   ["service", "side", "decision"])
UPSTREAM_ERRORS = Counter("proxy_upstream_errors_total", "Upstream failures (no HTTP response)",
                          ["service", "side", "kind"])
REJECTED = Counter("proxy_rejected_requests_total", "Requests refused before any upstream", ["reason"])
UNBUCKETED = Counter("proxy_unbucketed_requests_total", "Requests with no bucket key (random bucket)", ["service"])
RELOADS = Counter("proxy_config_reloads_total", "routes.yaml reload attempts", ["result"])
STATE_ERRORS = Counter("proxy_state_store_errors_total", "Failed polls of the rollout state store", [])
# Edge resilience and security (proxy/resilience.py, ratelimit.py, auth.py, edge.py).
CIRCUIT_STATE = Gauge("proxy_circuit_state", "Circuit breaker per upstream instance: 0 closed, 1 half-open, 2 open",
                      ["service", "instance"], multiprocess_mode="livemax")
RETRIES = Counter("proxy_upstream_retries_total", "Upstream attempts after the first", ["service", "side"])
FAILOVERS = Counter("proxy_failovers_total", "Safe requests the new side failed, served from legacy",
                    ["service", "reason"])
RATE_LIMITED = Counter("proxy_rate_limited_total", "Requests refused with 429", ["service", "scope"])
RATE_LIMIT_STORE_ERRORS = Counter("proxy_rate_limit_store_errors_total",
                                  "Shared rate-limit store failures (requests let through)", [])
AUTH_FAILURES = Counter("proxy_auth_failures_total", "Requests refused with 401 at the edge", ["reason"])
HEALTH_CHECKS = Counter("proxy_health_checks_total", "Active health checks of upstream instances",
                        ["service", "result"])


class RequestMetrics:
    """Caches label children: ``labels()`` is the expensive part of an observation."""

    def __init__(self) -> None:
        self._dur: dict[tuple[str, ...], object] = {}
        self._req: dict[tuple[str, ...], object] = {}

    def observe(self, service: str, method: str, endpoint: str, status: int, side: str, decision: str,
                seconds: float) -> None:
        key = (service, method, endpoint, str(status), side)
        h = self._dur.get(key)
        if h is None:
            h = self._dur[key] = REQUEST_DURATION.labels(*key)
        h.observe(seconds)
        rk = (service, side, decision)
        c = self._req.get(rk)
        if c is None:
            c = self._req[rk] = REQUESTS.labels(*rk)
        c.inc()
