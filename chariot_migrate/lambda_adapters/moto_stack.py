"""Local AWS: a moto server on 127.0.0.1 whose Lambda ``Invoke`` runs real code.

moto (5.2.5) stores Lambda functions but, without Docker, never runs them: its simple backend
echoes the payload and answers 200 even for unknown functions. ``MotoStack`` patches that
backend's ``invoke`` (the server runs in this process) so an ``Invoke`` against the endpoint —
boto3, ``aws lambda invoke``, or a handler calling another function — executes the stored zip
through ``LocalLambdaRuntime``: 404 for unknown functions, ``X-Amz-Function-Error``,
``X-Amz-Executed-Version``, ``X-Amz-Log-Result`` for ``LogType=Tail``, alias weights honoured,
``InvocationType=Event`` answered 202 at once and run in the background.

moto keeps its backends in module globals, so every ``MotoStack`` in one process shares one
AWS state (``reset`` wipes it for all); each stack routes invokes to its own runtime by port.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import random
import threading
import urllib.request
import zipfile
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import boto3
import moto
from botocore.config import Config
from moto.server import ThreadedMotoServer

from chariot_migrate.lambda_adapters.runtime import DUMMY_CREDENTIALS, LocalLambdaRuntime
from chariot_migrate.lambda_adapters.spec import FunctionSpec

log = logging.getLogger(__name__)

PINNED_MOTO_VERSION = "5.2.5"  # the invoke patch relies on private moto API; see _install_patch
LAMBDA_ROLE_NAME = "chariot-migrate-lambda"
_ASSUME_ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


# --------------------------------------------------------------------------------------------
# The moto invoke patch


class _Bridge:
    """Process-wide registry: moto server port -> the runtime executing its functions."""

    lock = threading.Lock()
    runtimes: dict[int, LocalLambdaRuntime] = {}
    deployed: dict[tuple[int, str, str], str] = {}  # (port, name, version) -> config fingerprint
    installed = False

    @classmethod
    def runtime_for(cls, headers: Any) -> tuple[int, LocalLambdaRuntime]:
        host = headers.get("Host", "") if headers is not None else ""
        port = urlsplit(f"//{host}").port or 0
        with cls.lock:
            if port in cls.runtimes:
                return port, cls.runtimes[port]
            if len(cls.runtimes) == 1:
                return next(iter(cls.runtimes.items()))
        raise RuntimeError(f"no Lambda runtime registered for the moto server at {host!r}")


def _split_name(function_name: str) -> tuple[str, str | None]:
    """(function name, qualifier) from "name", "name:qualifier" or a (qualified) ARN."""
    if function_name.startswith("arn:"):
        rest = function_name.split(":function:", 1)[-1]
    else:
        rest = function_name
    name, _, qualifier = rest.partition(":")
    return name, qualifier or None


def _pick_weighted(primary: str, weights: dict[str, float]) -> str:
    r = random.random()
    acc = 0.0
    for version, weight in weights.items():
        acc += float(weight)
        if r < acc:
            return str(version)
    return primary


def _patched_invoke(
    self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
) -> bytes:
    """Replacement for ``LambdaSimpleBackend.invoke`` that runs the function's code."""
    fn = self.get_function(function_name, qualifier)  # UnknownFunctionException -> 404
    name, name_qualifier = _split_name(function_name)
    qualifier = name_qualifier or qualifier
    if qualifier and qualifier.lower() != "$latest":
        alias = self._lambdas._get_function_aliases(name).get(qualifier)
        weights = ((alias.routing_config or {}).get("AdditionalVersionWeights") if alias else None) or {}
        if weights:
            chosen = _pick_weighted(str(alias.function_version), weights)
            fn = self.get_function(name, chosen)

    port, runtime = _Bridge.runtime_for(headers)
    version = str(fn.version)
    spec = FunctionSpec(
        name=fn.function_name,
        handler=fn.handler or "",
        code_dir="",
        environment={str(k): str(v) for k, v in (fn.environment_vars or {}).items()},
        timeout_s=int(fn.timeout or 3),
        memory_mb=int(fn.memory_size or 128),
        runtime=fn.run_time or "python3.11",
    )
    fingerprint = f"{fn.code_sha_256}:{spec!r}"
    key = (port, fn.function_name, version)
    if _Bridge.deployed.get(key) != fingerprint:
        runtime.deploy(spec, version=version, code_zip=fn.code_bytes)
        _Bridge.deployed[key] = fingerprint

    payload = body if isinstance(body, bytes) else (body or "").encode("utf-8")
    invocation_type = headers.get("X-Amz-Invocation-Type", "RequestResponse")
    if invocation_type == "Event":
        runtime.invoke_background(fn.function_name, payload, qualifier=version)
        return b""  # moto's response answers 202
    if invocation_type == "DryRun":
        return b""  # 204
    res = runtime.invoke_sync(fn.function_name, payload, qualifier=version, log_tail=True)
    response_headers["x-amz-executed-version"] = version
    if res.function_error:
        response_headers["x-amz-function-error"] = res.function_error
    if headers.get("X-Amz-Log-Type") == "Tail":
        response_headers["x-amz-log-result"] = res.log_result
    return res.payload


