"""The rollout controller: a small state machine over plan steps, after Flagger/Argo Rollouts.

Each tick reads the service's live state fresh (so a human's `shift`/`rollback` simply becomes the
new starting point — the human wins), gathers the window's evidence since the last change,
evaluates the gates for the next step and promotes, holds or rolls back. Every decision that
changes something, and every change of hold reason, goes to the audit history with its evidence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from . import state as st
from .evidence import EvidenceSource
from .gates import GateResult, evaluate
from .operations import Operations, initial_state
from .plan import Plan, current_index, next_step, phase_blockers, safe_step, step_label

ACTOR = "rollout-controller"


@dataclass(frozen=True)
class Tick:
    service: str
    step: str  # where the service stood
    target: str | None  # the step evaluated (next), None when the plan is complete
    decision: str  # promote | hold | rollback | done
    reason: str
    result: GateResult | None = None
    applied: str | None = None  # the step moved to, if any

    def line(self) -> str:
        moved = f" → {self.applied}" if self.applied else ""
        return f"{self.service}: {self.step}{moved} [{self.decision}] {self.reason}"


class RolloutController:
    def __init__(self, ops: Operations, plan: Plan, evidence: EvidenceSource, *,
                 clock: Callable[[], float] = time.time, actor: str = ACTOR) -> None:
        if ops.config is None:
            raise ValueError("the rollout controller needs a valid routes.yaml")
        self.ops, self.plan, self.evidence, self.clock, self.actor = ops, plan, evidence, clock, actor
        self._last_hold: dict[str, str] = {}

    def _state(self, service: str) -> st.ServiceState:
        return self.ops.store.get(service) or initial_state(service, self.ops.config.services.get(service))

    def evaluate(self, service: str, *, force_phase: bool = False) -> Tick:
        """What the next step's gates say now — no change applied (used by `plan`)."""
        cfg = self.ops.config
        state = self._state(service)
        steps = self.plan.steps_for(service)
        here = step_label(state, steps)
        nxt = next_step(state, steps)
        if nxt is None:
            return Tick(service, here, None, "done", "plan complete")
        if nxt == "shadow":
            return Tick(service, here, nxt, "promote", "shadowing needs no evidence")
        leaving_shadow = current_index(state, steps) <= (steps.index("shadow") if "shadow" in steps else -1)
        if leaving_shadow and not force_phase:
            blockers = phase_blockers(cfg, self.ops.store.all(), service)
            if blockers:
                return Tick(service, here, nxt, "hold", "earlier phase unfinished: " + "; ".join(blockers))
        gates = self.plan.gates_for(service, nxt)
        since = max(state.updated_at or 0.0, self.clock() - gates.window_s)
        svc = cfg.services[service]
        ev = self.evidence.gather(service, since, slo_p95_ms=svc.slo.p95_ms, shadow_step=here in ("legacy", "shadow"))
        result = evaluate(gates, ev, approved=state.approved_step == nxt)
        decision = result.decision
        if decision == "rollback" and here in ("legacy", "shadow"):
            decision = "hold"  # nothing to roll back: no account is on the new side
        return Tick(service, here, nxt, decision, result.reason, result)

    def tick(self, service: str, *, force_phase: bool = False) -> Tick:
        t = self.evaluate(service, force_phase=force_phase)
        evidence = t.result.evidence() if t.result else {"reason": t.reason}
        if t.decision == "promote" and t.target:
            self.ops.apply(service, lambda s: st.apply_step(s, t.target), actor=self.actor,
                            action=f"promote → {t.target}", reason=t.reason, evidence=evidence)
            self._last_hold.pop(service, None)
            return Tick(t.service, t.step, t.target, t.decision, t.reason, t.result, applied=t.target)
        if t.decision == "rollback":
            state = self._state(service)
            to = safe_step(state, self.plan.steps_for(service))
            self.ops.apply(service, lambda s: st.shift(s, float(to)), actor=self.actor,
                            action=f"rollback → {to}%", reason=t.reason, evidence=evidence)
            self._last_hold.pop(service, None)
            return Tick(t.service, t.step, t.target, t.decision, t.reason, t.result, applied=f"{to}")
        if t.decision == "hold" and self._last_hold.get(service) != t.reason:
            # Record a hold once per distinct reason, not every interval.
            self._last_hold[service] = t.reason
            self.ops.apply(service, lambda s: s, actor=self.actor, action=f"hold at {t.step}", reason=t.reason,
                            evidence=evidence)
        return t

    def run(self, service: str, *, interval_s: float | None = None, watch: bool = False,
            on_tick: Callable[[Tick], None] | None = None, max_ticks: int | None = None,
            sleep: Callable[[float], None] = time.sleep) -> Tick:
        """Tick every interval until the plan is complete (or forever with ``watch``)."""
        interval = interval_s or self.plan.interval_s
        n = 0
        while True:
            t = self.tick(service)
            n += 1
            if on_tick:
                on_tick(t)
            if (t.decision == "done" and not watch) or (max_ticks and n >= max_ticks):
                return t
            sleep(interval)
