"""The legacy Lambda estate: one FunctionSpec per route family, and the route → function map.

``code_dir`` is a self-contained deployment package built lazily under
``.chariot-migrate/build/legacy-package`` (chariot_migrate/__init__.py, legacy/, model/);
third-party libraries (boto3, pyjwt, cryptography, pydantic) come from the runtime.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from chariot_migrate.lambda_adapters.spec import FunctionSpec

from . import aws

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # .../chariot_migrate
_lock = threading.Lock()

# name → (handler module, timeout s, memory MB, description)
FUNCTIONS: dict[str, tuple[str, int, int, str]] = {
    "chariot-token": ("token", 10, 256, "GET /token: API key → JWT"),
    "chariot-search": ("search", 29, 1024, "GET/POST /my, GET /my/count"),
    "chariot-asset": ("asset", 29, 512, "PUT/DELETE /asset, POST /bulk/asset"),
    "chariot-seed": ("seed", 29, 512, "PUT /seed"),
    "chariot-preseed": ("preseed", 29, 512, "POST/PUT/DELETE /preseed"),
    "chariot-attribute": ("attribute", 29, 512, "PUT/DELETE /attribute, POST /bulk/attribute"),
    "chariot-risk": ("risk", 29, 512, "PUT/DELETE /risk, POST /bulk/risk"),
    "chariot-job": ("job", 29, 512, "POST /job, GET /capabilities, /capability/schedule…"),
    "chariot-job-worker": ("job_worker", 300, 1024, "runs queued capability jobs (async)"),
    "chariot-account": ("account", 29, 256, "POST/DELETE /account/{member}, /account/alert"),
    "chariot-key": ("key", 29, 256, "POST/DELETE /key"),
    "chariot-setting": ("setting", 29, 256, "PUT/DELETE /setting"),
    # Same handler module, its own function: routes.yaml gives /configuration to its own function.
    "chariot-configuration": ("setting", 29, 256, "PUT/DELETE /configuration"),
    "chariot-file": ("file", 29, 512, "PUT/GET/DELETE /file, PUT/GET /encrypted-file"),
    "chariot-hook": ("hook", 29, 256, "PUT /hook/{username}/{pin} (inbound webhook)"),
    "chariot-schema": ("schema", 10, 256, "GET /schema"),
    "chariot-report": ("report", 29, 512, "POST /export/report"),
}

# (method, API Gateway resource template) → function name; for routes.yaml.
ROUTE_FUNCTIONS: dict[tuple[str, str], str] = {
    ("GET", "/token"): "chariot-token",
    ("GET", "/my"): "chariot-search",
    ("POST", "/my"): "chariot-search",
    ("GET", "/my/count"): "chariot-search",
    ("PUT", "/asset"): "chariot-asset",
    ("DELETE", "/asset"): "chariot-asset",
    ("POST", "/bulk/asset"): "chariot-asset",
    ("PUT", "/seed"): "chariot-seed",
    ("POST", "/preseed"): "chariot-preseed",
    ("PUT", "/preseed"): "chariot-preseed",
    ("DELETE", "/preseed"): "chariot-preseed",
    ("PUT", "/attribute"): "chariot-attribute",
    ("DELETE", "/attribute"): "chariot-attribute",
    ("POST", "/bulk/attribute"): "chariot-attribute",
    ("PUT", "/risk"): "chariot-risk",
    ("DELETE", "/risk"): "chariot-risk",
    ("POST", "/bulk/risk"): "chariot-risk",
    ("POST", "/job"): "chariot-job",
    ("GET", "/capabilities"): "chariot-job",
    ("POST", "/capability/schedule"): "chariot-job",
    ("PUT", "/capability/schedule/{scheduleId}"): "chariot-job",
    ("DELETE", "/capability/schedule/{scheduleId}"): "chariot-job",
    ("PATCH", "/capability/schedule/{scheduleId}/{action}"): "chariot-job",
    ("GET", "/account/alert"): "chariot-account",
    ("POST", "/account/{member}"): "chariot-account",
    ("DELETE", "/account/{member}"): "chariot-account",
    ("POST", "/key"): "chariot-key",
    ("DELETE", "/key"): "chariot-key",
    ("PUT", "/setting"): "chariot-setting",
    ("DELETE", "/setting"): "chariot-setting",
    ("PUT", "/configuration"): "chariot-configuration",
    ("DELETE", "/configuration"): "chariot-configuration",
    ("PUT", "/file"): "chariot-file",
    ("GET", "/file"): "chariot-file",
    ("DELETE", "/file"): "chariot-file",
    ("PUT", "/encrypted-file"): "chariot-file",
    ("GET", "/encrypted-file"): "chariot-file",
    ("PUT", "/hook/{username}/{pin}"): "chariot-hook",
    ("GET", "/schema"): "chariot-schema",
    ("POST", "/export/report"): "chariot-report",
}
PUBLIC_ROUTES = frozenset({("GET", "/token"), ("PUT", "/hook/{username}/{pin}")})


def build_dir() -> Path:
    base = Path(os.environ.get("CHARIOT_MIGRATE_HOME", Path.cwd() / ".chariot-migrate"))
    return base / "build" / "legacy-package"


def _sources() -> list[Path]:
    files = [PACKAGE_ROOT / "__init__.py", PACKAGE_ROOT / "lambda_adapters" / "spec.py",
             PACKAGE_ROOT / "bounded_json.py"]
    for sub in ("legacy", "model"):
        files += sorted((PACKAGE_ROOT / sub).rglob("*.py"))
    return files


def _fingerprint() -> str:
    import hashlib

    h = hashlib.sha256()
    for f in _sources():
        st = f.stat()
        h.update(f"{f.relative_to(PACKAGE_ROOT)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def build_package(dest: Path | None = None, *, force: bool = False) -> Path:
    """Copy chariot_migrate/__init__.py, bounded_json.py, legacy/ and model/ into a package directory; skipped
    when the sources have not changed since the last build (lazy)."""
    dest = dest or build_dir()
    stamp = dest / ".fingerprint"
    fingerprint = _fingerprint()
    if not force and stamp.is_file() and stamp.read_text() == fingerprint:
        return dest
    with _lock:
        tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        pkg = tmp / "chariot_migrate"
        pkg.mkdir(parents=True)
        shutil.copy2(PACKAGE_ROOT / "__init__.py", pkg / "__init__.py")
        shutil.copy2(PACKAGE_ROOT / "bounded_json.py", pkg / "bounded_json.py")  # the JSON loader both sides use
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for sub in ("legacy", "model"):
            shutil.copytree(PACKAGE_ROOT / sub, pkg / sub, ignore=ignore)
        # functions.py imports the toolkit's FunctionSpec; the package only needs the spec module.
        adapters = pkg / "lambda_adapters"
        adapters.mkdir()
        (adapters / "__init__.py").write_text("")
        shutil.copy2(PACKAGE_ROOT / "lambda_adapters" / "spec.py", adapters / "spec.py")
        (tmp / ".fingerprint").write_text(fingerprint)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    return dest


def environment(table: str | None = None, bucket: str | None = None, secret: str | None = None,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        "CHARIOT_TABLE": table or aws.table_name(),
        "CHARIOT_BUCKET": bucket or aws.bucket_name(),
        "CHARIOT_SIGNING_SECRET_ID": secret or aws.secret_id(),
        "CHARIOT_JOB_WORKER": "chariot-job-worker",
        "CHARIOT_REPLAY_PRINCIPAL": aws.replay_principal(),
    }
    return env | (extra or {})


def functions(code_dir: str | None = None, env: dict[str, str] | None = None) -> list[FunctionSpec]:
    """The legacy functions; builds the deployment package unless ``code_dir`` is given."""
    directory = code_dir or str(build_package())
    common = environment() | (env or {})
    return [
        FunctionSpec(name=name, handler=f"chariot_migrate.legacy.{module}.handler", code_dir=directory,
                     environment=dict(common), timeout_s=timeout, memory_mb=memory, description=desc)
        for name, (module, timeout, memory, desc) in FUNCTIONS.items()
    ]
