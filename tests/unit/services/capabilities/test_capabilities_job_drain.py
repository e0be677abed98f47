"""JobService.stop: graceful shutdown lets started jobs finish (bounded), then cancels the rest."""

from __future__ import annotations

import asyncio

from chariot_migrate.services.capabilities.service import JobService


class _Runner:
    def __init__(self, seconds: float) -> None:
        self.seconds, self.finished = seconds, []

    async def run(self, account: str, key: str) -> None:
        await asyncio.sleep(self.seconds)  # why: the fake job's own run time
        self.finished.append(key)


async def test_stop_lets_started_jobs_finish():
    runner = _Runner(0.05)
    svc = JobService(None, None, None, runner)  # type: ignore[arg-type]  # only the runner is used
    svc.start("a@x.com", ["#job#1", "#job#2"])
    svc.start("b@x.com", ["#job#3"])
    await svc.stop(grace_s=5)
    assert sorted(runner.finished) == ["#job#1", "#job#2", "#job#3"]


async def test_stop_cancels_what_outlives_the_grace_period():
    runner = _Runner(60)
    svc = JobService(None, None, None, runner)  # type: ignore[arg-type]
    svc.start("a@x.com", ["#job#1"])
    await asyncio.wait_for(svc.stop(grace_s=0.05), 2)
    assert runner.finished == [] and not svc._tasks
