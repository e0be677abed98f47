"""The migration plan (``plan:`` in routes.yaml) and step arithmetic (pure).

```yaml
plan:
  steps: [shadow, 1, 5, 25, 50, 100, retired]   # per service overridable
  interval_s: 60                                 # controller evaluation interval
  gates: {window_s: 300, min_samples: 100, max_error_rate: 0.01, min_match_rate: 0.99}
  step_gates: {"100": {approval: true}}         # per step label, merged over `gates`
  services:
    account: {gates: {min_samples: 200}, step_gates: {"50": {approval: true}}}
```
The phase order is each service's ``phase`` in ``services:``. Steps are labels: ``shadow``
(shadow 100 %, 0 % new), a number (percent of accounts on new) or ``retired``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..routes.models import RoutesFile
from .analysis import AnalysisConfig
from .gates import GateConfig
from .state import ServiceState
from .webhooks import Webhook, check_names
from .windows import DEFAULT_METRICS_URL

DEFAULT_STEPS = ["shadow", "1", "5", "25", "50", "100", "retired"]


def _norm_steps(v: list[Any]) -> list[str]:
    out = [str(s).strip() for s in v]
    last = -1.0
    for s in out:
        if s in ("shadow", "retired"):
            continue
        try:
            p = float(s)
        except ValueError:
            raise ValueError(f"step {s!r} must be 'shadow', a percentage or 'retired'") from None
        if not 0 < p <= 100 or p <= last:
            raise ValueError("percentage steps must rise, each in (0, 100]")
        last = p
    if "shadow" in out and out.index("shadow") != 0:
        raise ValueError("'shadow' can only be the first step")
    if "retired" in out and out[-1] != "retired":
        raise ValueError("'retired' can only be the last step")
    return out


class ServicePlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[str] | None = None
    gates: dict[str, Any] = Field(default_factory=dict)
    step_gates: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, v: list[Any] | None) -> list[str] | None:
        return _norm_steps(v) if v is not None else v


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[str] = Field(default_factory=lambda: list(DEFAULT_STEPS))
    interval_s: float = Field(60, gt=0)
    metrics_store: str = DEFAULT_METRICS_URL  # where proxies flush per-minute request aggregates
    gates: GateConfig = GateConfig()
    step_gates: dict[str, dict[str, Any]] = Field(default_factory=dict)
    services: dict[str, ServicePlan] = Field(default_factory=dict)
    costs: dict[str, Any] = Field(default_factory=dict)  # unit prices for phase-report estimates
    analysis: AnalysisConfig = AnalysisConfig()  # Prometheus metric checks (absent: the built-in store)
    webhooks: list[Webhook] = Field(default_factory=list)  # events out, pre-step hooks in

    @field_validator("webhooks")
    @classmethod
    def _hook_names(cls, v: list[Webhook]) -> list[Webhook]:
        check_names(v)
        return v

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, v: list[Any]) -> list[str]:
        return _norm_steps(v)

    @model_validator(mode="after")
    def _overrides_are_gates(self) -> Plan:
        # Gate overrides are partial GateConfigs: a typo (`aproval`) or a bad value must be refused
        # when the file loads, not merged silently into a gate that then never applies.
        def check(where: str, override: dict[str, Any], steps: list[str], step: str | None) -> None:
            if step is not None and step not in steps:
                raise ValueError(f"{where}: {step!r} is not a step of the plan ({', '.join(steps)})")
            try:
                GateConfig.model_validate({**self.gates.model_dump(), **override})
            except ValueError as e:
                err = e.errors()[0] if hasattr(e, "errors") else {"loc": (), "msg": str(e)}
                key = ".".join(str(x) for x in err["loc"])
                raise ValueError(f"{where}: {key}: {err['msg']}") from None

        for step, ov in self.step_gates.items():
            check(f"step_gates.{step}", ov, self.steps, step)
        for name, sp in self.services.items():
            steps = sp.steps or self.steps
            check(f"services.{name}.gates", sp.gates, steps, None)
            for step, ov in sp.step_gates.items():
                check(f"services.{name}.step_gates.{step}", ov, steps, step)
        return self

    @classmethod
    def from_routes(cls, cfg: RoutesFile) -> Plan:
        plan = cls.model_validate(cfg.plan or {})
        unknown = set(plan.services) - set(cfg.services)
        if unknown:
            raise ValueError(f"plan.services names unknown service(s): {', '.join(sorted(unknown))}")
        return plan

    def steps_for(self, service: str) -> list[str]:
        sp = self.services.get(service)
        return sp.steps if sp and sp.steps else self.steps

    def gates_for(self, service: str, step: str) -> GateConfig:
        sp = self.services.get(service)
        g = self.gates.merged(self.step_gates.get(step))
        if sp:
            g = g.merged(sp.gates).merged(sp.step_gates.get(step))
        return g


def current_index(state: ServiceState, steps: list[str]) -> int:
    """Index of the step the service stands on; -1 = before the first step (plain legacy)."""
    if state.stage == "retired" and "retired" in steps:
        return steps.index("retired")
    idx = -1
    for i, s in enumerate(steps):
        if s == "shadow":
            if state.shadow_bp > 0 or state.percent_bp > 0:
                idx = i
        elif s == "retired":
            continue
        elif state.percent_bp >= round(float(s) * 100):
            idx = i
    return idx


def step_label(state: ServiceState, steps: list[str]) -> str:
    i = current_index(state, steps)
    return steps[i] if i >= 0 else "legacy"


def next_step(state: ServiceState, steps: list[str]) -> str | None:
    i = current_index(state, steps)
    return steps[i + 1] if i + 1 < len(steps) else None


def safe_step(state: ServiceState, steps: list[str]) -> str:
    """Where a rollback goes: the previous percentage step, else 0 % (shadow stays on)."""
    i = current_index(state, steps)
    for j in range(i - 1, -1, -1):
        if steps[j] not in ("shadow", "retired"):
            return steps[j]
    return "0"


def phase_blockers(cfg: RoutesFile, states: dict[str, ServiceState], service: str) -> list[str]:
    """Earlier-phase services not yet at 100 % (or retired): they block leaving `shadow`."""
    me = cfg.services[service].phase
    out = []
    for name, svc in sorted(cfg.services.items(), key=lambda kv: kv[1].phase):
        if svc.phase >= me or name == service:
            continue
        s = states.get(name)
        if s is None or (s.percent_bp < 10_000 and s.stage != "retired"):
            pct = s.percent if s else 0
            out.append(f"{name} (phase {svc.phase}) is at {pct:g}%")
    return out
