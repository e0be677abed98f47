"""Prometheus metrics of a service; multiprocess-safe when PROMETHEUS_MULTIPROC_DIR is set.

In multiprocess mode prometheus-client keeps values in per-process files (its value class is
chosen at import time from the env var); the exposition then aggregates them with a
``MultiProcessCollector`` instead of reading this process's registry.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ...observability.latency import LATENCY_BUCKETS  # the proxy's buckets, from 1 ms

UNMATCHED_ENDPOINT = "<unmatched>"  # keeps label cardinality bounded for 404 scans


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


class ServiceMetrics:
    """The metric families every service exports. One instance per app."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.multiprocess = multiprocess_dir() is not None
        # Multiprocess metrics live in files, not in a registry; single-process ones get a
        # private registry so several apps (tests) in one process do not collide.
        self._registry = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        self.request_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template",
            ["service", "method", "endpoint", "status_code"],
            buckets=LATENCY_BUCKETS,
            registry=self._registry,
        )
        gauge_kwargs: dict[str, Any] = {"multiprocess_mode": "livesum"} if self.multiprocess else {}
        self.active_connections = Gauge(
            "active_connections_total",
            "Open connections by type (http = in-flight requests)",
            ["service", "connection_type"],
            registry=self._registry,
            **gauge_kwargs,
        )

        # gRPC streams (asset-discovery's DiscoverAssets): what was sent, and streams the client
        # cancelled, so a cancelled stream visibly stops producing.
        self.grpc_messages_sent = Counter(
            "grpc_server_msg_sent", "Messages sent on server streams", ["service", "method"],
            registry=self._registry)
        self.grpc_streams_cancelled = Counter(
            "grpc_server_streams_cancelled", "Server streams cancelled before their end (client cancel, deadline, shutdown)",
            ["service", "method"], registry=self._registry)

    def observe_request(self, method: str, endpoint: str, status_code: int, seconds: float) -> None:
        self.request_duration.labels(self.service, method, endpoint, str(status_code)).observe(seconds)

    def connection_opened(self, connection_type: str) -> None:
        self.active_connections.labels(self.service, connection_type).inc()

    def connection_closed(self, connection_type: str) -> None:
        self.active_connections.labels(self.service, connection_type).dec()

    def exposition(self) -> tuple[bytes, str]:
        registry = self._registry
        if registry is None:  # multiprocess: every worker's samples, read from the shared folder
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
