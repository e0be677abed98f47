"""Analysis against the user's Prometheus (``plan.analysis``), after Flagger's metric checks.

```yaml
plan:
  analysis:
    prometheus: http://prometheus.monitoring:9090   # absent: the built-in metrics store
    metrics:
      - {name: new-error-rate, query: "…{{service}}…[{{window}}]…", max: 0.01, on_fail: rollback}
```

Pure parts only: the config models, the query template, and the rule that turns a metric's
reading into a gate check. The HTTP edge that asks Prometheus is ``prometheus.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PLACEHOLDERS = ("service", "window", "step")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


class MetricCheck(BaseModel):
    """One query whose single value must stay within ``max`` and/or ``min``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1)
    query: str = Field(..., min_length=1)
    max: float | None = None
    min: float | None = None
    on_fail: Literal["rollback", "hold"] = "rollback"

    @field_validator("query")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        for m in _PLACEHOLDER.finditer(v):
            if m.group(1) not in PLACEHOLDERS:
                raise ValueError(f"unknown placeholder {{{{{m.group(1)}}}}} in the query "
                                 f"(known: {', '.join('{{' + p + '}}' for p in PLACEHOLDERS)})")
        return v

    @model_validator(mode="after")
    def _a_bound(self) -> MetricCheck:
        if self.max is None and self.min is None:
            raise ValueError(f"metric {self.name!r} needs max or min (the bound its value is checked against)")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"metric {self.name!r}: min {self.min:g} is above max {self.max:g}")
        return self

    def bound(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


class AnalysisConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prometheus: str | None = None  # base URL; None: the built-in metrics store (plan.metrics_store)
    timeout_s: float = Field(5.0, gt=0, description="per query")
    metrics: list[MetricCheck] = Field(default_factory=list)

    @field_validator("prometheus")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"prometheus {v!r} must be an http:// or https:// URL")
        return v.rstrip("/") if v else v

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisConfig:
        if self.metrics and not self.prometheus:
            raise ValueError("metrics need a prometheus URL to query (analysis.prometheus)")
        if self.prometheus and not self.metrics:
            # they replace the built-in request checks: none at all would promote on no evidence
            raise ValueError("a prometheus URL needs at least one metric check (analysis.metrics)")
        names = [m.name for m in self.metrics]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ValueError(f"metric name {dup!r} is used twice")
        return self

    @property
    def active(self) -> bool:
        return bool(self.prometheus)


def prom_duration(seconds: float) -> str:
    """A Prometheus range duration (whole seconds, at least 1 s)."""
    return f"{max(1, math.ceil(seconds))}s"


def render_query(query: str, *, service: str, window_s: float, step: str) -> str:
    values = {"service": service, "window": prom_duration(window_s), "step": step}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], query)


@dataclass(frozen=True)
class MetricReading:
    """One metric's query result, as plain values: ``value`` None with ``error`` None = no data."""

    name: str
    query: str  # as sent
    value: float | None = None
    error: str | None = None  # Prometheus did not answer, or answered with an error

    @property
    def no_data(self) -> bool:
        return self.error is None and (self.value is None or math.isnan(self.value))


def metric_verdict(check: MetricCheck, reading: MetricReading) -> tuple[bool, str, Literal["rollback", "hold"]]:
    """(ok, measured, on_fail) of one metric: no data and no answer hold, never promote."""
    if reading.error is not None:
        return False, f"no answer ({reading.error})", "hold"
    if reading.no_data or reading.value is None:
        return False, "no data", "hold"
    v = float(reading.value)
    ok = (check.max is None or v <= check.max) and (check.min is None or v >= check.min)
    return ok, f"{v:.6g}", check.on_fail
