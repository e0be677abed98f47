"""`chariot-migrate up`: the whole local stack in one command (what `make demo` runs).

moto server (AWS on 127.0.0.1) → provision the legacy estate's tables/buckets/secrets → deploy its
functions into moto's Lambda registry → start the new services that declare an `app` → start the
proxy (100 % legacy) → create the demo account and write `.chariot-migrate/demo.env`.
Everything Chariot-specific is reached through import strings in routes.yaml, so this command
works for any estate. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import typer

from .common import RoutesOpt, StateOpt, console, friendly_errors, routes_path


def resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    if not attr:
        raise typer.BadParameter(f"{ref!r} must look like 'package.module:name'")
    return getattr(importlib.import_module(module), attr)


class Child:
    """A started subprocess that announces its ports on its first JSON stdout line."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 — lives as long as the child
        self.popen = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                      start_new_session=True)
        self.info: dict[str, Any] = {}

    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        assert self.popen.stdout is not None
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.popen.stdout.readline()
            if line.startswith("{"):
                self.info = json.loads(line)
                # Keep draining stdout so the child never blocks on a full pipe.
                threading.Thread(target=lambda: [None for _ in self.popen.stdout], daemon=True).start()
                return self.info
            if not line and self.popen.poll() is not None:
                break
        raise RuntimeError(f"{self.name} did not start; see {self.log_path}:\n"
                           + "".join(self.log_path.read_text().splitlines(True)[-15:]))

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._log.close()


def _redis_answers(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except Exception:  # noqa: BLE001 — any failure means "no Redis here"
        return False


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _cli() -> list[str]:
    return [sys.executable, "-m", "chariot_migrate.cli.main"]


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly_errors
    def up(routes: str = RoutesOpt, state: str = StateOpt,
           port: int = typer.Option(8000, help="proxy port (0 = any free port)"),
           admin_port: int = typer.Option(8001, help="admin API port (0 = any free port)"),
           moto_port: int = typer.Option(0, help="moto server port (0 = any free port)"),
           workers: int = typer.Option(1, help="proxy workers"),
           services: bool = typer.Option(True, help="also start the new services (at 0 %)"),
           redis_url: str = typer.Option("redis://127.0.0.1:6379/0", "--redis",
                                         help="event bus and cache for the services, used when it answers"),
           state_dir: str = typer.Option(".chariot-migrate", help="where demo.env and logs go")) -> None:
        """Start moto, the legacy Lambda estate, the new services and the proxy on 127.0.0.1."""
        from ..lambda_adapters.invokers import load_functions
        from ..lambda_adapters.moto_stack import MotoStack, deploy_functions
        from ..routes.loader import load_table

        path = Path(routes_path(routes)).resolve()
        cfg = load_table(path).config
        out = Path(state_dir)
        out.mkdir(parents=True, exist_ok=True)
        children: list[Child] = []
        # moto accepts any credentials; the estate's provisioning code uses plain boto3.
        for k, v in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local"),
                     ("AWS_DEFAULT_REGION", cfg.legacy.region)):
            os.environ.setdefault(k, v)
        stack = MotoStack(port=moto_port, region=cfg.legacy.region)
        try:
            console.print(f"moto server      {stack.endpoint_url}")
            if cfg.legacy.provision:
                resolve(cfg.legacy.provision)(stack.endpoint_url, cfg.legacy.region)
            if cfg.legacy.functions:
                specs = load_functions(cfg.legacy.functions)
                deploy_functions(stack, specs)
                console.print(f"legacy functions {len(specs)} deployed into moto Lambda")
            env = {**os.environ, "CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL": stack.endpoint_url,
                   "AWS_ENDPOINT_URL": stack.endpoint_url, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                   "AWS_DEFAULT_REGION": cfg.legacy.region}
            if state:
                env["CHARIOT_MIGRATE_STATE"] = state
            # Services find each other as <NAME>_URL (e.g. ACCOUNT_URL); events cross processes
            # through Redis Streams when a Redis answers, else each service keeps its own bus.
            for name, svc in cfg.services.items():
                if svc.url:
                    env.setdefault(name.upper().replace("-", "_") + "_URL", svc.url)
            if _redis_answers(redis_url):
                env.setdefault("REDIS_URL", redis_url)
                env.setdefault("EVENT_BUS", "redis")
                console.print(f"event bus        Redis Streams at {redis_url}")
            if services:
                for name, svc in sorted(cfg.services.items(), key=lambda kv: kv[1].phase):
                    if not svc.app or not svc.url:
                        continue
                    if not _importable(svc.app.partition(":")[0]):
                        console.print(f"service-{name:<8} not built yet ({svc.app}); legacy serves it")
                        continue
                    svc_port = urlparse(svc.url).port or 80
                    child = Child(f"service-{name}", [*_cli(), "service", "run", name, "--routes", str(path),
                                                      "--port", str(svc_port)], env, out / "logs")
                    children.append(child)
                for child in [c for c in children if c.name.startswith("service-")]:
                    child.wait_ready()
                    console.print(f"{child.name:<16} http://127.0.0.1:{child.info['port']}")
            proxy = Child("proxy", [*_cli(), "proxy", "--routes", str(path), "--port", str(port),
                                    "--admin-port", str(admin_port), "--workers", str(workers)], env, out / "logs")
            children.append(proxy)
            info = proxy.wait_ready()
            proxy_url = f"http://127.0.0.1:{info['port']}"
            console.print(f"proxy            {proxy_url}   (admin http://127.0.0.1:{info['admin_port']})")
            demo: dict[str, Any] = {}
            if cfg.legacy.demo:
                demo = resolve(cfg.legacy.demo)(endpoint_url=stack.endpoint_url, proxy_url=proxy_url,
                                                region=cfg.legacy.region)
                env_file = out / "demo.env"
                env_file.write_text("".join(f"export {k}={v}\n" for k, v in demo.get("env", {}).items()))
                os.chmod(env_file, 0o600)
                console.print(f"demo account     {demo.get('account', '')}  (credentials in {env_file})")
            print(json.dumps({"event": "up.ready", "port": info["port"], "admin_port": info["admin_port"],
                              "moto": stack.endpoint_url, "services": {c.name: c.info.get("port") for c in children},
                              "env_file": str(out / "demo.env")}), flush=True)
            if demo.get("recipe"):
                console.print(demo["recipe"], highlight=False)
            console.print("Ctrl-C stops everything.")
            _wait_for_signal(children)
        finally:
            for c in reversed(children):
                c.stop()
            stack.stop()


def _wait_for_signal(children: list[Child]) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        dead = [c for c in children if c.popen.poll() is not None]
        if dead:
            raise RuntimeError(f"{dead[0].name} exited ({dead[0].popen.returncode}); see {dead[0].log_path}")
