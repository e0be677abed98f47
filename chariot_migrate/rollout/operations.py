"""Operator actions on live state (shift, pin, rollback, …), shared by the CLI and the admin API.

Each validates against routes.yaml (unknown service → one clear sentence), applies a pure change
from ``state`` atomically through the store, and leaves an audit entry.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import Any, Literal

from ..routes.models import RoutesFile, ServiceConfig
from . import safety
from . import state as st
from .bucketing import Side
from .state import HistoryEntry, ServiceState
from .store import Mutation, StateStore


class OperationError(ValueError):
    """A refused operation; the message says why and what to do next."""


def default_actor() -> str:
    try:
        return os.environ.get("CHARIOT_MIGRATE_ACTOR") or getpass.getuser()
    except Exception:  # noqa: BLE001 — no passwd entry in some containers
        return "unknown"


def initial_state(service: str, cfg: ServiceConfig | None) -> ServiceState:
    s = ServiceState(service=service)
    if cfg is not None:
        s = s.model_copy(update={"percent_bp": round(cfg.percent * 100), "shadow_bp": round(cfg.shadow_percent * 100),
                                 "dual_write": cfg.dual_write})
    return s.model_copy(update={"stage": st.derive_stage(s)})


@dataclass(frozen=True)
class StatusRow:
    service: str
    phase: int | None
    state: ServiceState
    configured: bool
    readiness: safety.Verdict | None = None  # may the new side serve it (None: not evaluated)
    verify_at: float | None = None
    verify_ok: bool | None = None
    backfill_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        s = self.state
        r = self.readiness
        return {"service": self.service, "phase": self.phase, "stage": s.stage, "percent": s.percent,
                "shadow_percent": s.shadow_percent, "dual_write": s.dual_write, "pins": s.pins,
                "version": s.version, "updated_at": s.updated_at, "updated_by": s.updated_by, "reason": s.reason,
                "prepared": None if r is None else r.ok, "not_prepared_because": [] if r is None else list(r.missing),
                "backfill_at": self.backfill_at, "verify_at": self.verify_at, "verify_ok": self.verify_ok}


@dataclass(frozen=True)
class Preview:
    """What a change would do, judged by the same safety rule as ``Operations.apply``; nothing written."""

    before: ServiceState
    after: ServiceState
    checked: bool  # the change moves accounts (or shrinks dual write): the safety rule applies
    refusal: str | None  # the sentence ``apply`` would refuse with; None when it would pass
    missing: tuple[str, ...] = ()  # what the rule found missing (what ``--force`` would skip)
    notes: tuple[str, ...] = ()


class Operations:
    """``data_evidence`` answers the safety rule's questions about a service's data (default: the
    records and outbox of the state directory); every change that moves traffic is checked."""

    def __init__(self, store: StateStore, config: RoutesFile | None, *, data_evidence: Any = None,
                 state_url: str | None = None, notifier: Any = None) -> None:
        """``notifier``: where rollout events go (default: routes.yaml's ``plan.webhooks``)."""
        from .evidence import DataEvidenceSource
        from .webhooks import Notifier

        self.store = store
        self.config = config
        self.data_evidence = (data_evidence if data_evidence is not None
                              else DataEvidenceSource(config, state_url, store=store))
        self.notes: tuple[str, ...] = ()  # what the last change's safety check had to say, not refusing
        self.notifier = notifier if notifier is not None else Notifier.from_config(config)

    def notify(self, kind: str, service: str, *, from_percent: float | None, to_percent: float | None,
               actor: str | None, reason: str, evidence: dict[str, Any] | None = None,
               from_step: str | None = None, to_step: str | None = None) -> None:
        """Send a rollout event to the webhooks (if any); delivery problems are logged, never raised."""
        if self.notifier is None:
            return
        from .webhooks import build_event

        self.notifier.emit(build_event(kind, service, from_percent=from_percent, to_percent=to_percent,
                                       actor=actor or default_actor(), reason=reason, evidence=evidence,
                                       from_step=from_step, to_step=to_step))

    def _notify_move(self, before: ServiceState | None, after: ServiceState, *, actor: str | None,
                     reason: str, action: str) -> None:
        """A human's change of the split: up is ``promoted``, down is ``rolled_back``."""
        was = before.percent if before is not None else 0.0
        if after.percent != was:
            self.notify("promoted" if after.percent > was else "rolled_back", after.service, from_percent=was,
                        to_percent=after.percent, actor=actor or after.updated_by, reason=reason or action,
                        evidence={"action": action})

    def _svc(self, service: str) -> ServiceConfig | None:
        if self.config is None:
            return None
        if service not in self.config.services:
            known = ", ".join(sorted(self.config.services))
            raise OperationError(f"unknown service {service!r}; routes.yaml knows: {known}")
        return self.config.services[service]

    def apply(self, service: str, mutate: Mutation, *, actor: str | None, action: str, reason: str,
              evidence: dict[str, Any] | None = None, force: bool = False) -> ServiceState:
        """Apply a pure change atomically with an audit entry (the primitive behind every action).

        A change that moves accounts between sides, or shrinks dual write, must pass the safety
        rule (``safety.check_change``) or is refused with the fixing command; ``force`` (with a
        reason) takes it anyway and the history records it as forced, with what was skipped."""
        cfg = self._svc(service)
        default = initial_state(service, cfg)
        self.notes = ()
        try:
            before = self.store.get(service) or default
            after = mutate(before)
        except ValueError as e:  # a pure change refused the input (e.g. 0.001 %)
            raise OperationError(str(e)) from None
        checked = mutate
        if safety.needs_evidence(before, after):
            verdict = safety.check_change(service, before, after, self._data_evidence(service))
            self.notes = verdict.notes
            if not verdict.ok:
                if not force:
                    raise OperationError(safety.refusal(service, before, after, verdict))
                if not reason:
                    raise OperationError("--force needs a --reason (it is kept in the audit history)")
                action = action if action.endswith("(forced)") else action + " (forced)"
                evidence = {**(evidence or {}), "forced": True, "skipped": list(verdict.missing)}

            def checked(s: ServiceState) -> ServiceState:
                # The store's transaction sees the state the check was made for, or refuses.
                if s.version != before.version:
                    raise OperationError(f"{service} changed while this change was being checked; run it again")
                return mutate(s)

        try:
            return self.store.update(service, checked, default=default, actor=actor or default_actor(),
                                     action=action, reason=reason, evidence=evidence)
        except ValueError as e:
            raise OperationError(str(e)) from None

    def preview(self, service: str, mutate: Mutation) -> Preview:
        """A dry run of ``apply``: the state before and after, and the safety rule's verdict on it,
        from the same evidence ``apply`` reads — without writing the state or the history."""
        cfg = self._svc(service)
        before = self.store.get(service) or initial_state(service, cfg)
        try:
            after = mutate(before)
        except ValueError as e:
            raise OperationError(str(e)) from None
        if not safety.needs_evidence(before, after):
            return Preview(before, after, checked=False, refusal=None)
        verdict = safety.check_change(service, before, after, self._data_evidence(service))
        return Preview(before, after, checked=True,
                       refusal=None if verdict.ok else safety.refusal(service, before, after, verdict),
                       missing=tuple(verdict.missing), notes=tuple(verdict.notes))

    def shift(self, service: str, percent: float, *, actor: str | None = None, reason: str = "",
              force: bool = False) -> ServiceState:
        if not 0 <= percent <= 100:
            raise OperationError(f"percent must be between 0 and 100, got {percent}")
        if percent > 0 and not force and self.config is not None and self.config.plan is not None:
            self._svc(service)
            from .plan import phase_blockers

            blockers = phase_blockers(self.config, self.store.all(), service)
            if blockers:
                raise OperationError(f"{service} cannot leave shadow while an earlier phase is unfinished "
                                     f"({'; '.join(blockers)}); finish those first or pass --force with a --reason")
        if force and not reason:
            raise OperationError("--force needs a --reason (it is kept in the audit history)")
        before = self.store.get(service)
        after = self.apply(service, lambda s: st.shift(s, percent), actor=actor,
                           action="shift" + (" (forced)" if force else ""), reason=reason, force=force)
        self._notify_move(before, after, actor=actor, reason=reason, action="shift")
        return after

    def peers(self, service: str) -> list[str]:
        """Services that share data with ``service`` (declared on either side)."""
        if self.config is None:
            return []
        mine = self.config.services[service].shares_data_with if service in self.config.services else []
        theirs = [n for n, s in self.config.services.items() if service in s.shares_data_with]
        return sorted(set(mine) | set(theirs))

    def _data_evidence(self, service: str, outbox: dict | Exception | None = None) -> safety.DataEvidence:
        """The service's data evidence, with which of its data peers are not prepared themselves."""
        import dataclasses

        ev = self.data_evidence.gather(service, outbox)
        peers = self.peers(service)
        if not peers:
            return ev
        live = self.store.all()
        unprepared = []
        for p in peers:
            state = live.get(p) or initial_state(p, self.config.services.get(p) if self.config else None)
            if not safety.readiness(p, state, self.data_evidence.gather(p, outbox)).ok:
                unprepared.append(p)
        return dataclasses.replace(ev, peers_unprepared=tuple(unprepared))

    def set_shadow(self, service: str, percent: float, *, actor: str | None = None, reason: str = "") -> ServiceState:
        if not 0 <= percent <= 100:
            raise OperationError(f"shadow percent must be between 0 and 100, got {percent}")
        return self.apply(service, lambda s: st.set_shadow(s, percent), actor=actor, action="shadow", reason=reason)

    def set_dual_write(self, service: str, mode: Literal["off", "on"], percent: float = 100, *,
                       actor: str | None = None, reason: str = "", force: bool = False) -> ServiceState:
        return self.apply(service, lambda s: st.set_dual_write(s, mode, percent), actor=actor,
                          action=f"dual-write {mode}", reason=reason, force=force)

    def approve(self, service: str, step: str, *, actor: str | None = None, reason: str = "") -> ServiceState:
        return self.apply(service, lambda s: st.approve(s, step), actor=actor, action=f"approve {step}",
                          reason=reason or "approved")

    def approve_next(self, service: str, step: str | None = None, *, actor: str | None = None,
                     reason: str = "") -> tuple[str | None, ServiceState | None]:
        """Approve ``step`` (default: the service's next plan step): (the step approved, the new
        state), or (None, None) when the plan is complete."""
        from .plan import Plan, next_step

        cfg = self._svc(service)
        if self.config is None:
            raise OperationError("routes.yaml does not load, so its plan is unknown: fix it, then approve")
        try:
            steps = Plan.from_routes(self.config).steps_for(service)
        except ValueError as e:
            raise OperationError(f"routes.yaml plan: {e}") from None
        if step is not None and step not in steps:
            raise OperationError(f"--step {step!r} is not a step of {service}'s plan ({', '.join(steps)})")
        target = step or next_step(self.store.get(service) or initial_state(service, cfg), steps)
        if target is None:
            return None, None
        return target, self.approve(service, target, actor=actor, reason=reason)

    def rollback(self, service: str, *, actor: str | None = None, reason: str = "", force: bool = False) -> ServiceState:
        before = self.store.get(service)
        after = self.apply(service, st.rollback, actor=actor, action="rollback",
                           reason=reason or ("" if force else "rollback"), force=force)
        self._notify_move(before, after, actor=actor, reason=reason, action="rollback")
        return after

    def pin(self, service: str, account: str, side: Side, *, actor: str | None = None, reason: str = "",
            force: bool = False) -> ServiceState:
        if side not in ("legacy", "new"):
            raise OperationError(f"--to must be 'legacy' or 'new', got {side!r}")
        acct = account.strip().lower()
        if not acct:
            raise OperationError("an account to pin is required")
        return self.apply(service, lambda s: st.pin(s, acct, side), actor=actor, action=f"pin {acct}→{side}",
                          reason=reason, force=force)

    def unpin(self, service: str, account: str, *, actor: str | None = None, reason: str = "",
              force: bool = False) -> ServiceState:
        acct = account.strip().lower()
        return self.apply(service, lambda s: st.unpin(s, acct), actor=actor, action=f"unpin {acct}", reason=reason,
                          force=force)

    def status(self) -> list[StatusRow]:
        """Every service's state, and whether it is prepared (the safety rule toward new)."""
        live = self.store.all()
        names = list(self.config.services) if self.config else []
        names += [n for n in sorted(live) if n not in names]
        try:
            outbox: dict | Exception = self.data_evidence.outbox_status()
        except Exception as e:  # noqa: BLE001 — shown per service as "outbox cannot be read"
            outbox = e
        rows = []
        for n in names:
            cfg = self.config.services.get(n) if self.config else None
            state = live.get(n) or initial_state(n, cfg)
            ev = self._data_evidence(n, outbox) if cfg is not None else None
            rows.append(StatusRow(n, cfg.phase if cfg else None, state, cfg is not None,
                                  readiness=safety.readiness(n, state, ev) if ev else None,
                                  verify_at=ev.verify_at if ev else None, verify_ok=ev.verify_ok if ev else None,
                                  backfill_at=ev.backfill_finished_at if ev else None))
        return sorted(rows, key=lambda r: (r.phase if r.phase is not None else 99, r.service))

    def history(self, service: str | None = None, limit: int = 50) -> list[HistoryEntry]:
        if service:
            self._svc(service)
        return self.store.history(service, limit)
