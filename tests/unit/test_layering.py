"""The toolkit core never imports the Chariot-specific packages (DESIGN §2)."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "chariot_migrate"
CORE = ["routes", "rollout", "proxy", "shadow", "dual_write", "lambda_adapters", "cli", "examples",
        "transport.py", "jsonlog.py", "resilience", "observability"]
FORBIDDEN = ("chariot_migrate.legacy", "chariot_migrate.model", "chariot_migrate.services")


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
