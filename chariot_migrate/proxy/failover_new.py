"""``failover_to_new``: when legacy fails a safe request (a Lambda error or timeout, a 5xx), the
new side serves it — but only for a service that is *prepared* (``rollout.safety.readiness``:
dual write on for every account in both directions, a backfill since, a clean and recent verify,
no dead letters toward new, its data peers prepared too). For any other service the new store
may lack the account's data, so the setting is ignored, with the reason logged and shown on the
admin ``/state``: a setting that could serve stale data never takes effect by itself.

The readiness is computed off the hot path (a worker thread, every ``interval_s``), from the same
evidence ``status`` and ``shift`` read; until the first pass, nothing fails over to new.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..rollout.safety import Verdict
from ..routes.models import RoutesFile

log = logging.getLogger("chariot_migrate.proxy")


def decide(service: str, configured: bool, verdict: Verdict | Exception | None) -> tuple[bool, str]:
    """(does failover to new apply, why) for one service."""
    if not configured:
        return False, "failover_to_new is off"
    if verdict is None:
        return False, f"failover_to_new for {service} waits for its readiness to be known"
    if isinstance(verdict, Exception):
        return False, f"failover_to_new for {service} is ignored: its readiness cannot be read ({verdict})"
    if not verdict.ok:
        what = verdict.missing[0] if len(verdict.missing) == 1 else (
            ", ".join(verdict.missing[:-1]) + " and " + verdict.missing[-1])
        fix = " then ".join(f"`{f}`" for f in verdict.fixes)
        return False, (f"failover_to_new for {service} is ignored: it is not prepared ({what})"
                       + (f"; run {fix}" if fix else ""))
    return True, f"failover_to_new for {service} is on (prepared)"


def readiness_of(cfg: RoutesFile, state_url: str | None, services: list[str]) -> dict[str, Verdict | Exception]:
    """The safety rule's verdict toward new for ``services`` (blocking IO: run in a thread)."""
    from ..rollout.operations import Operations
    from ..rollout.store import open_state_store

    store = open_state_store(state_url)
    try:
        rows = {r.service: r.readiness for r in Operations(store, cfg, state_url=state_url).status()}
    finally:
        with contextlib.suppress(Exception):
            store.close()
    return {n: v if (v := rows.get(n)) is not None else RuntimeError("unknown service") for n in services}


Compute = Callable[[RoutesFile, str | None, list[str]], Mapping[str, Verdict | Exception]]


class NewFailover:
    def __init__(self, config: Callable[[], RoutesFile], state_url: str | None, *, interval_s: float = 5.0,
                 compute: Compute = readiness_of) -> None:
        self.config, self.state_url, self.interval_s, self.compute = config, state_url, interval_s, compute
        self.allowed: dict[str, bool] = {}
        self.reasons: dict[str, str] = {}
        self._task: asyncio.Task | None = None

    def allows(self, service: str) -> bool:
        return self.allowed.get(service, False)

    async def refresh(self) -> None:
        cfg = self.config()
        wanted = [n for n, s in cfg.services.items() if s.failover_to_new]
        verdicts: Mapping[str, Verdict | Exception] = {}
        if wanted:
            try:
                verdicts = await asyncio.to_thread(self.compute, cfg, self.state_url, wanted)
            except Exception as e:  # noqa: BLE001 — unknown readiness: no failover to new
                verdicts = {n: e for n in wanted}
        allowed, reasons = {}, {}
        for n in wanted:
            allowed[n], reasons[n] = decide(n, True, verdicts.get(n))
            if reasons[n] != self.reasons.get(n):
                (log.info if allowed[n] else log.warning)("%s", reasons[n])
        self.allowed, self.reasons = allowed, reasons

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.refresh()
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def snapshot(self) -> dict[str, Any]:
        return {n: {"active": self.allowed.get(n, False), "reason": r} for n, r in self.reasons.items()}
