"""service run: start one new service (its ASGI app named by routes.yaml's `app:`) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import sys
from urllib.parse import urlparse

import typer

from .common import RoutesOpt, friendly_errors, routes_path

service_app = typer.Typer(help="Run the new services.", no_args_is_help=True)


@service_app.command("run")
@friendly_errors
def run(name: str = typer.Argument(..., help="service name from routes.yaml"), routes: str = RoutesOpt,
        host: str = typer.Option("127.0.0.1"), port: int = typer.Option(None, help="default: the port in its url"),
        workers: int = typer.Option(1, min=1, max=64, help="processes sharing the port"),
        fd: int = typer.Option(None, help="serve on this listening socket, already bound by the parent "
                                          "(what `up` does), instead of --host/--port")) -> None:
    """Serve SERVICE with uvicorn; prints one JSON line with the port when listening."""
    import uvicorn

    from ..lifecycle import CHILD_APP_ENV, adopt_children, bind, die_with_parent, inherited, port_of
    from ..routes.loader import load_table
    from .common import ControlError

    die_with_parent()  # under a supervisor (`up`): this process ends with it

    cfg = load_table(routes_path(routes)).config
    svc = cfg.services.get(name)
    if svc is None:
        raise ControlError(f"unknown service {name!r}; routes.yaml knows: {', '.join(sorted(cfg.services))}")
    if not svc.app:
        raise ControlError(f"service {name!r} has no `app:` import string in routes.yaml")
    if port is None:
        port = urlparse(svc.url).port if svc.url else 0
    sock = inherited(fd) if fd is not None else bind(host, port or 0)
    print(json.dumps({"event": "service.listening", "service": name, "host": host, "port": port_of(sock)}),
          flush=True)
    # Workers (--workers N) build the app through lifecycle.child_app, which ties them to this process.
    os.environ[CHILD_APP_ENV] = svc.app
    adopt_children()
    config = uvicorn.Config("chariot_migrate.lifecycle:child_app", factory=True, workers=workers, loop="uvloop", http="httptools",
                            access_log=False, log_level="warning", lifespan="on", timeout_graceful_shutdown=20)
    # On SIGTERM uvicorn stops accepting, lets requests in flight finish and runs the app's
    # shutdown (queues flushed), then re-raises the signal, which would end the process with
    # -SIGTERM after a clean drain: exit 0 instead, as the proxy does. A SIGTERM that arrives
    # before uvicorn listens exits at once.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if workers > 1:  # uvicorn.Server ignores `workers`: the supervisor forks them onto the socket
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])
