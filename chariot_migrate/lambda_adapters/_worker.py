"""One Lambda execution environment: runs a Python handler the way the real runtime does.

Started by ``runtime.py`` as ``python -I _worker.py <fd>`` with the function's environment and
the task root as cwd. Standard library only, and run as a script in isolated mode, so nothing
of chariot_migrate shadows the handler's own modules on ``sys.path``.

Protocol over the ``multiprocessing`` connection on ``fd`` (pickled tuples):
  worker -> parent  ("ready", init_ms, init_error | None, init_logs)
  parent -> worker  ("invoke", request_id, payload: bytes, deadline_ms, invoked_arn)
  worker -> parent  ("done", payload: bytes, error_type | None, logs: str, duration_ms, max_mem_mb)
"""

from __future__ import annotations

import decimal
import importlib
import io
import json
import logging
import os
import resource
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

_current: list[io.StringIO] = [io.StringIO()]


class _LogSink(io.TextIOBase):
    """stdout/stderr of the handler: whatever it writes goes to the current invocation's log,
    even through references taken at import time (loggers bound to sys.stdout)."""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        return _current[0].write(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]  # TextIOBase declares an attribute; a sink reports one
        return "utf-8"


class _RequestIdFilter(logging.Filter):
    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


class LambdaContext:
    """The ``context`` argument, with the attributes awslambdaric provides."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_arn: str) -> None:
        env = os.environ
        self.aws_request_id = request_id
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")  # a str, as on AWS
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.invoked_function_arn = invoked_arn
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, msg: str) -> None:
        sys.stdout.write(msg)

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},function_name={self.function_name},"
            f"function_version={self.function_version},invoked_function_arn={self.invoked_function_arn}])"
        )


class _Encoder(json.JSONEncoder):
    # awslambdaric serialises Decimal (what boto3's DynamoDB resource returns) as a number.
    def default(self, o: Any) -> Any:
        if isinstance(o, decimal.Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        return super().default(o)


def _error(message: str, error_type: str, request_id: str | None, stack: list[str]) -> bytes:
    body: dict[str, Any] = {"errorMessage": message, "errorType": error_type}
    if request_id is not None:
        body["requestId"] = request_id
    body["stackTrace"] = stack
    return json.dumps(body).encode()


def _load_handler(handler: str) -> tuple[Any, bytes | None, str | None]:
    """(handler function, error payload, error type) — awslambdaric's _get_handler semantics."""
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        return None, _error(f"Bad handler '{handler}': {e}", "Runtime.MalformedHandlerName", "", []), (
            "Runtime.MalformedHandlerName"
        )
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise ImportError(f"Cannot use built-in module {modname} as a handler module")
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        msg = f"Unable to import module '{modname}': {e}"
        return None, _error(msg, "Runtime.ImportModuleError", "", []), "Runtime.ImportModuleError"
    except SyntaxError as e:
        msg = f"Syntax error in module '{modname}': {e}"
        return None, _error(msg, "Runtime.UserCodeSyntaxError", "", []), "Runtime.UserCodeSyntaxError"
    except Exception as e:  # noqa: BLE001 - any init failure is reported, as the real runtime does
        stack = traceback.format_list(traceback.extract_tb(e.__traceback__))
        return None, _error(str(e), type(e).__name__, "", stack), type(e).__name__
    fn = getattr(module, fname, None)
    if fn is None:
        msg = f"Handler '{fname}' missing on module '{modname}'"
        return None, _error(msg, "Runtime.HandlerNotFound", "", []), "Runtime.HandlerNotFound"
    return fn, None, None


def _traceparent(event: Any) -> str | None:
    """The W3C traceparent an API Gateway event carries (v1 and v2 both have ``headers``)."""
    headers = event.get("headers") if isinstance(event, dict) else None
    if not isinstance(headers, dict):
        return None
    for k, v in headers.items():
        if isinstance(k, str) and k.lower() == "traceparent" and isinstance(v, str):
            return v
    return None


def main(fd: int) -> None:
    conn = Connection(fd)
    task_root = os.getcwd()
    sys.path.insert(0, task_root)
    sink = _LogSink()
    sys.stdout = sink
    sys.stderr = sink

    # The Python runtime's root logger: one handler writing to the function's log.
    rid_filter = _RequestIdFilter()
    log_handler = logging.StreamHandler(sink)
    lambda_format = logging.Formatter("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
                                      "%Y-%m-%dT%H:%M:%S")
    lambda_format.converter = time.gmtime
    log_handler.setFormatter(lambda_format)
    log_handler.terminator = ""
    log_handler.addFilter(rid_filter)
    logging.getLogger().addHandler(log_handler)
    logging.getLogger().setLevel(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "WARNING").upper())

    t0 = time.perf_counter()
    handler, init_error, init_error_type = _load_handler(os.environ.get("_HANDLER", ""))
    init_ms = (time.perf_counter() - t0) * 1000
    init_logs = _current[0].getvalue()
    if init_error is not None:
        init_logs += f"[ERROR] {init_error_type}: {json.loads(init_error)['errorMessage']}\n"
    conn.send(("ready", init_ms, init_error, init_logs))
    if init_error is not None:
        return  # the parent answers with the init error and cold-starts the next call

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] != "invoke":
            return
        _, request_id, payload, deadline_ms, invoked_arn = msg
        _current[0] = io.StringIO()
        rid_filter.request_id = request_id
        error_type = None
        t0 = time.perf_counter()
        try:
            event = json.loads(payload) if payload else {}
        except ValueError as e:
            error_type = "Runtime.UnmarshalError"
            out = _error(f"Unable to unmarshal input: {e}", error_type, request_id, [])
        else:
            # The invocation's trace context, where OpenTelemetry's env carrier looks for it
            # (on AWS the X-Ray header arrives the same way, in _X_AMZN_TRACE_ID).
            tp = _traceparent(event)
            if tp:
                os.environ["TRACEPARENT"] = tp
            else:
                os.environ.pop("TRACEPARENT", None)
            try:
                result = handler(event, LambdaContext(request_id, deadline_ms, invoked_arn))
                try:
                    out = json.dumps(result, cls=_Encoder).encode()
                except (TypeError, ValueError) as e:
                    error_type = "Runtime.MarshalError"
                    out = _error(f"Unable to marshal response: {e}", error_type, request_id, [])
            except Exception as e:  # noqa: BLE001 - a handler exception is the function's error
                error_type = type(e).__name__
                tb = traceback.extract_tb(e.__traceback__)[1:]  # drop this frame, as awslambdaric does
                stack = traceback.format_list(tb)
                out = _error(str(e), error_type, request_id, stack)
                sys.stdout.write(
                    f"[ERROR] {error_type}: {e}\nTraceback (most recent call last):\n{''.join(stack)}"
                )
        duration_ms = (time.perf_counter() - t0) * 1000
        max_mem_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        conn.send(("done", out, error_type, _current[0].getvalue(), duration_ms, max_mem_mb))


if __name__ == "__main__":
    main(int(sys.argv[1]))
