"""Assembling a rollout controller from routes.yaml and the stores (CLI and admin API alike)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the imports stay lazy at run time: the CLI loads this module at start-up
    from ..routes.models import RoutesFile
    from .controller import RolloutController, Tick
    from .plan import Plan


def tick_doc(tick: Tick) -> dict:
    """A controller evaluation as JSON: the decision, its reason and every check."""
    return {"service": tick.service, "step": tick.step, "next": tick.target, "decision": tick.decision,
            "reason": tick.reason, "applied": tick.applied, "forced_past": list(tick.forced_past),
            "checks": [dict(c.__dict__) for c in tick.result.checks] if tick.result is not None else []}


def build_controller(routes: str | Path, state: str | None, metrics_store: str | None = None,
                     shadow_store: str | None = None, outbox: str | None = None, ignores: str = "shadow-ignores.yaml",
                     actor: str | None = None, store: Any = None) -> tuple[RolloutController, RoutesFile, Plan]:
    """The controller over routes.yaml's plan; ``store``: an open state store (else ``state``'s).
    Raises ValueError for a plan or store that cannot be used, with the reason."""
    # Imported here: the CLI imports this module at start-up, most commands need none of these.
    from ..dual_write.config import outbox_url
    from ..dual_write.outbox import open_outbox
    from ..routes.loader import load_table
    from ..shadow.config import ShadowConfig
    from ..shadow.ignores import load_ignores
    from ..shadow.store import open_diff_store
    from .controller import ACTOR, RolloutController
    from .evidence import EvidenceSource, outbox_backlog
    from .operations import Operations
    from .plan import Plan
    from .store import open_state_store
    from .windows import open_window_store

    cfg = load_table(Path(routes)).config
    try:
        plan = Plan.from_routes(cfg)
    except ValueError as e:
        raise ValueError(f"routes.yaml plan: {e}") from None
    windows = open_window_store(metrics_store or os.environ.get("CHARIOT_MIGRATE_METRICS_STORE") or plan.metrics_store)
    shadow_cfg = ShadowConfig.from_section(cfg.shadow)
    diff = open_diff_store(shadow_store or os.environ.get("CHARIOT_MIGRATE_SHADOW_STORE") or shadow_cfg.store)
    # The same outbox the proxies write (dual write is always installed, so there always is one).
    backlog = outbox_backlog(open_outbox(outbox_url(cfg.dual_write, outbox, state_url=state)))
    store = store if store is not None else open_state_store(state)  # records and ignores live there too
    evidence = EvidenceSource(windows, diff, backlog=backlog, ignores=load_ignores(ignores, store=store),
                              store=store, shadow_min_samples=shadow_cfg.min_samples,
                              shadow_confidence=shadow_cfg.confidence, analysis=plan.analysis)
    ctl = RolloutController(Operations(store, cfg, state_url=state), plan, evidence, actor=actor or ACTOR)
    return ctl, cfg, plan