def _install_patch() -> None:
    with _Bridge.lock:
        if _Bridge.installed:
            return
        if moto.__version__ != PINNED_MOTO_VERSION:
            raise RuntimeError(
                f"MotoStack patches private moto API verified on moto {PINNED_MOTO_VERSION}, "
                f"but moto {moto.__version__} is installed: pin moto=={PINNED_MOTO_VERSION} or re-verify "
                "chariot_migrate/lambda_adapters/moto_stack.py::_patched_invoke against the new version."
            )
        from moto.awslambda_simple.models import LambdaSimpleBackend

        LambdaSimpleBackend.invoke = _patched_invoke  # type: ignore[method-assign]  # moto's private API, version-checked above
        _Bridge.installed = True


# --------------------------------------------------------------------------------------------
# The stack


class _MotoServer(ThreadedMotoServer):
    """ThreadedMotoServer binds in its thread; when that fails (a port in use) its start() would
    wait forever. Here the failure reaches start() as one sentence."""

    def _server_entry(self) -> None:
        try:
            super()._server_entry()
        except (OSError, SystemExit):  # werkzeug prints its own lines and exits when the port is taken
            self.failed = True
            self._server_ready_event.set()

    def start(self) -> None:
        self.failed = False
        super().start()
        if self.failed:
            raise RuntimeError(f"moto server: cannot listen on {self._ip_address}:{self._port}; choose another "
                               "--moto-port (0 = any free port)")


class MotoStack:
    """A moto server on 127.0.0.1 (port 0 = ephemeral) plus the runtime behind its Lambda.

    Usable as a context manager. ``execute_lambdas=False`` leaves moto's Lambda as it is.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        region: str = "us-east-1",
        concurrency: int = 4,
        execute_lambdas: bool = True,
    ) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
        self.region = region
        self._session: boto3.session.Session | None = None
        self._session_lock = threading.Lock()
        self._server = _MotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        host, self.port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{self.port}"
        self._configure()
        self.runtime: LocalLambdaRuntime | None = None
        if execute_lambdas:
            _install_patch()
            self.runtime = LocalLambdaRuntime(
                [], aws_endpoint_url=self.endpoint_url, region=region, concurrency=concurrency
            )
            with _Bridge.lock:
                _Bridge.runtimes[self.port] = self.runtime

    def _post(self, path: str, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        req = urllib.request.Request(self.endpoint_url + path, data=data, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - our own loopback server
            resp.read()

    def _configure(self) -> None:
        # Must precede create_function: docker and simple Lambda backends are separate stores.
        self._post("/moto-api/config", {"lambda": {"use_docker": False}})

    def session(self) -> boto3.session.Session:
        """A boto3 session with dummy credentials (shared: it caches the loaded service models)."""
        with self._session_lock:
            if self._session is None:
                self._session = boto3.session.Session(
                    aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                    aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
                    region_name=self.region,
                )
            return self._session

    def client(self, name: str, **kwargs: Any) -> Any:
        kwargs.setdefault("config", Config(retries={"total_max_attempts": 1}, read_timeout=900))
        session = self.session()
        with self._session_lock:  # creating clients from one session is not thread-safe
            return session.client(name, endpoint_url=self.endpoint_url, **kwargs)

    def resource(self, name: str, **kwargs: Any) -> Any:
        session = self.session()
        with self._session_lock:
            return session.resource(name, endpoint_url=self.endpoint_url, **kwargs)

    def env(self) -> dict[str, str]:
        """Environment variables pointing an AWS SDK (or the aws CLI) at this stack."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            **DUMMY_CREDENTIALS,
        }

    def reset(self) -> None:
        """Wipe all moto state (of every stack in this process: moto's backends are global)."""
        self._post("/moto-api/reset")
        self._configure()
        with _Bridge.lock:
            for key in [k for k in _Bridge.deployed if k[0] == self.port]:
                del _Bridge.deployed[key]

    def stop(self) -> None:
        with _Bridge.lock:
            _Bridge.runtimes.pop(self.port, None)
            for key in [k for k in _Bridge.deployed if k[0] == self.port]:
                del _Bridge.deployed[key]
        if self.runtime is not None:
            self.runtime.close()
        self._server.stop()

    def __enter__(self) -> MotoStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Deploying an estate of functions


