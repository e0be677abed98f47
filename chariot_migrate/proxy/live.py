"""What a running proxy knows and keeps fresh: the route table (hot-reloaded from routes.yaml)
and the rollout state (polled from the state store). Readers take one reference per request,
so a swap is atomic: a request sees either the old table or the new one, never a mix."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from ..rollout.operations import initial_state
from ..rollout.state import ServiceState
from ..rollout.store import StateStore, StateStoreError
from ..routes.loader import RoutesError, load_table
from ..routes.matcher import RouteTable
from ..routes.models import ServiceConfig
from . import metrics

log = logging.getLogger("chariot_migrate.proxy")


class LiveRoutes:
    def __init__(self, path: str | Path, table: RouteTable | None = None) -> None:
        self.path = Path(path)
        self.table = table or load_table(self.path)
        self._sig = self._signature()
        self.last_error: str | None = None

    def _signature(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
            return (st.st_mtime_ns, st.st_size)
        except OSError:
            return None

    async def check(self) -> bool:
        """Reload if the file changed. True if a new table was swapped in."""
        sig = self._signature()
        if sig is None or sig == self._sig:
            return False
        self._sig = sig
        try:
            table = await asyncio.to_thread(load_table, self.path)
        except RoutesError as e:
            self.last_error = str(e)
            metrics.RELOADS.labels("rejected").inc()
            log.error("routes.yaml rejected, the previous route table keeps serving: %s", e)
            return False
        self.table = table
        self.last_error = None
        metrics.RELOADS.labels("applied").inc()
        log.info("routes.yaml reloaded: %d routes, %d services", len(table.routes), len(table.config.services))
        return True


class LiveState:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.states: dict[str, ServiceState] = {}
        self.version = -1
        self.healthy = True
        self.last_error: str | None = None
        self._defaults: dict[str, tuple[ServiceConfig | None, ServiceState]] = {}

    def load_now(self) -> None:
        v = self.store.version()
        if v != self.version:
            self.states = self.store.all()
            self.version = v

    async def poll(self) -> bool:
        try:
            v = await asyncio.to_thread(self.store.version)
            changed = v != self.version
            if changed:
                self.states = await asyncio.to_thread(self.store.all)
                self.version = v
            if not self.healthy:
                log.warning("state store reachable again (version %d)", v)
            self.healthy, self.last_error = True, None
            return changed
        except (StateStoreError, OSError) as e:
            # Keep serving from the last known state; /ready reports it.
            if self.healthy:
                log.error("state store unavailable, serving the last known state: %s", e)
            self.healthy, self.last_error = False, str(e)
            metrics.STATE_ERRORS.inc()
            return False

    def get(self, service: str, cfg: ServiceConfig | None) -> ServiceState:
        s = self.states.get(service)
        if s is not None:
            return s
        # Not in the store yet: routes.yaml's defaults (cached per config object — a reload
        # brings a new ServiceConfig and so a fresh default).
        cached = self._defaults.get(service)
        if cached is None or cached[0] is not cfg:
            cached = self._defaults[service] = (cfg, initial_state(service, cfg))
        return cached[1]
