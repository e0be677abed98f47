from __future__ import annotations

import subprocess
import sys

from chariot_migrate.legacy import functions


def test_function_specs_cover_every_route_and_name_real_handlers(tmp_path):
    specs = functions.functions(code_dir=str(tmp_path))
    names = {s.name for s in specs}
    assert set(functions.ROUTE_FUNCTIONS.values()) <= names and "chariot-job-worker" in names
    for s in specs:
        assert s.handler.startswith("chariot_migrate.legacy.") and s.handler.endswith(".handler")
        assert s.environment["CHARIOT_JOB_WORKER"] == "chariot-job-worker"
        assert {"CHARIOT_TABLE", "CHARIOT_BUCKET", "CHARIOT_SIGNING_SECRET_ID"} <= set(s.environment)
    assert ("PUT", "/asset") in functions.ROUTE_FUNCTIONS and ("GET", "/token") in functions.PUBLIC_ROUTES


def test_deployment_package_is_self_contained(tmp_path):
    dest = functions.build_package(tmp_path / "pkg")
    assert (dest / "chariot_migrate" / "legacy" / "asset.py").is_file()
    assert (dest / "chariot_migrate" / "model" / "keys.py").is_file()
    assert not (dest / "chariot_migrate" / "proxy").exists()  # only legacy + model (+ the spec module)
    modules = sorted({s.handler.rsplit(".", 1)[0] for s in functions.functions(code_dir=str(dest))})
    code = ("import importlib, sys; import chariot_migrate; assert chariot_migrate.__file__.startswith(sys.argv[1]), "
            "chariot_migrate.__file__; [importlib.import_module(m) for m in sys.argv[2:]]; print('ok')")
    out = subprocess.run([sys.executable, "-c", code, str(dest), *modules], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(dest), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    marker = dest / "chariot_migrate" / "legacy" / "asset.py"
    before = marker.stat().st_ino
    assert functions.build_package(tmp_path / "pkg") == dest and marker.stat().st_ino == before  # lazy: same file
    functions.build_package(tmp_path / "pkg", force=True)  # rebuilding replaces it cleanly
    assert marker.is_file() and marker.stat().st_ino != before
