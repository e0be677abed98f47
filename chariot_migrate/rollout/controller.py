"""The rollout controller: a small state machine over plan steps, after Flagger/Argo Rollouts.

Each tick reads the service's live state fresh (so a human's `shift`/`rollback` simply becomes the
new starting point — the human wins), gathers the window's evidence since the last change of the
traffic split, evaluates the gates for the next step and promotes, holds or rolls back. A change
is applied only if the state is still the one evaluated (compare-and-set on the version): a
human's change made meanwhile is never overwritten. Every change, and every new hold reason
(the set of failing gates), goes to the audit history with its evidence.

After its own rollback the controller does not promote that service again by itself (no
flapping): a human lifts the halt with `advance`, `approve` or a `shift`. It still rolls back
further while the gates keep failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from . import state as st
from .evidence import EvidenceSource
from .gates import Decision, GateResult, evaluate
from .operations import OperationError, Operations, initial_state
from .plan import Plan, current_index, next_step, phase_blockers, safe_step, step_label
from .state import HistoryEntry
from .webhooks import pre_step_checks

if TYPE_CHECKING:
    from ..routes.models import RoutesFile

ACTOR = "rollout-controller"
HISTORY_SCAN = 200  # history entries read per evaluation to find the last traffic change
_TRAFFIC_KEYS = ("percent_bp", "shadow_bp", "stage")


class Superseded(Exception):
    """The state changed between evaluation and apply (a human acted): nothing was applied."""


@dataclass(frozen=True)
class Tick:
    service: str
    step: str  # where the service stood
    target: str | None  # the step evaluated (next), None when the plan is complete
    decision: str  # promote | hold | rollback | done
    reason: str
    result: GateResult | None = None
    applied: str | None = None  # the step moved to, if any
    version: int = 0  # state version evaluated (compare-and-set on apply)
    since: float = 0.0  # start of the evidence window
    forced_past: list[str] = field(default_factory=list)  # phase blockers a --force ignored

    def line(self) -> str:
        moved = f" → {self.applied}" if self.applied else ""
        return f"{self.service}: {self.step}{moved} [{self.decision}] {self.reason}"

    def hold_key(self) -> str:
        """What identifies a hold reason: the failing gates, not their ever-changing measured values."""
        if self.result is None:
            return f"{self.decision}:{self.target}:{self.reason.split(':', 1)[0]}"
        failing = sorted(c.name for c in self.result.checks if not c.ok) or [self.reason]
        return f"{self.decision}:{self.target}:" + "|".join(failing)


def changed_traffic(h: HistoryEntry) -> bool:
    return any(h.before.get(k) != h.after.get(k) for k in _TRAFFIC_KEYS)


def last_traffic_change(history: list[HistoryEntry], *, complete: bool) -> float:
    """When the split last changed (oldest first ``history``). When the change is older than the
    entries read (``complete`` False), the oldest entry's time is a safe, later stand-in."""
    for h in reversed(history):
        if changed_traffic(h):
            return h.at
    if history and not complete:
        return history[0].at
    return 0.0


def halting_rollback(history: list[HistoryEntry], actor: str = ACTOR) -> HistoryEntry | None:
    """The controller's own rollback, if nothing but its holds and rollbacks came after it."""
    for h in reversed(history):
        if h.actor == actor and h.action.startswith("hold"):
            continue
        if h.actor == actor and h.action.startswith("rollback"):
            return h
        return None
    return None


