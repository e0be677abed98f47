"""The Prometheus edge: instant queries on the standard HTTP API (``GET /api/v1/query``).

Returns plain values (``MetricReading``) and never raises for what Prometheus says or fails to
say: a query that cannot be answered is a reading with an ``error``, which the gate holds on.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from .analysis import MetricReading


def _one_value(name: str, query: str, data: dict) -> MetricReading:
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        return MetricReading(name, query, _num(result[1]))
    if kind == "vector" and isinstance(result, list):
        if not result:
            return MetricReading(name, query)  # no data
        if len(result) > 1:
            return MetricReading(name, query, error=f"the query returned {len(result)} series; aggregate it to one "
                                                   "(e.g. sum(...))")
        return MetricReading(name, query, _num(result[0].get("value", [None, None])[1]))
    return MetricReading(name, query, error=f"unsupported result type {kind!r} (use an instant vector or scalar)")


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


class PrometheusClient:
    def __init__(self, url: str, *, timeout_s: float = 5.0, client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout_s)

    def query(self, name: str, query: str, at: float | None = None) -> MetricReading:
        params = {"query": query}
        if at is not None:
            params["time"] = f"{at:.3f}"
        try:
            r = self._client.get(f"{self.url}/api/v1/query", params=params)
        except httpx.HTTPError as e:
            return MetricReading(name, query, error=f"Prometheus at {self.url} did not answer: "
                                                    f"{type(e).__name__}: {e}".rstrip(": "))
        try:
            doc = r.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return MetricReading(name, query, error=f"Prometheus at {self.url} answered HTTP {r.status_code} "
                                                    "without a JSON body")
        if doc.get("status") != "success":
            return MetricReading(name, query, error=f"Prometheus refused the query: {doc.get('errorType', 'error')}: "
                                                    f"{doc.get('error', r.status_code)}")
        return _one_value(name, query, doc.get("data") or {})

    def close(self) -> None:
        self._client.close()
