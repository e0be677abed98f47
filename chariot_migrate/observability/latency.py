"""The one set of request-latency histogram buckets (seconds), shared by the proxy's and the
services' ``http_request_duration_seconds``, the toolkit's other duration histograms and the gates'
request windows (``rollout.windows.BOUNDS_MS``), so that the gates' p95 and Grafana's
``histogram_quantile`` read the same bucket edges. They start at 1 ms: the proxy's own overhead
lives below 5 ms. No imports: safe to load before PROMETHEUS_MULTIPROC_DIR is set."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
