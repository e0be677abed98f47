"""`up --dynamodb`: a wrong engine or a missing dynalite is one sentence, before anything starts
(no socket bound, no moto, no state dir); and the DynamoDB-only endpoint rule the stack relies on."""

from __future__ import annotations

from typer.testing import CliRunner

from chariot_migrate.aws_resources import DYNAMODB_ENV, dynamodb_endpoint
from chariot_migrate.cli.main import app


def test_unknown_engine_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["up", "--dynamodb", "dynamo", "--state-dir", str(tmp_path / "st")])
    assert res.exit_code == 2, res.output
    assert "choose moto or dynalite" in res.output
    assert not (tmp_path / "st").exists()


def test_dynalite_not_installed_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARIOT_DYNALITE_DIR", str(tmp_path / "nowhere"))
    res = CliRunner().invoke(app, ["up", "--state-dir", str(tmp_path / "st")],
                             env={"CHARIOT_MIGRATE_DYNAMODB": "dynalite"})
    assert res.exit_code == 1, res.output
    assert "dynalite" in res.output and ("make .dynalite" in res.output or "node" in res.output)
    assert not (tmp_path / "st").exists()


def test_the_dynamodb_only_endpoint_wins_over_the_stack_endpoint(monkeypatch):
    monkeypatch.delenv(DYNAMODB_ENV, raising=False)
    assert dynamodb_endpoint("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert dynamodb_endpoint(None) is None
    monkeypatch.setenv(DYNAMODB_ENV, "http://127.0.0.1:4567")
    assert dynamodb_endpoint("http://127.0.0.1:5000") == "http://127.0.0.1:4567"
