"""FunctionSpec list for the observability test's local Lambda invoker (routes.yaml legacy.functions)."""

from pathlib import Path

from chariot_migrate.lambda_adapters.spec import FunctionSpec

FUNCTIONS = [FunctionSpec(name="obs-echo", handler="app.handler", code_dir=str(Path(__file__).parent / "obs_lambda"))]
