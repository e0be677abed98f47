"""The capabilities service (phase 4): jobs as sagas, the capability registry, schedules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import httpx
from fastapi import FastAPI

from ..kit.chariot import create_chariot_app
from ..kit.peer_env import peer_url_overrides
from ..kit.settings import ChariotSettings
from ..kit.tables import GSI_FIELDS, LegacyShapedTable
from .leases import LeaseStore
from .peers import HttpPeers, MissingPeers
from .routes import router
from .runner import JobRunner
from .service import JobService
from .store import JOBS_TABLE, SCHEDULES_TABLE, table_specs

log = logging.getLogger("chariot.capabilities")


class CapabilitiesSettings(ChariotSettings):
    asset_url: str | None = None  # asset-discovery (targets, assets, attributes, preseeds)
    risk_url: str | None = None  # risk-assessment (risks)
    schedule_interval_s: float = 30.0  # how often due schedules are checked; 0 disables the loop
    peer_timeout_s: float = 5.0
    # SIGTERM: running and queued jobs get this long to finish (inside Kubernetes' 30 s grace period).
    shutdown_grace_s: float = 20.0

    @classmethod
    def from_env(cls, service: str = "capabilities", env=None, **overrides):
        env = os.environ if env is None else env
        return super().from_env(service, env, **peer_url_overrides(service, env, overrides))
    resume_queued_jobs: bool = True  # at startup, run jobs a previous process left queued
    # A running job holds a lease renewed every third of this; a lease not renewed for this long
    # means its process died: the recovery pass (at startup, then every half period) resumes it.
    job_lease_s: float = 30.0
    job_max_attempts: int = 3  # a job interrupted this many times ends JF instead of running again


def create_app(settings: CapabilitiesSettings | None = None, *, peers: object | None = None) -> FastAPI:
    """``peers`` (TargetLookup + ResultSink) overrides the HTTP peers (tests)."""
    settings = settings or CapabilitiesSettings.from_env("capabilities")

    async def startup(app: FastAPI) -> None:
        app.state.tables = {name: LegacyShapedTable(app.state.repos[name].sync, GSI_FIELDS)
                            for name in (JOBS_TABLE, SCHEDULES_TABLE)}
        chosen = peers
        if chosen is None and settings.asset_url and settings.risk_url and app.state.service_token:
            chosen = HttpPeers(settings.asset_url, settings.risk_url, app.state.service_token,
                               timeout=settings.peer_timeout_s)
        app.state.peers = chosen or MissingPeers()
        if isinstance(chosen, HttpPeers):
            app.state.ready_checks["asset-discovery"] = health_check(settings.asset_url)
            app.state.ready_checks["risk-assessment"] = health_check(settings.risk_url)
        leases = LeaseStore(app.state.repos[JOBS_TABLE].sync, lease_s=settings.job_lease_s)
        runner = JobRunner(app.state.tables[JOBS_TABLE], app.state.peers, app.state.peers, app.state.bus.publish,
                           leases=leases)
        app.state.jobs = JobService(app.state.tables[JOBS_TABLE], app.state.tables[SCHEDULES_TABLE],
                                    app.state.peers, runner)
        if settings.resume_queued_jobs:
            await app.state.jobs.resume_queued()
        app.state.recovery = asyncio.create_task(_recovery_loop(app, settings))
        app.state.scheduler = (asyncio.create_task(_schedule_loop(app, settings.schedule_interval_s))
                               if settings.schedule_interval_s > 0 else None)

    async def shutdown(app: FastAPI) -> None:
        for name in ("scheduler", "recovery"):
            task = getattr(app.state, name, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if getattr(app.state, "jobs", None) is not None:
            await app.state.jobs.stop(settings.shutdown_grace_s)
        if isinstance(getattr(app.state, "peers", None), HttpPeers):
            await app.state.peers.aclose()

    return create_chariot_app("capabilities", routers=[router], tables=table_specs(), settings=settings,
                              on_startup=[startup], on_shutdown=[shutdown])


def health_check(base_url: str | None):
    """Ready only when the peer answers its /health (jobs cannot run without it)."""

    async def check() -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            (await client.get(f"{base_url}/health")).raise_for_status()

    return check


async def _recovery_loop(app: FastAPI, settings: CapabilitiesSettings) -> None:
    """Resume or fail the jobs whose process died (expired leases): now, then every half lease."""
    while True:
        try:
            counts = await app.state.jobs.recover(settings.job_max_attempts)
            if counts["resume"] or counts["fail"]:
                log.warning("job recovery pass", extra=counts)
        except Exception:  # keep the loop alive; the next pass retries
            log.exception("job recovery pass failed")
        await asyncio.sleep(max(settings.job_lease_s / 2, 0.05))


async def _schedule_loop(app: FastAPI, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await app.state.jobs.run_due_schedules()
        except Exception:  # keep the loop alive; the next tick retries
            log.exception("schedule tick failed")
