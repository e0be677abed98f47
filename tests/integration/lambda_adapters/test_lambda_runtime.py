"""LocalLambdaRuntime: warm spawned workers, isolation, timeouts, errors, pool, logs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chariot_migrate.lambda_adapters.moto_stack import zip_code_dir
from chariot_migrate.lambda_adapters.runtime import FunctionNotFound, LocalLambdaRuntime, TooManyRequests
from chariot_migrate.lambda_adapters.spec import FunctionSpec

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "lambdas"
BASIC = str(FIXTURES / "basic")


def spec(name: str, handler: str, code: str = BASIC, **kw: object) -> FunctionSpec:
    return FunctionSpec(name=name, handler=handler, code_dir=code, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def runtime():
    os.environ["CHARIOT_PARENT_ONLY_SECRET"] = "must-not-leak"  # set before any worker exists
    rt = LocalLambdaRuntime(
        [
            spec("echo", "app.echo", environment={"TABLE": "things", "NUM": "7"}, memory_mb=256, timeout_s=3),
            spec("echo-moto", "app.echo"),
            spec("noisy", "app.noisy"),
            spec("biglog", "app.big_log"),
            spec("boom", "app.boom"),
            spec("crash", "app.crash"),
            spec("segv", "app.segv"),
            spec("unserialisable", "app.unserialisable"),
            spec("nohandler", "app.nope"),
            spec("badname", "nodots"),
            spec("broken", "app.handler", str(FIXTURES / "broken")),
            spec("twin-a", "app.handler", str(FIXTURES / "twin_a")),
            spec("twin-b", "app.handler", str(FIXTURES / "twin_b")),
            spec("slow", "app.slow", timeout_s=1),
        ],
        concurrency=2,
    )
    yield rt
    rt.close()
    os.environ.pop("CHARIOT_PARENT_ONLY_SECRET", None)


def body(res) -> dict:
    return json.loads(res.payload)


def test_warm_reuse_keeps_process_and_globals(runtime: LocalLambdaRuntime) -> None:
    first = runtime.invoke_sync("echo", {"n": 1})
    second = runtime.invoke_sync("echo", {"n": 2})
    assert first.cold_start is True and second.cold_start is False
    assert first.init_ms is not None and second.init_ms is None
    b1, b2 = body(first), body(second)
    assert b1["pid"] == b2["pid"]
    assert b2["calls"] == b1["calls"] + 1  # module globals survive between invocations
    assert b2["event"] == {"n": 2}
    assert runtime.worker_pids("echo") == [b1["pid"]]


def test_context_fields(runtime: LocalLambdaRuntime) -> None:
    res = runtime.invoke_sync("echo", {}, request_id="req-ctx-1")
    ctx = body(res)["context"]
    assert res.request_id == "req-ctx-1" == ctx["aws_request_id"]
    assert ctx["function_name"] == "echo"
    assert ctx["function_version"] == "$LATEST" == res.executed_version
    assert ctx["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo"
    assert ctx["memory_limit_in_mb"] == "256"  # a str, as in the real runtime
    assert ctx["log_group_name"] == "/aws/lambda/echo"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", ctx["log_stream_name"])
    assert 2000 < ctx["remaining_ms"] <= 3000


def test_environment_is_the_functions_own(runtime: LocalLambdaRuntime) -> None:
    b = body(runtime.invoke_sync("echo", {}))
    env = b["env"]
    assert "CHARIOT_PARENT_ONLY_SECRET" not in env  # the parent's variables stay in the parent
    assert env["TABLE"] == "things" and env["NUM"] == "7"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "echo"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["_HANDLER"] == "app.echo"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/echo"
    assert "AWS_ENDPOINT_URL" not in env  # no endpoint configured for this runtime
    # the task root is a private copy, first on sys.path and the cwd
    assert env["LAMBDA_TASK_ROOT"] == b["cwd"] == b["sys_path0"]
    assert os.path.realpath(b["cwd"]) != os.path.realpath(BASIC)
    assert set(env) - {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "PYTHONUNBUFFERED",
                       "TABLE", "NUM", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER"} <= {
        k for k in env if k.startswith("AWS_")
    }


def test_endpoint_and_dummy_credentials_when_pointing_at_moto() -> None:
    with LocalLambdaRuntime([spec("e", "app.echo", environment={"X": "1"})],
                            aws_endpoint_url="http://127.0.0.1:1") as rt:
        env = body(rt.invoke_sync("e", {}))["env"]
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_CONFIG_FILE"] == os.devnull


def test_same_named_modules_are_isolated(runtime: LocalLambdaRuntime) -> None:
    a = body(runtime.invoke_sync("twin-a", {}))
    b = body(runtime.invoke_sync("twin-b", {}))
    assert a == {"who": "twin-a", "has_only_in_b": False}
    assert b == {"who": "twin-b", "has_only_in_b": True}
    assert body(runtime.invoke_sync("twin-a", {}))["who"] == "twin-a"


def test_timeout_kills_worker_and_next_call_is_cold(runtime: LocalLambdaRuntime) -> None:
    warm = runtime.invoke_sync("slow", {"sleep": 0})
    pid = body(warm)["pid"]
    t0 = time.perf_counter()
    res = runtime.invoke_sync("slow", {"sleep": 5}, log_tail=True)
    elapsed = time.perf_counter() - t0
    assert 0.9 < elapsed < 2.5
    assert res.timed_out and res.function_error == "Unhandled"
    msg = body(res)["errorMessage"]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z " + re.escape(res.request_id) + r" Task timed out after 1\.00 seconds",
        msg,
    )
    assert "Status: timeout" in res.log_tail
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker was killed (and reaped)
    after = runtime.invoke_sync("slow", {"sleep": 0})
    assert after.cold_start and body(after)["pid"] != pid and after.function_error is None


def test_handler_exception_payload(runtime: LocalLambdaRuntime) -> None:
    res = runtime.invoke_sync("boom", {"x": 5}, log_tail=True)
    err = body(res)
    assert res.function_error == "Unhandled" and res.error_type == "ValueError"
    assert err["errorMessage"] == "boom 5" and err["errorType"] == "ValueError"
    assert err["requestId"] == res.request_id
    assert isinstance(err["stackTrace"], list) and "in boom" in err["stackTrace"][-1]
    assert "[ERROR] ValueError: boom 5" in res.log_tail
    # the environment survives a handled exception (warm)
    again = runtime.invoke_sync("boom", {"x": 6})
    assert again.cold_start is False


@pytest.mark.parametrize(
    ("name", "error_type", "message"),
    [
        ("broken", "Runtime.ImportModuleError",
         "Unable to import module 'app': No module named 'module_that_does_not_exist_anywhere'"),
        ("nohandler", "Runtime.HandlerNotFound", "Handler 'nope' missing on module 'app'"),
        ("badname", "Runtime.MalformedHandlerName", None),
        ("unserialisable", "Runtime.MarshalError", None),
    ],
)
def test_init_and_marshal_errors(runtime: LocalLambdaRuntime, name: str, error_type: str, message: str | None) -> None:
    res = runtime.invoke_sync(name, {})
    err = body(res)
    assert res.function_error == "Unhandled"
    assert err["errorType"] == error_type
    if message:
        assert err["errorMessage"] == message


def test_bad_json_payload_is_unmarshal_error(runtime: LocalLambdaRuntime) -> None:
    res = runtime.invoke_sync("echo", b"{not json")
    assert res.function_error == "Unhandled" and body(res)["errorType"] == "Runtime.UnmarshalError"


def test_syntax_error_in_module(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("def handler(event, context)\n    return 1\n")
    with LocalLambdaRuntime([spec("syn", "app.handler", str(tmp_path))]) as rt:
        res = rt.invoke_sync("syn", {})
    assert body(res)["errorType"] == "Runtime.UserCodeSyntaxError"
    assert body(res)["errorMessage"].startswith("Syntax error in module 'app'")


@pytest.mark.parametrize(("name", "detail"), [("crash", "exit status 3"), ("segv", "signal: segmentation fault")])
def test_worker_crash_is_exit_error_and_respawns(runtime: LocalLambdaRuntime, name: str, detail: str) -> None:
    res = runtime.invoke_sync(name, {})
    err = body(res)
    assert res.function_error == "Unhandled" and err["errorType"] == "Runtime.ExitError"
    assert err["errorMessage"] == f"RequestId: {res.request_id} Error: Runtime exited with error: {detail}"
    assert runtime.worker_pids(name) == []  # the dead worker is not kept
    again = runtime.invoke_sync(name, {})
    assert again.cold_start and body(again)["errorType"] == "Runtime.ExitError"


def test_log_tail_start_end_report(runtime: LocalLambdaRuntime) -> None:
    cold = runtime.invoke_sync("noisy", {}, log_tail=True)
    lines = cold.log_tail.splitlines()
    rid = cold.request_id
    assert lines[0] == f"START RequestId: {rid} Version: $LATEST"
    assert "hello from print" in lines and "hello from stderr" in lines
    assert any(re.fullmatch(rf"\[WARNING\]\t\S+Z\t{rid}\thello from logging", ln) for ln in lines)
    assert lines[-2] == f"END RequestId: {rid}"
    assert re.fullmatch(
        rf"REPORT RequestId: {rid}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: 512 MB\t"
        r"Max Memory Used: \d+ MB\tInit Duration: [\d.]+ ms",
        lines[-1],
    )
    warm = runtime.invoke_sync("noisy", {}, log_tail=True)
    assert "Init Duration" not in warm.log_tail and warm.log_tail.count("hello from print") == 1
    assert runtime.invoke_sync("noisy", {}).log_tail == ""  # only when asked for
    assert warm.log_result  # base64 form for Invoke's LogResult


def test_log_tail_is_last_4kb(runtime: LocalLambdaRuntime) -> None:
    res = runtime.invoke_sync("biglog", {}, log_tail=True)
    assert len(res.log_tail.encode()) <= 4096
    assert res.log_tail.rstrip("\n").splitlines()[-1].startswith("REPORT RequestId:")
    assert "line 0499" in res.log_tail and "line 0000" not in res.log_tail


def test_unknown_function(runtime: LocalLambdaRuntime) -> None:
    with pytest.raises(FunctionNotFound):
        runtime.invoke_sync("does-not-exist", {})
    with pytest.raises(FunctionNotFound):
        runtime.invoke_sync("echo", {}, qualifier="7")


def test_pool_runs_slow_calls_in_parallel_and_bounds_them() -> None:
    with LocalLambdaRuntime([spec("slow", "app.slow", timeout_s=5)], concurrency=3, queue_wait_s=0.3) as rt:
        with ThreadPoolExecutor(6) as ex:
            list(ex.map(lambda _: rt.invoke_sync("slow", {"sleep": 0.2}), range(3)))  # start 3 workers
            assert len(rt.worker_pids("slow")) == 3
            t0 = time.perf_counter()
            results = list(ex.map(lambda _: rt.invoke_sync("slow", {"sleep": 0.6}), range(3)))
            elapsed = time.perf_counter() - t0
            assert elapsed < 1.5, f"3 parallel 0.6 s calls took {elapsed:.2f}s (serialised: 1.8 s)"
            assert len({body(r)["pid"] for r in results}) == 3
            # a 4th concurrent call waits for a free worker, bounded by queue_wait_s
            futs = [ex.submit(rt.invoke_sync, "slow", {"sleep": 0.8}) for _ in range(4)]
            outcomes = []
            for f in futs:
                try:
                    outcomes.append(f.result().function_error)
                except TooManyRequests:
                    outcomes.append("throttled")
            assert sorted(outcomes, key=str) == [None, None, None, "throttled"]


def test_pool_waits_for_a_free_worker() -> None:
    with LocalLambdaRuntime([spec("slow", "app.slow", timeout_s=5)], concurrency=1) as rt:
        rt.invoke_sync("slow", {"sleep": 0})
        with ThreadPoolExecutor(2) as ex:
            t0 = time.perf_counter()
            rs = list(ex.map(lambda _: rt.invoke_sync("slow", {"sleep": 0.4}), range(2)))
            elapsed = time.perf_counter() - t0
    assert elapsed >= 0.8  # one worker: the second call waited for the first
    assert all(r.function_error is None for r in rs)


def test_warm_invoke_overhead_is_low(runtime: LocalLambdaRuntime) -> None:
    runtime.invoke_sync("echo-moto", {})
    samples = []
    for _ in range(40):
        t0 = time.perf_counter()
        runtime.invoke_sync("echo-moto", {"k": "v"})
        samples.append((time.perf_counter() - t0) * 1000)
    assert statistics.median(samples) <= 5.0


async def test_async_facade_runs_concurrently() -> None:
    rt = LocalLambdaRuntime([spec("slow", "app.slow", timeout_s=5)], concurrency=4)
    try:
        await asyncio.gather(*(rt.invoke("slow", {"sleep": 0}) for _ in range(4)))
        t0 = time.perf_counter()
        rs = await asyncio.gather(*(rt.invoke("slow", {"sleep": 0.5}) for _ in range(4)))
        assert time.perf_counter() - t0 < 1.5  # serialised would be 2.0 s
        assert all(r.function_error is None for r in rs)
    finally:
        await rt.aclose()


def test_zip_deploy_and_redeploy_replaces_warm_workers(tmp_path: Path) -> None:
    code = tmp_path / "fn"
    code.mkdir()
    (code / "app.py").write_text("import os\ndef handler(e, c):\n    return {'v': 1, 'pid': os.getpid()}\n")
    with LocalLambdaRuntime() as rt:
        s = spec("z", "app.handler", str(code))
        assert rt.deploy(s, code_zip=zip_code_dir(str(code))) is True
        r1 = body(rt.invoke_sync("z", {}))
        assert rt.deploy(s, code_zip=zip_code_dir(str(code))) is False  # same code: stays warm
        assert body(rt.invoke_sync("z", {}))["pid"] == r1["pid"]
        (code / "app.py").write_text("import os\ndef handler(e, c):\n    return {'v': 2, 'pid': os.getpid()}\n")
        assert rt.deploy(s, code_zip=zip_code_dir(str(code))) is True
        r2 = body(rt.invoke_sync("z", {}))
        assert r2["v"] == 2 and r2["pid"] != r1["pid"]
        # a published version keeps its own code next to $LATEST
        rt.deploy(s, version="1", code_zip=zip_code_dir(str(code)))
        assert body(rt.invoke_sync("z", {}, qualifier="1"))["v"] == 2
