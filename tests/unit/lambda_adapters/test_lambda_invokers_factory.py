"""build_invoker / load_functions: routes.yaml's legacy section -> a Transport."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from chariot_migrate.lambda_adapters.invokers import (
    HttpApiInvoker,
    LambdaInvoker,
    LocalInvoker,
    build_invoker,
    load_functions,
)
from chariot_migrate.lambda_adapters.spec import FunctionSpec
from chariot_migrate.routes.models import LegacyConfig

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "lambdas"


@pytest.fixture
def estate_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"estate_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            from chariot_migrate.lambda_adapters.spec import FunctionSpec
            calls = []
            FUNCTIONS = [FunctionSpec("echo", "app.echo", {str(FIXTURES / "basic")!r})]
            def build():
                calls.append(1)
                return FUNCTIONS
            NOT_SPECS = ["x"]
            NUMBER = 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_load_functions_from_a_list_or_a_callable(estate_module: str) -> None:
    specs = load_functions(f"{estate_module}:FUNCTIONS")
    assert [s.name for s in specs] == ["echo"] and isinstance(specs[0], FunctionSpec)
    assert load_functions(f"{estate_module}:build") == specs
    assert sys.modules[estate_module].calls == [1]  # the callable ran once


@pytest.mark.parametrize(
    ("ref", "match"),
    [
        ("no_colon", "must look like"),
        ("module_that_does_not_exist_xyz:X", "cannot import"),
        ("{mod}:MISSING", "has no 'MISSING'"),
        ("{mod}:NOT_SPECS", "list of FunctionSpec"),
        ("{mod}:NUMBER", "list of FunctionSpec"),
    ],
)
def test_load_functions_errors_are_clear(estate_module: str, ref: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_functions(ref.format(mod=estate_module))


async def test_build_invoker_local(estate_module: str) -> None:
    cfg = LegacyConfig(invoker="local", functions=f"{estate_module}:build", stage="prod", event_format="v2",
                       default_function="echo", concurrency=2, timeout_s=5)
    inv = build_invoker(cfg)
    try:
        assert isinstance(inv, LocalInvoker)
        assert inv.runtime.function_names == ["echo"] and inv.runtime.concurrency == 2
        assert inv.event_format == "v2" and inv.stage == "prod" and inv.default_function == "echo"
        assert inv.integration_timeout_s == 5
    finally:
        await inv.aclose()


async def test_build_invoker_local_with_explicit_functions() -> None:
    cfg = LegacyConfig(invoker="local", functions="unused:X")
    inv = build_invoker(cfg, functions=[FunctionSpec("f", "app.echo", str(FIXTURES / "basic"))])
    try:
        assert isinstance(inv, LocalInvoker) and inv.runtime.function_names == ["f"]
    finally:
        await inv.aclose()


async def test_build_invoker_lambda_and_http() -> None:
    inv = build_invoker(LegacyConfig(invoker="lambda", endpoint_url="http://127.0.0.1:5999", region="eu-west-1"))
    try:
        assert isinstance(inv, LambdaInvoker)
        assert inv.endpoint_url == "http://127.0.0.1:5999" and inv.region == "eu-west-1"
        # loopback endpoint (moto): dummy credentials, never a developer's real profile
        assert inv._client._request_signer._credentials.access_key == "testing"
    finally:
        await inv.aclose()
    http = build_invoker(LegacyConfig(invoker="http", url="https://abc.execute-api.us-east-1.amazonaws.com/chariot"))
    assert isinstance(http, HttpApiInvoker)
    assert http.base_url == "https://abc.execute-api.us-east-1.amazonaws.com/chariot"
    await http.aclose()


def test_bad_event_format_rejected() -> None:
    with pytest.raises(ValueError, match="event_format"):
        LambdaInvoker("http://127.0.0.1:1", event_format="v3")  # type: ignore[arg-type]
