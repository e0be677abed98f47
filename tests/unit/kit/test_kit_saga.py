import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chariot_migrate.services.kit.saga import MemorySagaLog, Saga, SagaFailed, Step


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
