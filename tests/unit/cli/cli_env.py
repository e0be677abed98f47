"""The real Typer app in-process, in a temporary folder with its own routes.yaml and stores."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from chariot_migrate.cli.main import app
from chariot_migrate.rollout.store import open_state_store

HEADER = 'version: 1\nbucket_by: [header:account]\nlegacy: {invoker: http, url: "http://127.0.0.1:9"}\n'


class Cli:
    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.state_url = f"sqlite:///{folder}/state.db"

    def __call__(self, *args: str):
        return CliRunner().invoke(app, list(args))

    def store(self):
        return open_state_store(self.state_url)


def make_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> Cli:
    """A ``Cli`` whose commands find ``body`` (services and routes, after a common header) as
    routes.yaml and this folder's state, metrics and outbox (never a running proxy's admin API)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "routes.yaml").write_text(HEADER + body)
    cli = Cli(tmp_path)
    monkeypatch.setenv("CHARIOT_MIGRATE_STATE", cli.state_url)
    monkeypatch.setenv("CHARIOT_MIGRATE_ROUTES", str(tmp_path / "routes.yaml"))
    monkeypatch.setenv("CHARIOT_MIGRATE_METRICS_STORE", f"sqlite:///{tmp_path}/m.db")
    monkeypatch.delenv("CHARIOT_MIGRATE_ADMIN_URL", raising=False)
    return cli
