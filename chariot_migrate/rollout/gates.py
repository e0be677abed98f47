"""Promotion gates (pure): evidence from a window + thresholds → promote / hold / rollback.

Flagger and Argo gate on metrics but never look at responses; Diffy looks at responses but never
moves traffic. A gate here reads both: the new side's errors and latency (against the SLO and
against legacy), the noise-adjusted match rate and new mismatch signatures from shadow
comparison, the dual-write backlog and dead letters, and the last data verification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .analysis import MetricCheck, MetricReading, metric_verdict

Decision = Literal["promote", "hold", "rollback"]


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: float = Field(300, gt=0, description="analysis window (only data since the last change counts)")
    min_samples: int = Field(100, ge=1, description="new-side requests (or shadow pairs at the shadow step)")
    max_error_rate: float = Field(0.01, ge=0, le=1)
    p95_within_slo: bool = True
    max_latency_ratio: float | None = Field(2.0, gt=0, description="new p95 ≤ ratio × legacy p95")
    latency_slack_ms: float = Field(10, ge=0, description="the ratio check fails only when new p95 is also this "
                                                          "much above legacy p95 (histogram resolution at low ms)")
    min_match_rate: float | None = Field(0.99, ge=0, le=1, description="noise-adjusted; None = not checked")
    min_pairs: int = Field(50, ge=0, description="shadow pairs needed before the match rate counts")
    no_new_signatures: bool = True
    max_backlog: int | None = Field(100, ge=0)
    max_dead_letters: int | None = Field(0, ge=0)
    require_verify_clean: bool = False
    approval: bool = Field(False, description="a human must `approve` this step before it is taken")

    def merged(self, override: dict | None) -> GateConfig:
        # Validated (model_copy(update=) would not): overrides come from routes.yaml.
        return GateConfig.model_validate({**self.model_dump(), **override}) if override else self


@dataclass(frozen=True)
class Evidence:
    """What the window shows. None = not measured (the gate is then not evaluated or holds)."""

    new_requests: int = 0
    new_errors: int = 0
    new_p95_ms: float | None = None
    legacy_p95_ms: float | None = None
    pairs: int = 0
    match_rate: float | None = None  # noise-adjusted
    new_signatures: tuple[str, ...] = ()  # real differences first seen in this window
    backlog: int | None = None
    dead_letters: int | None = None
    verify_clean: bool | None = None
    slo_p95_ms: float | None = None
    shadow_step: bool = False  # evaluating the shadow step: new side sees only copies
    # plan.analysis with a Prometheus: its metric checks replace the built-in request-window checks
    # (samples, error rate, p95) at traffic steps; each pair is (the check, what the query returned).
    prometheus: bool = False
    metrics: tuple[tuple[MetricCheck, MetricReading], ...] = ()


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    measured: str
    threshold: str
    on_fail: Decision  # what a failure of this check means

    def line(self) -> str:
        return f"{'ok ' if self.ok else 'FAIL'} {self.name}: {self.measured} (threshold {self.threshold})"


@dataclass(frozen=True)
class GateResult:
    decision: Decision
    reason: str
    checks: list[Check] = field(default_factory=list)

    def evidence(self) -> dict:
        return {"decision": self.decision, "reason": self.reason,
                "checks": [c.__dict__ for c in self.checks]}


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if unit == "%":
        return f"{v * 100:.2f}%"
    return f"{v:g}{unit}"


def metric_checks(e: Evidence) -> list[Check]:
    """plan.analysis metrics against their bounds; no data or no answer holds (never promotes)."""
    out = []
    for check, reading in e.metrics:
        ok, measured, on_fail = metric_verdict(check, reading)
        out.append(Check(check.name, ok, measured, check.bound(), on_fail))
    return out


def evaluate(g: GateConfig, e: Evidence, *, approved: bool = False) -> GateResult:
    checks: list[Check] = []
    if e.prometheus and not e.shadow_step:
        checks += metric_checks(e)
        return _decide(g, e, checks, approved)
    samples = e.pairs if e.shadow_step else e.new_requests
    enough = samples >= g.min_samples
    checks.append(Check("samples", enough, str(samples), f">= {g.min_samples}", "hold"))
    checks += _request_window_checks(g, e, enough)
    return _decide(g, e, checks, approved)


def _request_window_checks(g: GateConfig, e: Evidence, enough: bool) -> list[Check]:
    checks: list[Check] = []
    if e.new_requests:
        rate = e.new_errors / e.new_requests
        # With too few samples a breach is still certain once the errors alone exceed the budget
        # of a full sample: roll back at once rather than wait for more failures.
        certain = e.new_errors > g.max_error_rate * max(e.new_requests, g.min_samples)
        checks.append(Check("new-side error rate", rate <= g.max_error_rate, _fmt(rate, "%"),
                            f"<= {_fmt(g.max_error_rate, '%')}", "rollback" if enough or certain else "hold"))
    if g.p95_within_slo and e.slo_p95_ms is not None and e.new_p95_ms is not None:
        checks.append(Check("new p95 within SLO", e.new_p95_ms <= e.slo_p95_ms, _fmt(e.new_p95_ms, " ms"),
                            f"<= {_fmt(e.slo_p95_ms, ' ms')}", "rollback" if enough else "hold"))
    if g.max_latency_ratio is not None and e.new_p95_ms is not None and e.legacy_p95_ms:
        ratio = e.new_p95_ms / e.legacy_p95_ms
        ok = ratio <= g.max_latency_ratio or e.new_p95_ms - e.legacy_p95_ms <= g.latency_slack_ms
        checks.append(Check("p95 vs legacy", ok, f"{ratio:.2f}x ({_fmt(e.new_p95_ms)} vs {_fmt(e.legacy_p95_ms)} ms)",
                            f"<= {g.max_latency_ratio:g}x or within {g.latency_slack_ms:g} ms",
                            "rollback" if enough else "hold"))
    return checks


def _decide(g: GateConfig, e: Evidence, checks: list[Check], approved: bool) -> GateResult:
    if g.min_match_rate is not None:
        if e.pairs >= g.min_pairs and e.match_rate is not None:
            checks.append(Check("noise-adjusted match rate", e.match_rate >= g.min_match_rate,
                                _fmt(e.match_rate, "%"), f">= {_fmt(g.min_match_rate, '%')}", "hold"))
        elif e.shadow_step:
            checks.append(Check("noise-adjusted match rate", False, f"{e.pairs} pairs",
                                f">= {g.min_pairs} pairs", "hold"))
    if g.no_new_signatures:
        checks.append(Check("no new mismatch signature", not e.new_signatures,
                            ", ".join(e.new_signatures) or "none", "none", "hold"))
    if g.max_backlog is not None and e.backlog is not None:
        checks.append(Check("dual-write backlog", e.backlog <= g.max_backlog, str(e.backlog), f"<= {g.max_backlog}",
                            "hold"))
    if g.max_dead_letters is not None and e.dead_letters is not None:
        checks.append(Check("dead letters", e.dead_letters <= g.max_dead_letters, str(e.dead_letters),
                            f"<= {g.max_dead_letters}", "hold"))
    if g.require_verify_clean:
        checks.append(Check("data verify clean", e.verify_clean is True,
                            {True: "clean", False: "drift", None: "not run"}[e.verify_clean], "clean", "hold"))

    failed = [c for c in checks if not c.ok]
    breaches = [c for c in failed if c.on_fail == "rollback"]
    if breaches:
        return GateResult("rollback", "; ".join(c.line() for c in breaches), checks)
    if failed:
        return GateResult("hold", "; ".join(c.line() for c in failed), checks)
    if g.approval and not approved:
        return GateResult("hold", "waiting for approval (`chariot-migrate approve SERVICE`)", checks)
    return GateResult("promote", "all gates passed", checks)
