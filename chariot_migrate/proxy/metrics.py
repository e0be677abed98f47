"""Proxy Prometheus metrics. Workers write to PROMETHEUS_MULTIPROC_DIR; the admin process
collects across them, so counts are right with any number of workers."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ..observability.latency import LATENCY_BUCKETS

# From 1 ms (the proxy's overhead lives below 5 ms); the gates' windows use the same edges.
BUCKETS = LATENCY_BUCKETS

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
FAILOVERS = Counter("proxy_failovers_total",
                    "Safe requests one side failed, served by the other (reason legacy_*: legacy failed, new served)",
                    ["service", "reason"])
RATE_LIMITED = Counter("proxy_rate_limited_total", "Requests refused with 429", ["service", "scope"])
BFF_PARTS = Counter("proxy_bff_parts_total", "BFF sub-requests: aggregate parts (ok, failed, cached) and NDJSON pages",
                    ["path", "part", "result"])
RATE_LIMIT_STORE_ERRORS = Counter("proxy_rate_limit_store_errors_total",
                                  "Shared rate-limit store failures (requests let through)", [])
AUTH_FAILURES = Counter("proxy_auth_failures_total", "Requests refused with 401 at the edge", ["reason"])
HEALTH_CHECKS = Counter("proxy_health_checks_total", "Active health checks of upstream instances",
                        ["service", "result"])


class RequestMetrics:
    """Request metrics aggregated in memory and applied to Prometheus in batches.

    In multiprocess mode every ``inc``/``observe`` is a locked write into a memory-mapped file;
    per request that cost more than routing. Here a request only bumps a local dict; ``flush()``
    (twice a second, and at shutdown) applies one increment per label set and bucket.
    """

    def __init__(self) -> None:
        self._dur: dict[tuple[str, ...], list] = {}  # key -> [count per bucket..., sum]
        self._req: dict[tuple[str, ...], int] = {}
        self._bounds = BUCKETS
        self._children: dict[tuple[str, ...], object] = {}

    def observe(self, service: str, method: str, endpoint: str, status: int, side: str, decision: str,
                seconds: float) -> None:
        key = (service, method, endpoint, str(status), side)
        acc = self._dur.get(key)
        if acc is None:
            acc = self._dur[key] = [0] * (len(self._bounds) + 1) + [0.0]
        for i, bound in enumerate(self._bounds):
            if seconds <= bound:
                acc[i] += 1
                break
        else:
            acc[len(self._bounds)] += 1
        acc[-1] += seconds
        rk = (service, side, decision)
        self._req[rk] = self._req.get(rk, 0) + 1

    def flush(self) -> None:
        dur, self._dur = self._dur, {}
        req, self._req = self._req, {}
        for key, acc in dur.items():
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = REQUEST_DURATION.labels(*key)
            buckets = getattr(child, "_buckets", None)
            if buckets is not None and len(buckets) == len(acc) - 1:
                for i, n in enumerate(acc[:-1]):
                    if n:
                        buckets[i].inc(n)
                child._sum.inc(acc[-1])  # type: ignore[attr-defined]  # prometheus_client internals, checked above
            else:  # a prometheus_client whose internals differ: fall back to exact observations
                for i, n in enumerate(acc[:-1]):
                    v = self._bounds[i] if i < len(self._bounds) else self._bounds[-1] * 2
                    for _ in range(n):
                        child.observe(v)  # type: ignore[attr-defined]  # a Histogram child; typed as the metric base
        for rk, n in req.items():
            REQUESTS.labels(*rk).inc(n)


def split_families(states) -> list:
    """The target split (intent, from the state store) as metric families: what the operators and
    the controller asked for, next to the observed share. ``states``: service -> ServiceState."""
    from prometheus_client.core import GaugeMetricFamily

    from ..rollout.state import STAGES

    target = GaugeMetricFamily("migration_target_percent", "Share of accounts the rollout state sends to the new "
                               "side (the target split)", labels=["service"])
    shadow = GaugeMetricFamily("migration_shadow_percent", "Share of accounts whose safe requests are shadowed",
                               labels=["service"])
    stage = GaugeMetricFamily("migration_stage", "Rollout stage of each service: 1 for the current stage, 0 otherwise",
                              labels=["service", "stage"])
    for name in sorted(states):
        s = states[name]
        target.add_metric([name], s.percent)
        shadow.add_metric([name], s.shadow_percent)
        for st in STAGES:
            stage.add_metric([name, st], 1.0 if s.stage == st else 0.0)
    return [target, shadow, stage]


def split_exposition(states) -> bytes:
    """``split_families`` in the Prometheus text format (appended to the admin /metrics)."""
    from prometheus_client import CollectorRegistry, generate_latest

    class _Split:
        def collect(self):
            return split_families(states)

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Split())
    return generate_latest(reg)
