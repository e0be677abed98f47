"""observability is toolkit core: it never imports the Chariot-specific packages, and importing
the modules that emit metrics does not import prometheus-client (the proxy sets
PROMETHEUS_MULTIPROC_DIR only after loading routes.yaml, which imports them)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[3] / "chariot_migrate"
FORBIDDEN = ("chariot_migrate.legacy", "chariot_migrate.model", "chariot_migrate.services", ".legacy", ".model",
             ".services", "..services")


def test_observability_imports_no_chariot_specific_code():
    offenders = []
    for f in [*(PKG / "observability").rglob("*.py"), PKG / "proxy" / "tracing.py"]:
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                ["." * node.level + (node.module or "")] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{f.name}: {n}" for n in names if n.startswith(FORBIDDEN)]
    assert offenders == []


def test_metric_emitting_modules_do_not_import_prometheus_client_at_import_time():
    code = ("import sys\n"
            "import chariot_migrate.observability.metrics, chariot_migrate.shadow.engine\n"
            "import chariot_migrate.dual_write.worker, chariot_migrate.lambda_adapters.runtime\n"
            "import chariot_migrate.proxy.tracing\n"
            "from chariot_migrate.routes.loader import load_table\n"
            "print('prometheus_client' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
