"""Window add-on: per-minute request counts, 5xx and latency histograms per (service, side),
flushed every few seconds to the shared metrics store the rollout gates read."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..rollout.state import ServiceState
from ..rollout.windows import WindowRecorder, WindowStore
from ..routes.matcher import Route
from .addons import Exchange

log = logging.getLogger("chariot_migrate.proxy")


class WindowAddon:
    def __init__(self, store: WindowStore, flush_interval_s: float = 2.0) -> None:
        self.store = store
        self.recorder = WindowRecorder()
        self.flush_interval_s = flush_interval_s
        self._task: asyncio.Task | None = None

    def applies(self, route: Route | None, state: ServiceState | None) -> bool:
        return route is not None

    async def before(self, ex: Exchange) -> None:
        return None

    def needs_body(self, ex: Exchange) -> bool:
        return False

    async def response(self, ex: Exchange) -> None:
        return None

    def done(self, ex: Exchange) -> None:
        if ex.service is not None and ex.response is not None:
            if ex.notes.get("failed_over"):
                # Failover spares the client, not the failing side: its failure counts in its window
                # (the new side's, unless legacy failed and new served: failover_to_new).
                self.recorder.observe(ex.service, str(ex.notes.get("failed_side", "new")), 502, ex.latency_s)
            self.recorder.observe(ex.service, ex.side, ex.response.status, ex.latency_s)

    async def flush(self) -> None:
        rows = self.recorder.take()
        if rows:
            try:
                await asyncio.to_thread(self.store.add, rows)
            except Exception as e:  # noqa: BLE001 — metrics must never hurt serving
                log.warning("could not flush request windows: %s", e)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            await self.flush()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def aclose(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
