"""Engine behaviour with in-memory transports (the live two-upstream test is in tests/integration/shadow)."""

import asyncio
import json

import pytest

from chariot_migrate.shadow.engine import ShadowEngine, ShadowJob
from chariot_migrate.shadow.normalise import NormaliseRules
from chariot_migrate.shadow.store import SQLiteDiffStore
from chariot_migrate.transport import HttpRequest, HttpResponse, UpstreamError


class FnTransport:
    def __init__(self, fn):
        self.fn = fn
        self.seen: list[HttpRequest] = []

    async def send(self, request, timeout):
        self.seen.append(request)
        out = self.fn(request)
        if asyncio.iscoroutine(out):
            out = await out
        return out

    async def aclose(self):
        pass


def js(doc, status=200):
    return HttpResponse(status, [("content-type", "application/json")], json.dumps(doc).encode())


def job(primary_side="legacy", primary=None, shadow=None, again=None, noise=False, timeout=1.0, rules=None):
    p_t = FnTransport(again or (lambda r: primary or js({"a": 1})))
    s_t = FnTransport(shadow or (lambda r: js({"a": 1})))
    return ShadowJob(
        service="svc", route_id="GET /x", request=HttpRequest("GET", "/x", "q=1", [("accept", "*/*")]),
        primary_side=primary_side, primary=primary or js({"a": 1}), primary_latency_s=0.01,
        primary_transport=p_t, shadow_transport=s_t, timeout_s=timeout, noise_sample=noise,
        rules=rules or NormaliseRules(),
    )


@pytest.fixture
def store(tmp_path):
    s = SQLiteDiffStore(tmp_path / "s.db")
    yield s
    s.close()


async def test_shadow_and_aa_calls_carry_the_shadow_header_and_orientation_is_legacy_left(store):
    eng = ShadowEngine(store, concurrency=2)
    await eng.start()
    # The new side is primary here; the shadow (legacy) lacks field "b": from legacy's view "b" is extra.
    j = job(primary_side="new", primary=js({"a": 1, "b": 2}), shadow=lambda r: js({"a": 1}),
            again=lambda r: js({"a": 1, "b": 2}), noise=True)
    assert eng.submit(j)
    await eng.join()
    assert j.shadow_transport.seen[0].header("x-migrate-shadow") == "1"
    assert j.primary_transport.seen[0].header("x-migrate-shadow") == "1"
    assert j.request.header("x-migrate-shadow") is None  # the client's request is not mutated
    (d,) = store.load()
    assert (d.pairs, d.exact, d.aa_pairs) == (1, 0, 1)
    assert [m.kind for m in d.sig_meta.values()] == ["extra"]
    await eng.aclose()
    assert eng.stats["completed"] == 1


async def test_queue_overflow_drops_and_counts(store):
    eng = ShadowEngine(store, queue_size=3)
    results = [eng.submit(job()) for _ in range(5)]  # not started: nothing drains the queue
    assert results == [True, True, True, False, False]
    assert eng.stats["dropped"] == 2 and eng.stats["submitted"] == 3
    await eng.start()
    await eng.join()
    assert eng.stats["completed"] == 3
    await eng.aclose()
    assert eng.submit(job()) is False and eng.stats["dropped"] == 3
    assert store.load()[0].pairs == 3


async def test_shadow_timeout_and_broken_transport_are_recorded_as_errors(store):
    async def slow(r):
        await asyncio.sleep(5)  # why: a copy that outlasts the shadow timeout

    def broken(r):
        raise RuntimeError("boom")

    def refused(r):
        raise UpstreamError("connect", "refused")

    eng = ShadowEngine(store, concurrency=3)
    await eng.start()
    for fn in (slow, broken, refused):
        eng.submit(job(shadow=fn, timeout=0.2))
    await eng.join()
    st = eng.stats
    assert st["completed"] == 3 and st["shadow_errors"] == 3 and st["errors"] == 0
    (d,) = store.load()
    assert d.errors == {"legacy": 0, "new": 3}
    (examples,) = d.examples.values()  # all three share one signature: (route, status, status)
    assert sorted(ex["new_status"] for ex in examples) == ["error:connect", "error:protocol", "error:timeout"]
    assert {m.kind for m in d.sig_meta.values()} == {"status"}
    await eng.aclose()


async def test_a_failed_second_primary_call_is_no_noise_evidence(store):
    """A/A samples whose second call failed are left out: counted, they would lower the A/A rate of
    every field that varies by itself and make a timestamp look like a real difference."""
    calls = iter(range(100))

    def again(r):
        n = next(calls)
        if n % 2:
            raise UpstreamError("timeout", "slow")
        return js({"t": n})

    eng = ShadowEngine(store, concurrency=1)
    await eng.start()
    for i in range(6):
        eng.submit(job(primary=js({"t": -i - 1}), shadow=lambda r: js({"t": 0.5}), again=again, noise=True))
    await eng.join()
    await eng.aclose()
    (d,) = store.load()
    assert eng.stats["noise_sample_errors"] == 3
    assert d.pairs == 6 and d.aa_pairs == 3 and d.aa_paths == {"$.t": 3}


async def test_store_failure_is_counted_and_the_engine_keeps_running(tmp_path):
    class FailingStore:
        max_examples = 5

        def __init__(self):
            self.calls = 0

        def record(self, batch):
            self.calls += 1
            raise OSError("disk full")

        def load(self, **kw):
            return []

        def example_counts(self):
            return {}

        def close(self):
            pass

    s = FailingStore()
    eng = ShadowEngine(s)
    await eng.start()
    eng.submit(job())
    await eng.join()
    eng.submit(job())
    await eng.join()
    assert eng.stats["store_errors"] == 2 and eng.stats["completed"] == 2
    await eng.aclose()


async def test_examples_are_built_only_until_the_store_cap(tmp_path):
    s = SQLiteDiffStore(tmp_path / "s.db", max_examples=2)
    eng = ShadowEngine(s)
    await eng.start()
    for i in range(6):
        eng.submit(job(shadow=lambda r, i=i: js({"a": 100 + i})))
    await eng.join()
    await eng.aclose()
    (d,) = s.load()
    (sig,) = d.signatures
    assert len(d.examples[sig]) == 2 and d.examples_dropped == 4
    # A restarted engine learns the cap is reached from the store and builds no more.
    eng2 = ShadowEngine(s)
    await eng2.start()
    eng2.submit(job(shadow=lambda r: js({"a": 7})))
    await eng2.join()
    await eng2.aclose()
    assert s.load()[0].examples_dropped == 5
    s.close()


async def test_aclose_flushes_pending_records(store):
    eng = ShadowEngine(store, flush_interval_s=60)
    await eng.start()
    for _ in range(4):
        eng.submit(job())
    await eng.aclose()
    assert store.load()[0].pairs == 4
