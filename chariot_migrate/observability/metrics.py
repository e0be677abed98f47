"""Prometheus metrics of the toolkit's background machinery: shadow engine, dual-write replay
worker, Lambda runtime emulator, in-flight connections at the proxy.

They live in the default registry, so in the proxy they go to ``PROMETHEUS_MULTIPROC_DIR`` like
``proxy/metrics.py`` and the admin port's ``/metrics`` aggregates every worker. Gauges name their
multiprocess mode: ``livesum`` where each worker owns a share (in-flight connections), ``livemax``
where every worker samples the same global value (outbox backlog) and a sum would double count.

Label values are bounded: services and route ids come from routes.yaml, functions from the
function registry, kinds and results from small fixed sets.

The metrics are created on first use, not at import: prometheus-client picks its (multiprocess
or in-memory) value class when the first metric is built, and modules importing this one are
loaded by the proxy before it sets ``PROMETHEUS_MULTIPROC_DIR``.
"""

from __future__ import annotations

from typing import Any

from .latency import LATENCY_BUCKETS

# The request-latency buckets (same as http_request_duration_seconds and the gates' windows).
BUCKETS = LATENCY_BUCKETS
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

_defined: dict[str, Any] = {}


def _define() -> dict[str, Any]:
    from prometheus_client import Counter, Gauge, Histogram  # not at import: see the module doc

    # ---- proxy connections ---------------------------------------------------------------------
    # connection_type: client (requests in flight from clients), upstream_legacy / upstream_new
    # (requests in flight to a side). The services export the same family with connection_type=http.
    ACTIVE_CONNECTIONS = Gauge("active_connections_total", "Connections (requests) in flight by type",
                               ["service", "connection_type"], multiprocess_mode="livesum")

    # ---- shadow comparison ---------------------------------------------------------------------
    # result: match | mismatch | noise (every differing path also differed A/A) | error (a side failed)
    SHADOW_COMPARISONS = Counter("shadow_comparisons_total", "Shadow comparisons by outcome",
                                 ["service", "route", "result"])
    SHADOW_MISMATCHES = Counter("shadow_mismatches_total", "Differences found by shadow comparisons, by kind",
                                ["service", "route", "kind"])
    # reason: queue_full | closed (never compared) | store_error (compared, record lost)
    SHADOW_DROPS = Counter("shadow_dropped_total", "Shadow comparisons dropped", ["service", "reason"])
    SHADOW_LATENCY = Histogram("shadow_compare_duration_seconds", "Shadow copy + compare time per job",
                               ["service"], buckets=BUCKETS)

    # ---- dual write ----------------------------------------------------------------------------
    # direction: to_new | to_legacy (the replay's target side)
    DUAL_WRITE_PENDING = Gauge("dual_write_outbox_pending", "Undelivered replay records (not dead), sampled",
                               ["service", "direction"], multiprocess_mode="livemax")
    DUAL_WRITE_DEAD = Gauge("dual_write_dead_letters", "Dead-lettered replay records, sampled",
                            ["service", "direction"], multiprocess_mode="livemax")
    DUAL_WRITE_OLDEST = Gauge("dual_write_oldest_age_seconds", "Age of the oldest undelivered record, sampled",
                              ["service"], multiprocess_mode="livemax")
    # result: delivered | retry (will be retried) | dead (moved to the dead letters)
    DUAL_WRITE_REPLAYS = Counter("dual_write_replays_total", "Replay delivery attempts by result",
                                 ["service", "direction", "result"])
    DUAL_WRITE_RETRIES = Counter("dual_write_retries_total", "Failed replay attempts that will be retried",
                                 ["service", "direction"])
    DUAL_WRITE_DEAD_LETTERED = Counter("dual_write_dead_lettered_total", "Replay records moved to the dead letters",
                                       ["service", "direction"])
    DUAL_WRITE_LAG = Histogram("dual_write_replay_lag_seconds", "Time from the primary's answer to delivery",
                               ["service", "direction"], buckets=LAG_BUCKETS)

    # ---- Lambda runtime emulator ----------------------------------------------------------------
    LAMBDA_INVOCATIONS = Counter("lambda_invocations_total", "Emulated Lambda invocations", ["function", "cold"])
    LAMBDA_DURATION = Histogram("lambda_invocation_duration_seconds", "Handler duration of emulated invocations",
                                ["function"], buckets=BUCKETS)
    LAMBDA_INIT = Histogram("lambda_init_duration_seconds", "Init (cold start) duration of emulated functions",
                            ["function"], buckets=BUCKETS)
    # kind: error (handler raised / bad result) | timeout | crash (worker died)
    LAMBDA_ERRORS = Counter("lambda_function_errors_total", "Emulated invocations that failed", ["function", "kind"])
    return {k: v for k, v in locals().items() if k.isupper()}


def __getattr__(name: str) -> Any:  # PEP 562: metrics are built on first access
    if not _defined:
        _defined.update(_define())
    try:
        return _defined[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def direction(target: str) -> str:
    """Label value of a replay target side."""
    return "to_new" if target == "new" else "to_legacy"
