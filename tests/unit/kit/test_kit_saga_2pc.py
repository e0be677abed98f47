import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chariot_migrate.services.kit.saga import MemorySagaLog, Saga, SagaFailed, Step
from chariot_migrate.services.kit.two_phase import MemoryDecisionLog, TransactionAborted, TwoPhaseCoordinator


def recording_steps(n, fail_at=None, broken_compensation=None, effects=None):
    effects = effects if effects is not None else []

    def action(i):
        async def run(ctx):
            if i == fail_at:
                raise RuntimeError(f"step {i} exploded")
            effects.append(f"do{i}")
            return i * 10

        return run

    def compensation(i):
        def run(ctx):
            if i == broken_compensation:
                raise RuntimeError("cannot undo")
            effects.append(f"undo{i}")

        return run

    return [Step(f"s{i}", action(i), compensation(i)) for i in range(n)], effects


async def test_saga_completes_and_shares_results_through_the_context():
    steps, effects = recording_steps(3)
    log = MemorySagaLog()
    ctx = {}
    record = await Saga("job", steps, log=log).run(ctx, saga_id="sg1")
    assert record.state == "completed" and effects == ["do0", "do1", "do2"]
    assert ctx == {"s0": 0, "s1": 10, "s2": 20}
    assert [s["state"] for s in log.records["sg1"]["steps"]] == ["done"] * 3


async def test_failure_compensates_completed_steps_in_reverse():
    steps, effects = recording_steps(4, fail_at=2)
    log = MemorySagaLog()
    with pytest.raises(SagaFailed) as err:
        await Saga("job", steps, log=log, retry_delay=0).run(saga_id="sg2")
    assert effects == ["do0", "do1", "undo1", "undo0"]
    rec = log.records["sg2"]
    assert rec["state"] == "compensated"
    assert [s["state"] for s in rec["steps"]] == ["compensated", "compensated", "failed", "pending"]
    assert "step s2 failed" in err.value.record.error
    undo_order = [(step, state) for _, step, state in log.history if state == "compensated"]
    assert undo_order == [("s1", "compensated"), ("s0", "compensated")]


async def test_broken_compensation_is_recorded_and_others_still_run():
    steps, effects = recording_steps(3, fail_at=2, broken_compensation=1)
    log = MemorySagaLog()
    with pytest.raises(SagaFailed):
        await Saga("job", steps, log=log, compensation_attempts=2, retry_delay=0).run(saga_id="sg3")
    rec = log.records["sg3"]
    assert rec["state"] == "failed"
    assert [s["state"] for s in rec["steps"]] == ["compensated", "compensation_failed", "failed"]
    assert effects == ["do0", "do1", "undo0"]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.data())
def test_saga_property_compensations_mirror_done_steps(n, data):
    fail_at = data.draw(st.one_of(st.none(), st.integers(0, n - 1)))
    steps, effects = recording_steps(n, fail_at=fail_at)

    async def go():
        try:
            await Saga("p", steps, retry_delay=0).run()
        except SagaFailed:
            pass

    asyncio.run(go())
    done = [e for e in effects if e.startswith("do")]
    undone = [e for e in effects if e.startswith("undo")]
    if fail_at is None:
        assert len(done) == n and undone == []
    else:
        assert [u.replace("undo", "do") for u in undone] == list(reversed(done))


class Participant:
    def __init__(self, name, vote=True, prepare_delay=0.0, commit_failures=0, prepare_error=False):
        self.name = name
        self.vote = vote
        self.prepare_delay = prepare_delay
        self.commit_failures = commit_failures
        self.prepare_error = prepare_error
        self.calls: list[str] = []

    async def prepare(self, txid):
        self.calls.append("prepare")
        await asyncio.sleep(self.prepare_delay)
        if self.prepare_error:
            raise ConnectionError("down")
        return self.vote

    async def commit(self, txid):
        self.calls.append("commit")
        if self.commit_failures:
            self.commit_failures -= 1
            raise ConnectionError("flaky")

    async def abort(self, txid):
        self.calls.append("abort")


async def no_sleep(_):
    return None


async def test_all_yes_commits_and_commit_is_retried_until_acknowledged():
    a, b = Participant("a"), Participant("b", commit_failures=3)
    log = MemoryDecisionLog()
    record = await TwoPhaseCoordinator(log, sleep=no_sleep).execute([a, b], txid="t1")
    assert record.state == "committed" and sorted(record.acknowledged) == ["a", "b"]
    assert b.calls == ["prepare", "commit", "commit", "commit", "commit"]
    states = [s for _, s in log.entries]
    assert list(dict.fromkeys(states)) == ["preparing", "committing", "committed"]
    assert states.count("committing") == 3  # the decision, then one entry per acknowledgement


@pytest.mark.parametrize(
    "bad",
    [Participant("c", vote=False), Participant("c", prepare_error=True), Participant("c", prepare_delay=1.0)],
    ids=["votes-no", "errors", "times-out"],
)
async def test_any_failed_prepare_aborts_the_prepared(bad):
    a, b = Participant("a"), Participant("b")
    coordinator = TwoPhaseCoordinator(prepare_timeout=0.05, sleep=no_sleep)
    with pytest.raises(TransactionAborted) as err:
        await coordinator.execute([a, bad, b], txid="t2")
    assert err.value.record.decision == "abort" and err.value.record.state == "aborted"
    assert a.calls == ["prepare", "abort"] and b.calls == ["prepare", "abort"]
    assert "commit" not in bad.calls
    assert ("abort" in bad.calls) == (bad.vote is not False)  # "no" voters have nothing to undo


async def test_recover_redelivers_logged_decisions():
    log = MemoryDecisionLog()
    a, b = Participant("a"), Participant("b", commit_failures=10)
    coordinator = TwoPhaseCoordinator(log, max_commit_attempts=2, sleep=no_sleep)
    with pytest.raises(RuntimeError, match="recover"):
        await coordinator.execute([a, b], txid="t3")
    assert log.records["t3"].state == "committing"  # decided, not fully delivered
    b.commit_failures = 0
    finished = await TwoPhaseCoordinator(log, sleep=no_sleep).recover([a, b])
    assert [r.txid for r in finished] == ["t3"] and log.records["t3"].state == "committed"
    assert a.calls.count("commit") == 1  # already acknowledged: not sent again


async def test_recover_presumes_abort_for_undecided_transactions():
    from chariot_migrate.services.kit.two_phase import TxRecord

    log = MemoryDecisionLog()
    await log.write(TxRecord("t4", ["a"]))
    a = Participant("a")
    await TwoPhaseCoordinator(log, sleep=no_sleep).recover([a])
    assert log.records["t4"].state == "aborted" and a.calls == ["abort"]
