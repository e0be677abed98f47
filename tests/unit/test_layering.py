"""The toolkit core never imports the Chariot-specific packages (DESIGN §2)."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "chariot_migrate"
CORE = ["routes", "rollout", "proxy", "shadow", "dual_write", "lambda_adapters", "cli", "examples", "bounded_json.py",
        "transport.py", "jsonlog.py", "redact.py", "aws_resources.py", "resilience", "observability"]
FORBIDDEN = ("chariot_migrate.legacy", "chariot_migrate.model", "chariot_migrate.services", "chariot_migrate.gateway")


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    pkg_parts = path.relative_to(PKG.parent).with_suffix("").parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg_parts[: len(pkg_parts) - node.level + 1])
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod
            for a in node.names:
                yield f"{mod}.{a.name}"


def test_core_does_not_import_chariot_specific_code():
    offenders = []
    for entry in CORE:
        target = PKG / entry
        files = [target] if target.is_file() else list(target.rglob("*.py")) if target.exists() else []
        for f in files:
            for mod in _imports(f):
                if mod.startswith(FORBIDDEN):
                    offenders.append(f"{f.relative_to(PKG.parent)} imports {mod}")
    assert offenders == []


SERVICES = PKG / "services"
KIT = "chariot_migrate.services.kit"
ALLOWED_FOR_SERVICES = (KIT, "chariot_migrate.model")


def _chariot_imports(path: Path):
    for mod in _imports(path):
        if mod == "chariot_migrate" or mod.startswith("chariot_migrate."):
            yield mod


def _service_packages():
    return sorted(p for p in SERVICES.iterdir() if p.is_dir() and p.name != "kit" and (p / "__init__.py").exists())


def _within(mod: str, package: str) -> bool:
    return mod == package or mod.startswith(package + ".")


def test_each_service_imports_only_kit_model_and_itself():
    """Database-per-service with the code too: what one service needs from another it gets
    over the network (issue 16). Services build on ``services.kit`` and ``model`` only."""
    offenders = []
    for pkg in _service_packages():
        own = f"chariot_migrate.services.{pkg.name}"
        for f in pkg.rglob("*.py"):
            for mod in _chariot_imports(f):
                # ``from chariot_migrate import bounded_json``-style names resolve to a module
                # or a package attribute; judge by the top-level package they name.
                if mod in ("chariot_migrate", "chariot_migrate.services"):
                    continue
                if _within(mod, own) or any(_within(mod, a) for a in ALLOWED_FOR_SERVICES):
                    continue
                offenders.append(f"{f.relative_to(PKG.parent)} imports {mod}")
    assert offenders == []


def test_kit_never_imports_a_service():
    offenders = []
    services = {f"chariot_migrate.services.{p.name}" for p in _service_packages()}
    for f in (SERVICES / "kit").rglob("*.py"):
        for mod in _chariot_imports(f):
            if any(_within(mod, s) for s in services):
                offenders.append(f"{f.relative_to(PKG.parent)} imports {mod}")
    assert offenders == []


def test_no_loose_modules_beside_the_services():
    """``services/`` holds the kit and the eight service packages, nothing shared sideways."""
    loose = sorted(p.name for p in SERVICES.glob("*.py") if p.name != "__init__.py")
    assert loose == []


def test_the_graphql_gateway_reaches_the_services_only_over_the_network():
    """Its resolvers call the REST routes through the proxy; it imports no service, no legacy
    code and no core package (the proxy loads it by the name routes.yaml gives)."""
    offenders = []
    for f in (PKG / "gateway").rglob("*.py"):
        for mod in _chariot_imports(f):
            if not (_within(mod, "chariot_migrate.gateway") or _within(mod, "chariot_migrate.model")):
                offenders.append(f"{f.relative_to(PKG.parent)} imports {mod}")
    assert offenders == []
