"""The rollout controller as a cluster workload: several replicas, one leader (``lease``), a tiny
HTTP server for probes and metrics. It talks only to the state store (and the metrics, diff and
outbox stores the gates read) — never to the Kubernetes API, so it needs no RBAC.

* ``/healthz`` — live: the control loop has turned recently (a stuck loop gets the pod restarted).
* ``/ready`` — leader, or a standby that reaches the lease's Redis (ready to take over); 503 when
  Redis does not answer.
* ``/metrics`` — ``migration_changes_total{service,action}`` (every shift, rollback and approval
  in the history, by anyone: the Grafana board's annotations), ``migration_controller_leader``
  (1 on the leader) and ``migration_controller_term`` (its fencing token).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .lease import LeaseLost, RedisLease, renew_every_s
from .state import HistoryEntry

CHANGE_ACTIONS = ("shift", "rollback", "approve")
HISTORY_LIMIT = 1_000_000


def change_kind(h: HistoryEntry) -> str | None:
    """What a history entry is on the board: ``rollback`` (a human's or the controller's),
    ``approve``, ``shift`` (any other change of the split's percentage or stage: shifts, the
    controller's promotions), or None (holds, pins, dual write, shadow % within a stage)."""
    action = h.action.split(" ", 1)[0]
    if action == "rollback":
        return "rollback"
    if action == "approve":
        return "approve"
    if h.before.get("percent_bp") != h.after.get("percent_bp") or h.before.get("stage") != h.after.get("stage"):
        return "shift"
    return None


def count_changes(history: Iterable[HistoryEntry]) -> dict[tuple[str, str], int]:
    """``(service, kind) → count``: monotonic, since the history is append-only."""
    c: Counter[tuple[str, str]] = Counter()
    for h in history:
        kind = change_kind(h)
        if kind:
            c[(h.service, kind)] += 1
    return dict(c)


class ChangeCounter:
    """``count_changes`` over the store's history, recomputed only when the state version moved."""

    def __init__(self, store: Any) -> None:
        self.store, self._version = store, -1
        self._counts: dict[tuple[str, str], int] = {}

    def counts(self) -> dict[tuple[str, str], int]:
        v = self.store.version()
        if v != self._version:
            self._counts, self._version = count_changes(self.store.history(None, HISTORY_LIMIT)), v
        return self._counts


def render_metrics(counts: dict[tuple[str, str], int], *, leader: bool, term: int | None, services: Iterable[str]) -> str:
    """The controller's /metrics in the Prometheus text format."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class Collector:
        def collect(self) -> Iterable[Any]:
            changes = CounterMetricFamily("migration_changes", "Shifts, rollbacks and approvals recorded in the "
                                          "rollout history (by anyone).", labels=["service", "action"])
            for svc in sorted(set(services) | {s for s, _ in counts}):
                for kind in CHANGE_ACTIONS:
                    changes.add_metric([svc, kind], counts.get((svc, kind), 0))
            yield changes
            yield GaugeMetricFamily("migration_controller_leader", "1 on the rollout controller replica holding "
                                    "the lease.", value=1 if leader else 0)
            yield GaugeMetricFamily("migration_controller_term", "Fencing token of the lease term held (0: none).",
                                    value=term or 0)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return generate_latest(registry).decode()


class ClusterController:
    """Renew the lease every third of it; while leader, tick every service each interval."""

    def __init__(self, ctl: Any, services: list[str], lease: RedisLease, *, interval_s: float,
                 log: Callable[[dict], None] = lambda e: None, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctl, self.services, self.lease, self.interval_s = ctl, services, lease, interval_s
        self.log, self.clock = log, clock
        self.heartbeat = clock()
        self.leading = False
        self.stop = threading.Event()
        self._next_tick = 0.0

    @property
    def step_s(self) -> float:
        return min(renew_every_s(self.lease.view.lease_ms), self.interval_s)

    def role(self) -> str:
        return "leader" if self.lease.may_act() else "standby"

    def turn(self) -> None:
        """One round: the lease, then (leader, interval due) one tick per service."""
        view = self.lease.step()
        self.heartbeat = now = self.clock()
        leading = self.lease.may_act()
        if leading != self.leading:
            self.leading = leading
            self.log({"event": "leader" if leading else "standby", "identity": view.identity, "term": view.token,
                      **({"error": self.lease.last_error} if self.lease.last_error else {})})
            self._next_tick = now  # a new leader evaluates at once
        if not leading or now < self._next_tick:
            return
        self._next_tick = now + self.interval_s
        for service in self.services:
            if not self.lease.may_act():
                return
            try:
                t = self.ctl.tick(service)
            except LeaseLost as e:
                self.log({"event": "deposed", "identity": view.identity, "service": service, "error": str(e)})
                self.lease.view = type(view)(identity=view.identity, lease_ms=view.lease_ms)
                self.leading = False
                return
            except Exception as e:  # noqa: BLE001 — one service's failure must not stop the others
                self.log({"event": "error", "service": service, "error": f"{type(e).__name__}: {e}"})
                continue
            self.log({"event": "tick", "identity": view.identity, "term": view.token, "service": service,
                      "step": t.step, "decision": t.decision, "applied": t.applied, "reason": t.reason})

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.turn()
                self.stop.wait(self.step_s)
        finally:
            self.lease.release()
            self.log({"event": "stopped", "identity": self.lease.view.identity})

    def live(self) -> bool:
        return self.clock() - self.heartbeat < max(10.0, 3 * self.step_s + 30)


def serve_health(controller: ClusterController, counter: ChangeCounter, host: str, port: int) -> ThreadingHTTPServer:
    """Start the probe/metrics server in a daemon thread; returns it (``server_address`` has the port)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # no access log for probes
            pass

        def _send(self, code: int, body: str, ctype: str = "application/json") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 — http.server's name
            path = self.path.split("?", 1)[0]
            lease = controller.lease
            if path == "/healthz":
                ok = controller.live()
                self._send(200 if ok else 503, json.dumps({"status": "ok" if ok else "control loop stuck"}))
            elif path == "/ready":
                role, err = controller.role(), lease.last_error
                ok = role == "leader" or err is None
                doc = {"ready": ok, "role": role, "identity": lease.view.identity, "term": lease.view.token}
                if err:
                    doc["error"] = err
                self._send(200 if ok else 503, json.dumps(doc))
            elif path == "/metrics":
                try:
                    counts = counter.counts()
                except Exception as e:  # noqa: BLE001
                    self._send(503, json.dumps({"error": f"state store: {e}"}))
                    return
                self._send(200, render_metrics(counts, leader=controller.role() == "leader", term=lease.view.token,
                                               services=controller.services),
                           "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._send(404, json.dumps({"error": "not found: /healthz, /ready, /metrics"}))

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="controller-health", daemon=True).start()
    return server
