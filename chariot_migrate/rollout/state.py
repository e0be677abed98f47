"""Live rollout state of one service, its audit history, and the pure changes applied to it."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .bucketing import Side, to_basis_points

Stage = Literal["legacy", "shadow", "canary", "new", "retired"]
STAGES: tuple[Stage, ...] = ("legacy", "shadow", "canary", "new", "retired")


class ServiceState(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str
    stage: Stage = "legacy"
    percent_bp: int = Field(0, ge=0, le=10_000)  # share of accounts on the new side, 0.01 % units
    shadow_bp: int = Field(0, ge=0, le=10_000)  # share of accounts whose safe requests are shadowed
    dual_write: Literal["off", "on"] = "off"
    dual_write_bp: int = Field(10_000, ge=0, le=10_000)  # share of accounts dual-written when on
    dual_write_since: float = 0.0  # when dual write was last turned on (a backfill must start after it)
    pins: dict[str, Side] = Field(default_factory=dict)
    approved_step: str = ""  # a plan step a human approved (cleared when taken)
    version: int = 0
    updated_at: float = 0.0
    updated_by: str = ""
    reason: str = ""

    @property
    def percent(self) -> float:
        return self.percent_bp / 100

    @property
    def shadow_percent(self) -> float:
        return self.shadow_bp / 100


class HistoryEntry(BaseModel):
    id: int = 0
    service: str
    at: float
    actor: str
    action: str
    before: dict[str, Any]
    after: dict[str, Any]
    reason: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)

    def summary(self) -> str:
        """"25% → 50%"-style one-liner of what changed."""
        keys = ("stage", "percent_bp", "shadow_bp", "dual_write", "dual_write_bp", "pins")
        parts = []
        for k in keys:
            a, b = self.before.get(k), self.after.get(k)
            if a != b:
                label = {"percent_bp": "new%", "shadow_bp": "shadow%", "dual_write_bp": "dual-write%"}.get(k, k)
                if k.endswith("_bp"):
                    a, b = (a or 0) / 100, (b or 0) / 100
                parts.append(f"{label} {a}→{b}")
        return ", ".join(parts) or "no change"


def derive_stage(state: ServiceState) -> Stage:
    """Stage follows the percentages unless the service is retired."""
    if state.stage == "retired":
        return "retired"
    if state.percent_bp >= 10_000:
        return "new"
    if state.percent_bp > 0:
        return "canary"
    if state.shadow_bp > 0:
        return "shadow"
    return "legacy"


def _touch(state: ServiceState, **changes: Any) -> ServiceState:
    s = state.model_copy(update=changes)
    return s.model_copy(update={"stage": derive_stage(s)})


# Pure changes: (state, args) -> new state. Stores apply them atomically and write history.


def shift(state: ServiceState, percent: float) -> ServiceState:
    return _touch(state, percent_bp=to_basis_points(percent))


def set_shadow(state: ServiceState, percent: float) -> ServiceState:
    return _touch(state, shadow_bp=to_basis_points(percent))


def set_dual_write(state: ServiceState, mode: Literal["off", "on"], percent: float = 100,
                   now: float | None = None) -> ServiceState:
    bp = to_basis_points(percent)
    # Writes are complete from this moment on only for accounts newly covered: restart the clock
    # whenever coverage grows (off → on, or a larger share).
    grows = mode == "on" and (state.dual_write != "on" or bp > state.dual_write_bp)
    since = (time.time() if now is None else now) if grows else state.dual_write_since
    return _touch(state, dual_write=mode, dual_write_bp=bp, dual_write_since=since if mode == "on" else 0.0)


def rollback(state: ServiceState) -> ServiceState:
    return _touch(state, percent_bp=0, stage="legacy" if state.stage == "retired" else state.stage)


def pin(state: ServiceState, account: str, side: Side) -> ServiceState:
    return _touch(state, pins={**state.pins, account: side})


def unpin(state: ServiceState, account: str) -> ServiceState:
    return _touch(state, pins={k: v for k, v in state.pins.items() if k != account})


def retire(state: ServiceState) -> ServiceState:
    if state.percent_bp < 10_000:
        raise ValueError(f"{state.service} can only be retired at 100 % new (it is at {state.percent} %)")
    return state.model_copy(update={"stage": "retired"})


def approve(state: ServiceState, step: str) -> ServiceState:
    return state.model_copy(update={"approved_step": step})


def apply_step(state: ServiceState, step: str) -> ServiceState:
    """Move to a plan step: 'shadow' (shadow 100 %, 0 % new), a percentage, or 'retired'."""
    if step == "shadow":
        s = _touch(state, shadow_bp=10_000, percent_bp=0)
    elif step == "retired":
        s = retire(state)
    else:
        s = shift(state, float(step))
    return s.model_copy(update={"approved_step": "" if state.approved_step == step else state.approved_step})


def stamp(state: ServiceState, *, actor: str, reason: str, version: int) -> ServiceState:
    return state.model_copy(update={"version": version, "updated_at": time.time(), "updated_by": actor, "reason": reason})
