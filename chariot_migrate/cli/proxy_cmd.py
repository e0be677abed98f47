"""proxy, example-upstream."""

from __future__ import annotations

import typer

from .common import RoutesOpt, StateOpt, friendly_errors, routes_path


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly_errors
    def proxy(routes: str = RoutesOpt, state: str = StateOpt,
              host: str = typer.Option("127.0.0.1", help="public bind address (keep loopback unless behind a LB)"),
              port: int = typer.Option(8000, help="public port (0 = any free port)"),
              admin_host: str = typer.Option("127.0.0.1"),
              admin_port: int = typer.Option(8001, help="admin API port (0 = any free port)"),
              workers: int = typer.Option(1, min=1, max=64),
              access_log: bool = typer.Option(True, help="one JSON line per request on stderr"),
              ready_file: str = typer.Option(None, help="also write the listening ports here as JSON"),
              capture: str = typer.Option(None, help="write sampled, redacted request/response pairs to this JSONL"),
              capture_sample: float = typer.Option(1.0, min=0, max=1, help="share of requests captured"),
              http_client: str = typer.Option(None, help="upstream HTTP client: aiohttp or pyreqwest "
                                              "[default: $CHARIOT_MIGRATE_HTTP_CLIENT, else aiohttp]"),
              fd: int = typer.Option(None, help="serve the public side on this listening socket, already bound by "
                                                "the parent (what `up` does), instead of --host/--port"),
              admin_fd: int = typer.Option(None, help="the same for the admin API"),
              server: str = typer.Option(None, help="ASGI server of the workers: uvicorn or granian (binds its "
                                         "own sockets, so not with --fd) [default: $CHARIOT_MIGRATE_SERVER, "
                                         "else uvicorn]")) -> None:
        """Run the strangler proxy (public port) and its admin API (admin port)."""
        from ..proxy.server import ProxyOptions, serve

        serve(ProxyOptions(routes=routes_path(routes), state=state, host=host, port=port, admin_host=admin_host,
                           admin_port=admin_port, workers=workers, access_log=access_log, ready_file=ready_file,
                           capture=capture, capture_sample=capture_sample, http_client=http_client,
                           fd=fd, admin_fd=admin_fd, server=server))

    @app.command("example-upstream")
    def example_upstream(name: str = typer.Argument("echo", help="side name echoed back, e.g. legacy or new"),
                         host: str = typer.Option("127.0.0.1"), port: int = typer.Option(0),
                         workers: int = typer.Option(1)) -> None:
        """A tiny echo server that answers with what it received (demos, tests, benchmarks)."""
        from ..examples.echo import serve_echo

        serve_echo(name, host, port, workers)
