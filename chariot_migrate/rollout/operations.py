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
from . import state as st
from .bucketing import Side
from .state import HistoryEntry, ServiceState
from .store import StateStore


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

    def as_dict(self) -> dict[str, Any]:
        s = self.state
        return {"service": self.service, "phase": self.phase, "stage": s.stage, "percent": s.percent,
                "shadow_percent": s.shadow_percent, "dual_write": s.dual_write, "pins": s.pins,
                "version": s.version, "updated_at": s.updated_at, "updated_by": s.updated_by, "reason": s.reason}


class Operations:
    def __init__(self, store: StateStore, config: RoutesFile | None) -> None:
        self.store = store
        self.config = config

    def _svc(self, service: str) -> ServiceConfig | None:
        if self.config is None:
            return None
        if service not in self.config.services:
            known = ", ".join(sorted(self.config.services))
            raise OperationError(f"unknown service {service!r}; routes.yaml knows: {known}")
        return self.config.services[service]

    def apply(self, service: str, mutate, *, actor: str | None, action: str, reason: str,
              evidence: dict[str, Any] | None = None) -> ServiceState:
        """Apply a pure change atomically with an audit entry (the primitive behind every action)."""
        cfg = self._svc(service)
        try:
            return self.store.update(service, mutate, default=initial_state(service, cfg), actor=actor or default_actor(),
                                     action=action, reason=reason, evidence=evidence)
        except ValueError as e:  # a pure change refused the input (e.g. 0.001 %)
            raise OperationError(str(e)) from None

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
        return self.apply(service, lambda s: st.shift(s, percent), actor=actor,
                           action="shift" + (" (forced)" if force else ""), reason=reason)

    def set_shadow(self, service: str, percent: float, *, actor: str | None = None, reason: str = "") -> ServiceState:
        if not 0 <= percent <= 100:
            raise OperationError(f"shadow percent must be between 0 and 100, got {percent}")
        return self.apply(service, lambda s: st.set_shadow(s, percent), actor=actor, action="shadow", reason=reason)

    def set_dual_write(self, service: str, mode: Literal["off", "on"], percent: float = 100, *,
                       actor: str | None = None, reason: str = "") -> ServiceState:
        return self.apply(service, lambda s: st.set_dual_write(s, mode, percent), actor=actor,
                           action=f"dual-write {mode}", reason=reason)

    def approve(self, service: str, step: str, *, actor: str | None = None, reason: str = "") -> ServiceState:
        return self.apply(service, lambda s: st.approve(s, step), actor=actor, action=f"approve {step}",
                          reason=reason or "approved")

    def rollback(self, service: str, *, actor: str | None = None, reason: str = "") -> ServiceState:
        return self.apply(service, st.rollback, actor=actor, action="rollback", reason=reason or "rollback")

    def pin(self, service: str, account: str, side: Side, *, actor: str | None = None, reason: str = "") -> ServiceState:
        if side not in ("legacy", "new"):
            raise OperationError(f"--to must be 'legacy' or 'new', got {side!r}")
        acct = account.strip().lower()
        if not acct:
            raise OperationError("an account to pin is required")
        return self.apply(service, lambda s: st.pin(s, acct, side), actor=actor, action=f"pin {acct}→{side}",
                           reason=reason)

    def unpin(self, service: str, account: str, *, actor: str | None = None, reason: str = "") -> ServiceState:
        acct = account.strip().lower()
        return self.apply(service, lambda s: st.unpin(s, acct), actor=actor, action=f"unpin {acct}", reason=reason)

    def status(self) -> list[StatusRow]:
        live = self.store.all()
        names = list(self.config.services) if self.config else []
        names += [n for n in sorted(live) if n not in names]
        rows = []
        for n in names:
            cfg = self.config.services.get(n) if self.config else None
            rows.append(StatusRow(n, cfg.phase if cfg else None, live.get(n) or initial_state(n, cfg), cfg is not None))
        return sorted(rows, key=lambda r: (r.phase if r.phase is not None else 99, r.service))

    def history(self, service: str | None = None, limit: int = 50) -> list[HistoryEntry]:
        if service:
            self._svc(service)
        return self.store.history(service, limit)
