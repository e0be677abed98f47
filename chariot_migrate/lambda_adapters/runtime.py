"""Local Lambda runtime emulator: runs Python handlers in warm, isolated worker processes.

moto stores functions but cannot run a Python handler without Docker; this is the layer it
lacks (``reference/lambda-and-moto.md`` §4). Per function version there is a pool of up to
``concurrency`` warm workers, each a fresh interpreter (spawned, never forked: the caller has
threads) started with only the function's environment and its private copy of the deployment
package first on ``sys.path``. The parent enforces the timeout by killing the worker; the
next call cold-starts a new one, as on AWS.

The core is synchronous and thread-safe (moto's server threads call it); ``invoke`` is the
async facade for the proxy's event loop, run on the runtime's own thread pool.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from chariot_migrate.aws_resources import DYNAMODB_ENV
from chariot_migrate.lambda_adapters.spec import FunctionSpec
from chariot_migrate.observability import metrics as obs
from chariot_migrate.observability import tracing

log = logging.getLogger(__name__)

WORKER_SCRIPT = str(Path(__file__).with_name("_worker.py"))
LATEST = "$LATEST"
LOG_TAIL_BYTES = 4096
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# The only parent variables a worker inherits: enough to run an interpreter, nothing else.
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT")
_INIT_TIMEOUT_S = 10.0  # Lambda's init phase limit


class FunctionNotFound(LookupError):
    """No function (or version) of that name is registered with the runtime."""


class TooManyRequests(RuntimeError):
    """Every worker of the function stayed busy for longer than the queue wait allows."""


@dataclass(slots=True)
class InvokeResult:
    payload: bytes
    function_error: str | None  # "Unhandled" when the function failed, as X-Amz-Function-Error
    log_tail: str  # last 4 KB of the invocation's log (START..REPORT) when asked for, else ""
    duration_ms: float
    billed_ms: int
    cold_start: bool
    executed_version: str
    request_id: str
    error_type: str | None = None  # e.g. "ValueError", "Runtime.ImportModuleError", "Sandbox.Timedout"
    timed_out: bool = False
    init_ms: float | None = None

    @property
    def log_result(self) -> str:
        """``log_tail`` base64-encoded, as Invoke's ``LogResult``."""
        return base64.b64encode(self.log_tail.encode("utf-8")).decode("ascii")


@dataclass(frozen=True, slots=True)
class _Version:
    """One deployable function version: its config plus where its code comes from."""

    spec: FunctionSpec
    version: str
    code_zip: bytes | None
    fingerprint: str


def _fingerprint(spec: FunctionSpec, code_zip: bytes | None) -> str:
    h = hashlib.sha256()
    h.update(repr((spec.handler, sorted(spec.environment.items()), spec.timeout_s, spec.memory_mb)).encode())
    h.update(code_zip if code_zip is not None else os.path.abspath(spec.code_dir).encode())
    return h.hexdigest()


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def tail(text: str, limit: int = LOG_TAIL_BYTES) -> str:
    data = text.encode("utf-8")
    return data[-limit:].decode("utf-8", errors="ignore") if len(data) > limit else text


class _Worker:
    """One warm execution environment (a child interpreter running _worker.py)."""

    def __init__(self, proc: subprocess.Popen[bytes], conn: Connection) -> None:
        self.proc = proc
        self.conn = conn
        self.uses = 0
        self.init_ms = 0.0
        self.init_logs = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a kill that did not take
            log.warning("lambda worker %s did not exit after SIGKILL", self.proc.pid)
        self.conn.close()

    def exit_description(self) -> str:
        code = self.proc.poll()
        if code is None:
            try:
                code = self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                return "unknown"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            nice = {"SIGSEGV": "segmentation fault", "SIGKILL": "killed", "SIGABRT": "aborted"}
            return f"signal: {nice.get(name, name)}"
        return f"exit status {code}"


