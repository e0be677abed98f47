"""Metrics the background machinery emits: shadow engine, dual-write worker, Lambda emulator.

Values are read from the default registry as deltas (other tests in the process share it).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from chariot_migrate.dual_write.records import PrimaryResult, ReplayRecord, ReplayRequest
from chariot_migrate.dual_write.sqlite_outbox import SQLiteOutbox
from chariot_migrate.dual_write.worker import ReplayWorker
from chariot_migrate.lambda_adapters.runtime import LocalLambdaRuntime
from chariot_migrate.lambda_adapters.spec import FunctionSpec
from chariot_migrate.shadow.engine import ShadowEngine, ShadowJob, comparison_result
from chariot_migrate.shadow.normalise import NormaliseRules
from chariot_migrate.shadow.records import HitRecord, PairRecord
from chariot_migrate.shadow.store import SQLiteDiffStore
from chariot_migrate.transport import HttpRequest, HttpResponse, UpstreamError

BASIC = str(Path(__file__).resolve().parents[2] / "fixtures" / "lambdas" / "basic")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Answer:
    def __init__(self, fn) -> None:
        self.fn = fn

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        return self.fn(request)

    async def aclose(self) -> None:
        pass


def js(doc: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(status, [("content-type", "application/json")], json.dumps(doc).encode())


# ---- shadow --------------------------------------------------------------------------------


def pair(hits: list[str], aa: set[str] | None) -> PairRecord:
    return PairRecord(service="s", route="r", ts=0.0, hits=[HitRecord(f"sig-{p}", p, "value", "str") for p in hits],
                      aa_paths=frozenset(aa) if aa is not None else None)


@pytest.mark.parametrize(("hits", "aa", "failed", "expected"), [
    ([], None, False, "match"),
    (["$.a"], None, False, "mismatch"),
    (["$.a"], {"$.a", "$.b"}, False, "noise"),
    (["$.a", "$.c"], {"$.a"}, False, "mismatch"),
    ([], None, True, "error"),
])
def test_comparison_result(hits, aa, failed, expected):
    assert comparison_result(pair(hits, aa), failed) == expected


def shadow_job(shadow, *, service: str = "obs-shadow") -> ShadowJob:
    return ShadowJob(service=service, route_id="GET /o", request=HttpRequest("GET", "/o"), primary_side="legacy",
                     primary=js({"a": 1, "b": "x"}), primary_latency_s=0.01, primary_transport=Answer(lambda r: js({})),
                     shadow_transport=Answer(shadow), timeout_s=1.0, noise_sample=False, rules=NormaliseRules())


def boom(request: HttpRequest) -> HttpResponse:
    raise UpstreamError("connect", "refused")


async def test_shadow_engine_counts_matches_mismatches_errors_and_drops(tmp_path):
    store = SQLiteDiffStore(tmp_path / "d.db")
    labels = {"service": "obs-shadow", "route": "GET /o"}
    before = {r: value("shadow_comparisons_total", **labels, result=r) for r in ("match", "mismatch", "error")}
    kind_before = value("shadow_mismatches_total", **labels, kind="value")
    engine = ShadowEngine(store, concurrency=1, queue_size=3)
    assert engine.submit(shadow_job(lambda r: js({"a": 1, "b": "x"})))
    assert engine.submit(shadow_job(lambda r: js({"a": 2, "b": "x"})))
    assert engine.submit(shadow_job(boom))
    dropped = value("shadow_dropped_total", service="obs-shadow", reason="queue_full")
    assert not engine.submit(shadow_job(lambda r: js({})))  # queue full (workers not started yet)
    assert value("shadow_dropped_total", service="obs-shadow", reason="queue_full") == dropped + 1
    await engine.start()
    await engine.join()
    await engine.aclose()
    assert {r: value("shadow_comparisons_total", **labels, result=r) - before[r] for r in before} == {
        "match": 1, "mismatch": 1, "error": 1}
    assert value("shadow_mismatches_total", **labels, kind="value") == kind_before + 1
    assert value("shadow_compare_duration_seconds_count", service="obs-shadow") >= 3
    closed = value("shadow_dropped_total", service="obs-shadow", reason="closed")
    assert not engine.submit(shadow_job(lambda r: js({})))
    assert value("shadow_dropped_total", service="obs-shadow", reason="closed") == closed + 1
    store.close()


# ---- dual write ----------------------------------------------------------------------------


def record(account: str, target: str = "new", service: str = "obs-dw") -> ReplayRecord:
    return ReplayRecord(service=service, account=account, target=target, route_id="r",
                        request=ReplayRequest(method="POST", path="/thing", body=b"{}"),
                        primary=PrimaryResult(status=200, body=b"{}"))


class Receiver:
    """Per account: scripted statuses, then 201 (account "b" always answers 400: permanent)."""

    def __init__(self, script: dict[str, list[int]]) -> None:
        self.script = script

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        queue = self.script.get(request.header("x-migrate-replay-account") or "", [])
        return HttpResponse(queue.pop(0) if queue else 201)

    async def aclose(self) -> None:
        pass


async def test_worker_counts_deliveries_retries_dead_letters_and_samples_backlog(tmp_path):
    outbox = SQLiteOutbox(tmp_path / "o.db")
    try:
        recv = Receiver({"a": [503], "b": [400]})  # a: retried then delivered; b: permanent → dead letter
        w = ReplayWorker(outbox, lambda s, side: recv, max_attempts=3, base_delay_s=0, max_delay_s=0,
                         rng=random.Random(0))
        to_new = {"service": "obs-dw", "direction": "to_new"}
        to_legacy = {"service": "obs-dw", "direction": "to_legacy"}
        before = {r: value("dual_write_replays_total", **to_new, result=r) for r in ("delivered", "retry", "dead")}
        retries = value("dual_write_retries_total", **to_new)
        dead = value("dual_write_dead_lettered_total", **to_legacy)
        lag = value("dual_write_replay_lag_seconds_count", **to_new)
        await outbox.append(record("a"))
        await outbox.append(record("b", target="legacy"))
        await outbox.append(record("b", target="legacy"))  # blocked behind b's dead letter
        await w.sample_backlog()
        assert value("dual_write_outbox_pending", **to_new) == 1
        assert value("dual_write_outbox_pending", **to_legacy) == 2
        assert value("dual_write_oldest_age_seconds", service="obs-dw") >= 0
        assert await w.run_once() == 2  # a → 503 (retry), b#1 → 400 (dead)
        assert value("dual_write_retries_total", **to_new) == retries + 1
        assert value("dual_write_dead_lettered_total", **to_legacy) == dead + 1
        await w.sample_backlog()
        assert value("dual_write_dead_letters", **to_legacy) == 1
        assert value("dual_write_outbox_pending", **to_legacy) == 1  # b#2, blocked
        assert value("dual_write_outbox_pending", **to_new) == 1  # a, to be retried
        assert await w.run_once() == 1  # a delivered; b's lane stays blocked
        after = {r: value("dual_write_replays_total", **to_new, result=r) - before[r] for r in before}
        assert after == {"delivered": 1, "retry": 1, "dead": 0}
        assert value("dual_write_replay_lag_seconds_count", **to_new) == lag + 1
        await w.sample_backlog()
        assert value("dual_write_outbox_pending", **to_new) == 0  # emptied label set reset to 0
        assert value("dual_write_dead_letters", **to_legacy) == 1
    finally:
        await outbox.aclose()


# ---- Lambda emulator -----------------------------------------------------------------------


@pytest.mark.integration
def test_emulator_counts_cold_and_warm_invocations_and_passes_traceparent():
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    name = "obs-echo"
    cold, warm = value("lambda_invocations_total", function=name, cold="true"), \
        value("lambda_invocations_total", function=name, cold="false")
    count = value("lambda_invocation_duration_seconds_count", function=name)
    with LocalLambdaRuntime([FunctionSpec(name=name, handler="app.echo", code_dir=BASIC),
                             FunctionSpec(name="obs-boom", handler="app.boom", code_dir=BASIC)],
                            concurrency=1) as rt:
        first = json.loads(rt.invoke_sync(name, {"headers": {"traceparent": tp}}).payload)
        second = json.loads(rt.invoke_sync(name, {"headers": {}}).payload)
        errors = value("lambda_function_errors_total", function="obs-boom", kind="error")
        assert rt.invoke_sync("obs-boom", {}).function_error == "Unhandled"
        assert value("lambda_function_errors_total", function="obs-boom", kind="error") == errors + 1
    assert first["env"]["TRACEPARENT"] == tp
    assert "TRACEPARENT" not in second["env"]  # never left over from the previous invocation
    assert value("lambda_invocations_total", function=name, cold="true") == cold + 1
    assert value("lambda_invocations_total", function=name, cold="false") == warm + 1
    assert value("lambda_invocation_duration_seconds_count", function=name) == count + 2
    assert value("lambda_init_duration_seconds_count", function=name) >= 1
