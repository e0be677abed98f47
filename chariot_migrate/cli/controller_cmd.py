"""controller: the rollout controller as a cluster workload (leader lease, probes, metrics)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

import typer

from .common import ControlError, RoutesOpt, StateOpt, friendly_errors
from .plan_cmd import MetricsOpt, OutboxOpt


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly_errors
    def controller(services: list[str] = typer.Argument(None, help="services to roll out [all, in phase order]"),
                   interval: float = typer.Option(None, "--interval", help="seconds between evaluations "
                                                  "[plan.interval_s]"),
                   lease_ms: int = typer.Option(15_000, "--lease-ms", help="leader lease; a standby takes over "
                                                "within this long after the leader dies"),
                   identity: str = typer.Option(None, "--identity", help="this replica's name in the lease and "
                                                "the history [env HOSTNAME (the pod name) + pid]"),
                   health_host: str = typer.Option("127.0.0.1", "--health-host"),
                   health_port: int = typer.Option(8002, "--health-port", help="/healthz, /ready, /metrics (0 = any)"),
                   routes: str = RoutesOpt, state: str = StateOpt, metrics_store: str = MetricsOpt,
                   outbox: str = OutboxOpt) -> None:
        """Run the rollout controller as one of several replicas: the one holding the leader lease
        (in the Redis state store) promotes, holds or rolls back every service each interval; the
        others wait and take over when it dies or stops renewing. Every change is fenced by the
        lease: a deposed leader cannot apply one. SIGTERM steps down at once."""
        from ..rollout.cluster import ChangeCounter, ClusterController, serve_health
        from ..rollout.lease import FencedStore, RedisLease
        from ..rollout.store import state_url_from_env
        from .plan_cmd import build_controller

        url = state_url_from_env(state)
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ControlError(f"the controller's leader lease needs a Redis state store (--state redis://…), not "
                               f"{url.split(':', 1)[0]}; on one host run `chariot-migrate rollout SERVICE --watch`")
        name = identity or f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{os.getpid()}"
        ctl, cfg, plan = build_controller(routes, url, metrics_store, outbox=outbox, actor="rollout-controller")
        unknown = [s for s in services or [] if s not in cfg.services]
        if unknown:
            raise ControlError(f"unknown service {unknown[0]!r}; routes.yaml knows: {', '.join(sorted(cfg.services))}")
        targets = list(services or sorted(cfg.services, key=lambda s: cfg.services[s].phase))
        raw = ctl.ops.store
        lease = RedisLease(raw.client, raw.prefix, "controller", name, lease_ms)
        ctl.ops.store = FencedStore(raw, lease)  # every change the controller makes is fenced

        def log(event: dict) -> None:
            print(json.dumps(event, default=str), flush=True)

        loop = ClusterController(ctl, targets, lease, interval_s=interval or plan.interval_s, log=log)
        server = serve_health(loop, ChangeCounter(raw), health_host, health_port)
        log({"event": "listening", "port": server.server_address[1],
             "health_url": f"http://{health_host}:{server.server_address[1]}",
             "identity": name, "services": targets, "lease_ms": lease_ms})
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: loop.stop.set())
        try:
            loop.run()
        finally:
            server.shutdown()
        sys.exit(0)
