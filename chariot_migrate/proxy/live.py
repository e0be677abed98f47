"""What a running proxy knows and keeps fresh: the route table (hot-reloaded from routes.yaml)
and the rollout state (polled from the state store). Readers take one reference per request,
so a swap is atomic: a request sees either the old table or the new one, never a mix.

Whatever is wrong with an edit of routes.yaml (not YAML, empty, a list, a schema error) the old
table keeps serving and the error is logged once per edit. The last table that loaded is also
kept on disk (``CHARIOT_MIGRATE_ROUTES_LAST_GOOD``), so a worker started while the file is broken
serves it too instead of failing to start."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
from pathlib import Path

from ..rollout.operations import initial_state
from ..rollout.state import ServiceState
from ..rollout.store import StateStore, StateStoreError
from ..routes.loader import RoutesError, compile_routes, load_table, routes_sources
from ..routes.matcher import RouteTable
from ..routes.models import RoutesFile, ServiceConfig
from . import metrics

log = logging.getLogger("chariot_migrate.proxy")
LAST_GOOD_ENV = "CHARIOT_MIGRATE_ROUTES_LAST_GOOD"


def save_last_good(table: RouteTable, directory: str | Path) -> Path:
    """Keep the configuration of a table that loaded (atomically) in ``directory``, a private one
    of this proxy (``serve`` makes it with mode 0700)."""
    path = Path(directory) / "routes.last-good.pickle"
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(pickle.dumps(table.config))
    tmp.replace(path)
    return path


def load_last_good(path: str | Path | None) -> RouteTable | None:
    if not path:
        return None
    try:
        cfg = pickle.loads(Path(path).read_bytes())  # noqa: S301 — written by this proxy, in its own 0700 dir
    except (OSError, pickle.PickleError, EOFError, AttributeError):
        return None
    return compile_routes(cfg) if isinstance(cfg, RoutesFile) else None


class LiveRoutes:
    def __init__(self, path: str | Path, table: RouteTable | None = None, *, last_good: str | Path | None = None) -> None:
        self.path = Path(path)
        self.last_good = last_good if last_good is not None else os.environ.get(LAST_GOOD_ENV)
        self.last_error: str | None = None
        self._sig = self._signature()
        if table is None:
            try:
                table = load_table(self.path)
            except RoutesError as e:
                table = load_last_good(self.last_good)
                if table is None:
                    raise
                self._rejected(e)
        self.table = table

    def _signature(self) -> tuple[tuple[int, int] | None, ...]:
        """mtime and size of the routes file and of the file it extends, if it is an overlay."""
        out: list[tuple[int, int] | None] = []
        for p in routes_sources(self.path):
            try:
                st = os.stat(p)
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def _rejected(self, e: RoutesError) -> None:
        self.last_error = str(e)
        metrics.RELOADS.labels("rejected").inc()
        log.error("routes.yaml rejected, the previous route table keeps serving: %s", e)

    async def check(self) -> bool:
        """Reload if a source changed. True if a new table was swapped in. Never raises: whatever
        the edit is, the table in use stays until a valid one replaces it."""
        sig = self._signature()
        if sig == self._sig or all(s is None for s in sig):
            return False  # unchanged, or the file is gone for a moment (an editor's rename)
        self._sig = sig
        try:
            table = await asyncio.to_thread(load_table, self.path)
        except RoutesError as e:
            self._rejected(e)
            return False
        except Exception as e:  # noqa: BLE001 — a loader bug must not end the refresh loop either
            self._rejected(RoutesError(f"{self.path}: reload failed: {type(e).__name__}: {e}"))
            return False
        self.table = table
        self.last_error = None
        if self.last_good:
            try:
                save_last_good(table, Path(self.last_good).parent)
            except OSError as e:
                log.warning("could not keep the last valid route table on disk: %s", e)
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