class _Pool:
    """Up to ``size`` warm workers of one function version."""

    def __init__(self, runtime: LocalLambdaRuntime, fv: _Version, task_root: str, size: int) -> None:
        self.runtime = runtime
        self.fv = fv
        self.task_root = task_root
        self.size = size
        self.idle: list[_Worker] = []  # LIFO: the most recently used (warmest) worker first
        self.count = 0  # workers alive or being started
        self.cond = threading.Condition()
        self.closed = False
        self.log_stream = (
            f"{datetime.now(UTC):%Y/%m/%d}/[{fv.version}]{uuid.uuid4().hex}"
        )

    # -- worker lifecycle ---------------------------------------------------------------------

    def acquire(self, wait_s: float) -> _Worker | None:
        """An idle worker, or None when the caller should start a new one (slot reserved)."""
        deadline = time.monotonic() + wait_s
        with self.cond:
            while True:
                if self.closed:
                    raise FunctionNotFound(f"function {self.fv.spec.name}:{self.fv.version} was replaced")
                while self.idle:
                    w = self.idle.pop()
                    if w.alive():
                        return w
                    self.count -= 1
                    w.kill()
                if self.count < self.size:
                    self.count += 1
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TooManyRequests(
                        f"all {self.size} workers of {self.fv.spec.name} stayed busy for {wait_s:.1f}s"
                    )
                self.cond.wait(left)

    def release(self, worker: _Worker | None, healthy: bool) -> None:
        with self.cond:
            if worker is not None and healthy and not self.closed:
                self.idle.append(worker)
            else:
                self.count -= 1
                if worker is not None:
                    worker.kill()
            self.cond.notify()

    def spawn(self) -> _Worker:
        spec = self.fv.spec
        env = self.runtime.worker_env(self.fv, self.task_root, self.log_stream)
        parent_sock, child_sock = socket.socketpair()
        try:
            args = [sys.executable, "-I", WORKER_SCRIPT, str(child_sock.fileno()), *self.runtime.extra_paths]
            proc = subprocess.Popen(
                args,
                env=env,
                cwd=self.task_root,
                pass_fds=(child_sock.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            child_sock.close()
        worker = _Worker(proc, Connection(parent_sock.detach()))
        log.debug("lambda worker %s started for %s:%s", proc.pid, spec.name, self.fv.version)
        return worker

    def close(self) -> None:
        with self.cond:
            self.closed = True
            idle, self.idle = self.idle, []
            self.count -= len(idle)
            self.cond.notify_all()
        for w in idle:
            w.kill()


class LocalLambdaRuntime:
    """Runs functions locally in warm worker pools. See the module docstring.

    ``functions`` is a list of ``FunctionSpec`` or a mapping name -> ``FunctionSpec``; more
    (and other versions, from zip bytes) can be added with ``deploy``.
    """

    def __init__(
        self,
        functions: Iterable[FunctionSpec] | Mapping[str, FunctionSpec] = (),
        *,
        aws_endpoint_url: str | None = None,
        region: str = "us-east-1",
        concurrency: int = 4,
        account_id: str = "123456789012",
        queue_wait_s: float = 30.0,
        extra_paths: Iterable[str] = (),
        log_sink: Callable[[str, str], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.aws_endpoint_url = aws_endpoint_url
        self.region = region
        self.concurrency = concurrency
        self.account_id = account_id
        self.queue_wait_s = queue_wait_s
        self.extra_paths = [os.path.abspath(p) for p in extra_paths]
        self.log_sink = log_sink  # called with (function name, full log text) after each invoke
        self._root = tempfile.mkdtemp(prefix="chariot-lambda-")
        self._lock = threading.Lock()
        self._versions: dict[tuple[str, str], _Version] = {}
        self._pools: dict[str, _Pool] = {}  # fingerprint -> pool
        self._executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="lambda-invoke")
        self._closed = False
        specs = functions.values() if isinstance(functions, Mapping) else functions
        for spec in specs:
            self.deploy(spec)

    # -- registry --------------------------------------------------------------------------

    @property
    def function_names(self) -> list[str]:
        return sorted({name for name, _ in self._versions})

    def deploy(self, spec: FunctionSpec, *, version: str = LATEST, code_zip: bytes | None = None) -> bool:
        """Register (or replace) a function version. Returns True when something changed.

        Identical config and code keep the warm workers; anything else retires them.
        """
        if code_zip is None and not os.path.isdir(spec.code_dir):
            raise ValueError(f"function {spec.name}: code_dir {spec.code_dir!r} is not a directory")
        fv = _Version(spec, str(version), code_zip, _fingerprint(spec, code_zip))
        key = (spec.name, fv.version)
        with self._lock:
            old = self._versions.get(key)
            if old is not None and old.fingerprint == fv.fingerprint:
                return False
            self._versions[key] = fv
            stale = None
            if old is not None and all(v.fingerprint != old.fingerprint for v in self._versions.values()):
                stale = self._pools.pop(old.fingerprint, None)
        if stale is not None:
            stale.close()  # busy workers finish their call, then exit on release
        return True

    def _resolve(self, name: str, qualifier: str | None) -> _Version:
        version = LATEST if qualifier in (None, "", LATEST, "$latest") else str(qualifier)
        fv = self._versions.get((name, version))
        if fv is None:
            what = name if version == LATEST else f"{name}:{version}"
            raise FunctionNotFound(f"Function not found: {what}")
        return fv

    def _pool(self, fv: _Version) -> _Pool:
        with self._lock:
            if self._closed:
                raise RuntimeError("the Lambda runtime is closed")
            pool = self._pools.get(fv.fingerprint)
            if pool is None:
                task_root = self._materialise(fv)
                pool = _Pool(self, fv, task_root, self.concurrency)
                self._pools[fv.fingerprint] = pool
            return pool

    def _materialise(self, fv: _Version) -> str:
        """A private copy of the deployment package (what /var/task is on AWS)."""
        # Keyed by the code alone: functions sharing one package (different handlers) share a copy.
        source = fv.code_zip if fv.code_zip is not None else os.path.abspath(fv.spec.code_dir).encode()
        root = os.path.join(self._root, "pkg-" + hashlib.sha256(source).hexdigest()[:20])
        if os.path.isdir(root):
            return root
        tmp = root + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if fv.code_zip is not None:
            with zipfile.ZipFile(io.BytesIO(fv.code_zip)) as zf:
                zf.extractall(tmp)
        else:
            shutil.copytree(
                os.path.abspath(fv.spec.code_dir), tmp, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        os.replace(tmp, root)
        return root

    def worker_env(self, fv: _Version, task_root: str, log_stream: str) -> dict[str, str]:
        spec = fv.spec
        env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
        env.setdefault("LANG", "en_US.UTF-8")
        if self.aws_endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.aws_endpoint_url
            if os.environ.get(DYNAMODB_ENV):  # `up --dynamodb dynalite`: DynamoDB alone elsewhere
                env[DYNAMODB_ENV] = os.environ[DYNAMODB_ENV]
            env.update(DUMMY_CREDENTIALS)
            # Never let a developer's real profile leak into a function talking to moto.
            env["AWS_CONFIG_FILE"] = os.devnull
            env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        env.update({str(k): str(v) for k, v in spec.environment.items()})
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": fv.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_s),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "LAMBDA_TASK_ROOT": task_root,
                "LAMBDA_RUNTIME_DIR": os.path.dirname(WORKER_SCRIPT),
                "_HANDLER": spec.handler,
                "TZ": ":UTC",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def function_arn(self, name: str, version: str = LATEST) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return arn if version == LATEST else f"{arn}:{version}"

    # -- invoke ----------------------------------------------------------------------------

    def invoke_sync(
        self,
        name: str,
        payload: bytes | str | dict[str, Any] | list[Any] | None = None,
        *,
        qualifier: str | None = None,
        log_tail: bool = False,
        request_id: str | None = None,
    ) -> InvokeResult:
        """Run one invocation and wait for it (blocking). Raises ``FunctionNotFound`` or
        ``TooManyRequests``; function failures come back as ``InvokeResult.function_error``."""
        fv = self._resolve(name, qualifier)
        data = _payload_bytes(payload)
        request_id = request_id or str(uuid.uuid4())
        pool = self._pool(fv)
        worker = pool.acquire(self.queue_wait_s)
        cold = worker is None
        logs: list[str] = []
        healthy = False
        try:
            if worker is None:
                worker, init_error = self._start(pool)
                if init_error is not None:
                    # Init failed: answer with its error; the next call retries init (cold).
                    res = self._init_failure(fv, worker, init_error, request_id)
                    logs.append(res.log_tail)
                    return self._finish(_observed(name, res), log_tail)
            res, healthy = self._run(fv, worker, data, request_id, cold)
            logs.append(res.log_tail)
            return self._finish(_observed(name, res), log_tail)
        finally:
            pool.release(worker, healthy)
            if self.log_sink is not None and logs:
                try:
                    self.log_sink(name, logs[0])
                except Exception:  # noqa: BLE001 - a log sink must never break an invocation
                    log.exception("lambda log sink failed")

    async def invoke(
        self,
        name: str,
        payload: bytes | str | dict[str, Any] | list[Any] | None = None,
        *,
        qualifier: str | None = None,
        log_tail: bool = False,
        request_id: str | None = None,
    ) -> InvokeResult:
        """Async facade of ``invoke_sync`` (runs on the runtime's thread pool)."""
        loop = asyncio.get_running_loop()
        span = tracing.start_span(f"lambda.invoke {name}", kind=tracing.SpanKind.CLIENT,
                                  attributes={"faas.invoked_name": name, "faas.invoked_provider": "emulator"})
        try:
            res = await loop.run_in_executor(
                self._executor,
                lambda: self.invoke_sync(name, payload, qualifier=qualifier, log_tail=log_tail, request_id=request_id),
            )
        except BaseException as e:
            tracing.end_span(span, error=e)
            raise
        if span is not None:
            tracing.end_span(span, error=res.error_type, attributes={
                "faas.coldstart": res.cold_start, "faas.invocation_id": res.request_id,
                "faas.duration_ms": round(res.duration_ms, 3)})
        return res

    def invoke_background(self, name: str, payload: Any = None, *, qualifier: str | None = None) -> None:
        """Fire and forget (``InvocationType=Event``): errors are logged, never raised."""
        fv = self._resolve(name, qualifier)  # unknown functions fail now, not in the background

        def run() -> None:
            try:
                res = self.invoke_sync(name, payload, qualifier=fv.version)
                if res.function_error:
                    log.warning("async invoke of %s failed: %s", name, res.payload[:500])
            except Exception:  # noqa: BLE001
                log.exception("async invoke of %s failed", name)

        self._executor.submit(run)

    @staticmethod
    def _finish(res: InvokeResult, want_tail: bool) -> InvokeResult:
        res.log_tail = tail(res.log_tail) if want_tail else ""
        return res

    def _start(self, pool: _Pool) -> tuple[_Worker, bytes | None]:
        """Spawn a worker and wait for its init phase; (worker, init error payload or None)."""
        worker = pool.spawn()
        msg = None
        try:
            if worker.conn.poll(max(_INIT_TIMEOUT_S, pool.fv.spec.timeout_s)):
                msg = worker.conn.recv()
                desc = ""
            else:
                desc = "init timed out"
        except (EOFError, OSError):
            desc = worker.exit_description()
        if msg is None:
            worker.kill()
            err = {"errorMessage": f"Runtime exited with error: {desc}", "errorType": "Runtime.ExitError"}
            return worker, json.dumps(err).encode()
        _, worker.init_ms, init_error, worker.init_logs = msg
        return worker, init_error

    def _init_failure(self, fv: _Version, worker: _Worker, error: bytes, request_id: str) -> InvokeResult:
        worker.kill()
        err = json.loads(error)
        lines = worker.init_logs + (
            f"START RequestId: {request_id} Version: {fv.version}\n"
            f"{_utc_stamp()} {request_id} {err.get('errorType')}: {err.get('errorMessage')}\n"
            f"END RequestId: {request_id}\n"
            + _report(request_id, 0.0, fv.spec.memory_mb, 0, worker.init_ms, status="error")
        )
        return InvokeResult(
            payload=error,
            function_error="Unhandled",
            log_tail=lines,
            duration_ms=0.0,
            billed_ms=0,
            cold_start=True,
            executed_version=fv.version,
            request_id=request_id,
            error_type=err.get("errorType"),
            init_ms=worker.init_ms,
        )

    def _run(
        self, fv: _Version, worker: _Worker, data: bytes, request_id: str, cold: bool
    ) -> tuple[InvokeResult, bool]:
        spec = fv.spec
        deadline_ms = int(time.time() * 1000) + int(spec.timeout_s * 1000)
        start = f"START RequestId: {request_id} Version: {fv.version}\n"
        prefix = worker.init_logs if cold else ""
        init_ms = worker.init_ms if cold else None
        t0 = time.perf_counter()
        try:
            worker.conn.send(("invoke", request_id, data, deadline_ms, self.function_arn(spec.name, fv.version)))
            ready = worker.conn.poll(spec.timeout_s)
            msg = worker.conn.recv() if ready else None
        except (EOFError, OSError, BrokenPipeError):
            ready, msg = True, None
        elapsed_ms = (time.perf_counter() - t0) * 1000
        worker.uses += 1

        if not ready:  # hard timeout: kill the environment; the next call starts cold
            worker.kill()
            msg_text = f"{_utc_stamp()} {request_id} Task timed out after {spec.timeout_s:.2f} seconds"
            logs = (
                prefix + start + msg_text + "\n" + f"END RequestId: {request_id}\n"
                + _report(request_id, elapsed_ms, spec.memory_mb, 0, init_ms, status="timeout")
            )
            payload = json.dumps({"errorMessage": msg_text}).encode()
            return InvokeResult(
                payload, "Unhandled", logs, elapsed_ms, _billed(elapsed_ms), cold, fv.version, request_id,
                error_type="Sandbox.Timedout", timed_out=True, init_ms=init_ms,
            ), False

        if msg is None:  # the worker died mid-invocation (os._exit, segfault, OOM kill)
            desc = worker.exit_description()
            err = {
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {desc}",
                "errorType": "Runtime.ExitError",
            }
            logs = (
                prefix + start + f"{_utc_stamp()} {request_id} {err['errorMessage']}\n"
                + f"END RequestId: {request_id}\n"
                + _report(request_id, elapsed_ms, spec.memory_mb, 0, init_ms, status="error")
            )
            return InvokeResult(
                json.dumps(err).encode(), "Unhandled", logs, elapsed_ms, _billed(elapsed_ms), cold,
                fv.version, request_id, error_type="Runtime.ExitError", init_ms=init_ms,
            ), False

        _, out, error_type, handler_logs, duration_ms, max_mem_mb = msg
        logs = (
            prefix + start + handler_logs + f"END RequestId: {request_id}\n"
            + _report(request_id, duration_ms, spec.memory_mb, max_mem_mb, init_ms)
        )
        return InvokeResult(
            out, "Unhandled" if error_type else None, logs, duration_ms, _billed(duration_ms), cold,
            fv.version, request_id, error_type=error_type, init_ms=init_ms,
        ), True

    # -- lifecycle -------------------------------------------------------------------------

    def worker_pids(self, name: str, qualifier: str | None = None) -> list[int]:
        """Pids of the idle warm workers of a function version (for tests and diagnostics)."""
        fv = self._resolve(name, qualifier)
        pool = self._pools.get(fv.fingerprint)
        if pool is None:
            return []
        with pool.cond:
            return [w.pid for w in pool.idle]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self._root, ignore_errors=True)

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def __enter__(self) -> LocalLambdaRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> LocalLambdaRuntime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _observed(name: str, res: InvokeResult) -> InvokeResult:
    """Count one finished invocation (Prometheus); returns ``res`` unchanged."""
    obs.LAMBDA_INVOCATIONS.labels(name, "true" if res.cold_start else "false").inc()
    obs.LAMBDA_DURATION.labels(name).observe(res.duration_ms / 1000)
    if res.cold_start and res.init_ms is not None:
        obs.LAMBDA_INIT.labels(name).observe(res.init_ms / 1000)
    if res.function_error:
        kind = "timeout" if res.timed_out else "crash" if res.error_type == "Runtime.ExitError" else "error"
        obs.LAMBDA_ERRORS.labels(name, kind).inc()
    return res


def _payload_bytes(payload: bytes | str | dict[str, Any] | list[Any] | None) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return json.dumps(payload).encode("utf-8")


def _billed(duration_ms: float) -> int:
    return max(1, math.ceil(duration_ms))


def _report(
    request_id: str,
    duration_ms: float,
    memory_mb: int,
    max_mem_mb: int,
    init_ms: float | None,
    status: str | None = None,
) -> str:
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {_billed(duration_ms)} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {max_mem_mb} MB"
    )
    if init_ms is not None:
        line += f"\tInit Duration: {init_ms:.2f} ms"
    if status:
        line += f"\tStatus: {status}"
    return line + "\n"