def zip_code_dir(code_dir: str) -> bytes:
    """A deterministic zip of a directory (same files -> same bytes -> same CodeSha256)."""
    root = os.path.abspath(code_dir)
    if not os.path.isdir(root):
        raise ValueError(f"code_dir {code_dir!r} is not a directory")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for fname in sorted(filenames):
                if fname.endswith(".pyc"):
                    continue
                full = os.path.join(dirpath, fname)
                info = zipfile.ZipInfo(os.path.relpath(full, root), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(full, "rb") as f:
                    zf.writestr(info, f.read())
    return buf.getvalue()


def ensure_lambda_role(iam: Any, role_name: str = LAMBDA_ROLE_NAME) -> str:
    try:
        return iam.get_role(RoleName=role_name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=_ASSUME_ROLE_POLICY)["Role"]["Arn"]


def deploy_functions(
    stack: MotoStack, specs: Iterable[FunctionSpec], *, publish: bool = False
) -> list[dict[str, Any]]:
    """Create (or update) each function in the stack's Lambda registry; returns their configs.

    Re-deploying changed code or config updates the function (the runtime then retires the
    old warm workers); unchanged functions keep theirs.
    """
    lam = stack.client("lambda")
    role_arn = ensure_lambda_role(stack.client("iam"))
    out = []
    for spec in specs:
        code = zip_code_dir(spec.code_dir)
        config: dict[str, Any] = {
            "Handler": spec.handler,
            "Runtime": spec.runtime,
            "Timeout": int(spec.timeout_s),
            "MemorySize": int(spec.memory_mb),
            "Environment": {"Variables": {str(k): str(v) for k, v in spec.environment.items()}},
            "Description": spec.description,
        }
        try:
            current = lam.get_function(FunctionName=spec.name)["Configuration"]
        except lam.exceptions.ResourceNotFoundException:
            current = None
        if current is None:
            cfg = lam.create_function(
                FunctionName=spec.name, Role=role_arn, Code={"ZipFile": code}, Publish=publish, **config
            )
        else:
            cfg = current
            sha = _code_sha256(code)
            if current.get("CodeSha256") != sha:
                cfg = lam.update_function_code(FunctionName=spec.name, ZipFile=code)
            if any(current.get(k) != v for k, v in config.items() if k != "Environment") or (
                current.get("Environment", {}).get("Variables", {}) != config["Environment"]["Variables"]
            ):
                cfg = lam.update_function_configuration(FunctionName=spec.name, **config)
            if publish:
                cfg = lam.publish_version(FunctionName=spec.name)
        cfg.pop("ResponseMetadata", None)
        out.append(cfg)
    return out


def _code_sha256(code: bytes) -> str:
    return base64.b64encode(hashlib.sha256(code).digest()).decode("ascii")