class RolloutController:
    def __init__(self, ops: Operations, plan: Plan, evidence: EvidenceSource, *,
                 clock: Callable[[], float] = time.time, actor: str = ACTOR) -> None:
        if ops.config is None:
            raise ValueError("the rollout controller needs a valid routes.yaml")
        self.ops, self.plan, self.evidence, self.clock, self.actor = ops, plan, evidence, clock, actor
        self._from_pct: float | None = None  # the tick's split before any change (for the events)

    @property
    def _routes(self) -> RoutesFile:
        cfg = self.ops.config
        if cfg is None:  # checked at construction; a reload never clears it
            raise ValueError("the rollout controller needs a valid routes.yaml")
        return cfg

    def _state(self, service: str) -> st.ServiceState:
        return self.ops.store.get(service) or initial_state(service, self._routes.services.get(service))

    def evaluate(self, service: str, *, force_phase: bool = False, resume: bool = False) -> Tick:
        """What the next step's gates say now — no change applied (used by `plan`)."""
        cfg = self._routes
        state = self._state(service)
        hist = self.ops.store.history(service, HISTORY_SCAN)
        steps = self.plan.steps_for(service)
        here = step_label(state, steps)
        nxt = next_step(state, steps)
        v = state.version
        if nxt is None:
            return Tick(service, here, None, "done", "plan complete", version=v)
        forced: list[str] = []
        leaving_shadow = current_index(state, steps) <= (steps.index("shadow") if "shadow" in steps else -1)
        if leaving_shadow and nxt != "shadow":
            blockers = phase_blockers(cfg, self.ops.store.all(), service)
            if blockers and not force_phase:
                return Tick(service, here, nxt, "hold", "earlier phase unfinished: " + "; ".join(blockers), version=v)
            forced = blockers
        gates = self.plan.gates_for(service, nxt)
        now = self.clock()
        since = max(last_traffic_change(hist, complete=len(hist) < HISTORY_SCAN), now - gates.window_s)
        if nxt == "shadow":  # copies only: nothing to measure yet, at most an approval to wait for
            if gates.approval and state.approved_step != nxt:
                return Tick(service, here, nxt, "hold", "waiting for approval (`chariot-migrate approve SERVICE`)",
                            version=v, since=since)
            return Tick(service, here, nxt, "promote", "shadowing needs no evidence", version=v, since=since)
        svc = cfg.services[service]
        ev = self.evidence.gather(service, since, slo_p95_ms=svc.slo.p95_ms, shadow_step=here in ("legacy", "shadow"),
                                  step=nxt)
        result = evaluate(gates, ev, approved=state.approved_step == nxt)
        decision, reason = result.decision, result.reason
        if decision == "rollback" and here in ("legacy", "shadow"):
            decision = "hold"  # nothing to roll back: no account is on the new side
        halt = halting_rollback(hist, self.actor)
        if decision == "promote" and halt is not None and not resume:
            decision = "hold"
            reason = (f"halted after the automatic rollback at {time.strftime('%H:%M:%S', time.localtime(halt.at))} "
                      f"({halt.reason}); fix the new side, then `advance` or `approve` {service} to resume")
        return Tick(service, here, nxt, decision, reason, result, version=v, since=since, forced_past=forced)

    def _apply(self, t: Tick, change: Callable[[st.ServiceState], st.ServiceState], *, action: str, reason: str,
               evidence: dict, force: bool = False) -> None:
        def guarded(s: st.ServiceState) -> st.ServiceState:
            if s.version != t.version:
                raise Superseded
            return change(s)

        self.ops.apply(t.service, guarded, actor=self.actor, action=action, reason=reason, evidence=evidence,
                       force=force)

    def _pct(self, step: str | None) -> float | None:
        """The percent of accounts on new at a step label (None: retired / unknown)."""
        if step in ("legacy", "shadow"):
            return 0.0
        try:
            return float(step) if step is not None else None
        except ValueError:
            return 100.0 if step == "retired" else None

    def _notify(self, kind: str, t: Tick, from_pct: float | None, to_pct: float | None, reason: str,
                evidence: dict, to_step: str | None) -> None:
        self.ops.notify(kind, t.service, from_percent=self._from_pct if self._from_pct is not None else from_pct,
                        to_percent=to_pct, actor=self.actor, reason=reason, evidence=evidence, from_step=t.step,
                        to_step=to_step)

    def _pre_step(self, t: Tick) -> Tick:
        """Ask the pre-step hooks before taking ``t.target``; any non-2xx or timeout holds the step."""
        notifier = self.ops.notifier
        if notifier is None or not notifier.pre_step_hooks:
            return t
        payload = {"service": t.service, "from_step": t.step, "to_step": t.target, "from_percent": self._pct(t.step),
                   "to_percent": self._pct(t.target), "actor": self.actor, "at": self.clock()}
        checks = pre_step_checks(notifier.pre_step(payload))
        base = t.result or GateResult(cast(Decision, t.decision), t.reason)
        failed = [c for c in checks if not c.ok]
        if not failed:
            return Tick(t.service, t.step, t.target, t.decision, t.reason,
                        GateResult(base.decision, base.reason, [*base.checks, *checks]), version=t.version,
                        since=t.since, forced_past=t.forced_past)
        reason = "; ".join(c.line() for c in failed)
        return Tick(t.service, t.step, t.target, "hold", reason, GateResult("hold", reason, [*base.checks, *checks]),
                    version=t.version, since=t.since, forced_past=t.forced_past)

    def _refused(self, t: Tick, why: str, evidence: dict, *, record: bool) -> Tick:
        """The safety rule refused the step: hold there (once in the history per reason), and say why."""
        held = Tick(t.service, t.step, t.target, "hold", why, t.result, version=t.version, since=t.since)
        if record:
            evidence = {**evidence, "hold_key": f"hold:{t.target}:safety:{why}"}
            last = self.ops.store.history(t.service, 1)
            if not (last and last[-1].actor == self.actor and last[-1].evidence.get("hold_key") == evidence["hold_key"]):
                try:
                    self._apply(t, lambda s: s, action=f"hold at {t.step}", reason=why, evidence=evidence)
                    self._notify("held", t, self._pct(t.step), self._pct(t.target), why, evidence, t.target)
                except Superseded:
                    pass
        return held

    def tick(self, service: str, *, force_phase: bool = False, force_reason: str = "",
             record: bool = True, resume: bool = False, force_safety: bool = False) -> Tick:
        """Evaluate and act. ``record`` False (``advance``): only a promotion is applied; holds
        and breaches are reported, not recorded or acted on."""
        t = self.evaluate(service, force_phase=force_phase, resume=resume)
        # the split before any change, for the events (a human may have left it between steps)
        self._from_pct = self._state(service).percent if self.ops.notifier is not None else None
        if t.decision == "promote" and t.target:
            t = self._pre_step(t)
        evidence = t.result.evidence() if t.result else {"decision": t.decision, "reason": t.reason}
        evidence["window_since"] = t.since
        try:
            if t.decision == "promote" and t.target:
                action, reason = f"promote → {t.target}", t.reason
                if t.forced_past:
                    action += " (forced past phase order)"
                    reason = f"{force_reason} [forced past: {'; '.join(t.forced_past)}]; {t.reason}"
                    evidence["forced_past"] = t.forced_past
                target = t.target
                try:
                    self._apply(t, lambda s: st.apply_step(s, target), action=action, reason=reason,
                                evidence=evidence, force=bool(force_safety and force_reason))
                except OperationError as e:
                    return self._refused(t, str(e), evidence, record=record)
                self._notify("promoted", t, self._pct(t.step), self._pct(t.target), reason, evidence, t.target)
                return Tick(t.service, t.step, t.target, t.decision, reason, t.result, applied=t.target,
                            version=t.version, since=t.since, forced_past=t.forced_past)
            if not record:
                return t
            if t.decision == "rollback":
                to = safe_step(self._state(service), self.plan.steps_for(service))
                try:
                    self._apply(t, lambda s: st.shift(s, float(to)), action=f"rollback → {to}%", reason=t.reason,
                                evidence=evidence)
                except OperationError as e:
                    return self._refused(t, f"rollback advised ({t.reason}) but refused: {e}", evidence, record=True)
                self._notify("rolled_back", t, self._pct(t.step), float(to), t.reason, evidence, to)
                return Tick(t.service, t.step, t.target, t.decision, t.reason, t.result, applied=f"{to}%",
                            version=t.version, since=t.since)
            if t.decision == "hold":
                evidence["hold_key"] = t.hold_key()
                last = self.ops.store.history(service, 1)
                if not (last and last[-1].actor == self.actor and last[-1].evidence.get("hold_key") == t.hold_key()):
                    # Recorded once per distinct set of failing gates, not every interval.
                    self._apply(t, lambda s: s, action=f"hold at {t.step}", reason=t.reason, evidence=evidence)
                    self._notify("approval_needed" if t.reason.startswith("waiting for approval") else "held", t,
                                 self._pct(t.step), self._pct(t.target), t.reason, evidence, t.target)
        except Superseded:
            return Tick(t.service, t.step, t.target, "hold", "the state changed meanwhile (a human acted); "
                        "re-evaluating from the new state next interval", t.result, version=t.version, since=t.since)
        return t

    def run(self, service: str, *, interval_s: float | None = None, watch: bool = False,
            on_tick: Callable[[Tick], None] | None = None, max_ticks: int | None = None,
            sleep: Callable[[float], None] = time.sleep, force_phase: bool = False, force_reason: str = "") -> Tick:
        """Tick every interval until the plan is complete (or forever with ``watch``)."""
        interval = interval_s or self.plan.interval_s
        n = 0
        while True:
            t = self.tick(service, force_phase=force_phase, force_reason=force_reason)
            n += 1
            if on_tick:
                on_tick(t)
            if (t.decision == "done" and not watch) or (max_ticks and n >= max_ticks):
                return t
            sleep(interval)

