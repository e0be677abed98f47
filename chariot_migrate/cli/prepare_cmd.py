"""`prepare SERVICE`: make a service safe to serve traffic from, in one idempotent command.

dual write on in both directions (and seen by the proxies) → backfill (a new pass, or the rest of
an interrupted one) → wait for the outbox to deliver → verify → the verdict of the safety rule.
Like Vitess MoveTables' `create` + `vdiff`: the copy starts only once changes are being streamed,
so nothing written meanwhile is missed.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import httpx
import typer

from .common import AdminOpt, ControlError, RoutesOpt, StateOpt, console, esc, friendly_errors, routes_path

PROXY_POLL_WAIT_S = 1.5  # proxy workers poll the state store every 0.5 s; wait past that


def running_proxy(state: str | None, admin_url: str | None) -> tuple[str, dict[str, Any]] | None:
    """(admin URL, its /capabilities) of the proxy driving this state, or None when none answers."""
    from ..statedir import read_stack, state_dir

    url = admin_url or os.environ.get("CHARIOT_MIGRATE_ADMIN_URL")
    directory = state_dir(state)
    if not url:
        stack = read_stack(directory)
        url = stack.admin_url if stack else None
    if not url:
        return None
    token = os.environ.get("CHARIOT_MIGRATE_ADMIN_TOKEN")
    if not token:
        try:
            token = (directory / "admin.token").read_text().strip()
        except OSError:
            return None
    try:
        r = httpx.get(url.rstrip("/") + "/capabilities", headers={"authorization": f"Bearer {token}"}, timeout=3)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    return url, r.json()


def dual_write_honoured(cfg, state: str | None, admin_url: str | None) -> tuple[str | None, list[str]]:
    """(why dual write would NOT happen, or None; what to tell the operator). The outbox every proxy
    uses must open and answer; a running proxy must say it dual writes."""
    from ..dual_write.config import DualWriteConfig, outbox_url
    from ..dual_write.outbox import open_outbox
    from ..redact import redact_url

    url = outbox_url(cfg.dual_write, state_url=state)

    async def probe() -> None:
        ob = open_outbox(url)
        try:
            await ob.status()
        finally:
            await ob.aclose()

    try:
        asyncio.run(probe())
    except Exception as e:  # noqa: BLE001 — any failure means no proxy could record a write
        return f"the dual-write outbox {redact_url(url)} cannot be used ({type(e).__name__}: {e})", []
    notes = [f"outbox {redact_url(url)}"]
    proxy = running_proxy(state, admin_url)
    if proxy is None:
        notes.append("no running proxy answered; every proxy started from this routes.yaml dual writes")
    else:
        admin, caps = proxy
        dw = caps.get("dual_write") or {}
        if not dw.get("installed"):
            return f"the proxy at {admin} does not dual write", notes
        notes.append(f"the proxy at {admin} dual writes (replays {dw.get('replay')})")
    if not DualWriteConfig.from_section(cfg.dual_write).worker:
        notes.append("dual_write.worker is false: `chariot-migrate dual-write worker` must run to deliver")
    return None, notes


def dual_write_on(cfg, ops, service: str, *, state: str | None, admin_url: str | None) -> bool:
    """Step 1: dual write on for every account, both directions; True when it was off."""
    problem, notes = dual_write_honoured(cfg, state, admin_url)
    if problem:
        raise ControlError(f"{service} cannot be prepared: {problem}")
    current = ops.store.get(service)
    if current is None or current.dual_write != "on" or current.dual_write_bp < 10_000:
        ops.set_dual_write(service, "on", 100, reason="prepare")
        console.print(f"{esc(service)} 1/4 dual write on for every account, both directions ({esc('; '.join(notes))})",
                      highlight=False, soft_wrap=True)
        return True
    since_text = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(current.dual_write_since))
    console.print(f"{esc(service)} 1/4 dual write already on since {since_text} ({esc('; '.join(notes))})",
                  highlight=False, soft_wrap=True)
    return False


def copy_and_verify(cfg, ops, service: str, *, state: str | None, rate: float | None, segments: int,
                    drain_timeout: float, endpoint_url: str | None) -> None:
    """Steps 2–4: backfill (after dual write is seen by the proxies), drain, verify."""
    from ..dual_write.config import outbox_url
    from ..dual_write.migration import FileCheckpointStore
    from ..dual_write.outbox import open_outbox
    from ..statedir import under
    from .dual_write_cmd import run_backfill, run_verify

    since = ops.store.get(service).dual_write_since
    checkpoints = FileCheckpointStore(under("checkpoints", state))
    cp = checkpoints.load(f"backfill-{service}")
    if cp is not None and (cp.get("pass_started_at") or 0) < since:
        checkpoints.clear(f"backfill-{service}")  # that pass began before writes were streamed
    console.print(f"{esc(service)} 2/4 backfill", highlight=False, soft_wrap=True)
    run_backfill(cfg, service, state=state, endpoint_url=endpoint_url, rate=rate, segments=segments)

    async def drain() -> int:
        ob = open_outbox(outbox_url(cfg.dual_write, state_url=state))
        try:
            return await ob.drain(drain_timeout, service)
        finally:
            await ob.aclose()

    left = asyncio.run(drain())
    console.print(f"{esc(service)} 3/4 outbox "
                  f"{'drained' if not left else f'still holds {left} write(s) after {drain_timeout:g}s'}",
                  highlight=False, soft_wrap=True)
    console.print(f"{esc(service)} 4/4 verify", highlight=False, soft_wrap=True)
    res, _ = run_verify(cfg, service, state=state, endpoint_url=endpoint_url, rate=rate)
    if not res.ok:
        # Writes that landed between the scan of one side and the other: look once more.
        time.sleep(1.0)
        run_verify(cfg, service, state=state, endpoint_url=endpoint_url, rate=rate)


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly_errors
    def prepare(services: list[str] = typer.Argument(None, help="the services to prepare (or --all)"),
                all_: bool = typer.Option(False, "--all", help="every service of routes.yaml, in phase order"),
                rate: float = typer.Option(None, "--rate", help="backfill and verify: items per second"),
                segments: int = typer.Option(1, "--segments", help="backfill: parallel scan segments"),
                drain_timeout: float = typer.Option(30, "--drain-timeout",
                                                    help="seconds to wait for the outbox before verifying"),
                endpoint_url: str = typer.Option(None, "--endpoint-url", help="AWS endpoint [default: the stack's]"),
                routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Make services safe to move: dual write on (both directions), backfill, verify. Exit 0 when
        every one is prepared, 1 (with the reasons) when one is not. Run it again any time: it
        catches up. Services that share data (`shares_data_with`) must be prepared together."""
        from ..rollout.operations import Operations, initial_state
        from ..rollout.safety import readiness
        from ..rollout.store import open_state_store
        from ..routes.loader import load_table

        cfg = load_table(routes_path(routes)).config
        ops = Operations(open_state_store(state), cfg, state_url=state)
        names = sorted(cfg.services, key=lambda n: cfg.services[n].phase) if all_ else list(services or [])
        if not names:
            raise ControlError("name the services to prepare, or pass --all")
        for name in names:
            ops._svc(name)
        turned_on = [dual_write_on(cfg, ops, name, state=state, admin_url=admin_url) for name in names]
        if any(turned_on):
            time.sleep(PROXY_POLL_WAIT_S)  # every proxy worker sees it before any copy starts
        for name in names:
            copy_and_verify(cfg, ops, name, state=state, rate=rate, segments=segments, drain_timeout=drain_timeout,
                            endpoint_url=endpoint_url)
        failed = []
        for name in names:
            # Its own data decides the exit code; unprepared peers are the next step, named here.
            state_now = ops.store.get(name) or initial_state(name, cfg.services.get(name))
            verdict = readiness(name, state_now, ops.data_evidence.gather(name))
            if verdict.ok:
                waiting = ops._data_evidence(name).peers_unprepared
                then = (f"before it serves accounts from new, prepare the services it shares data with: "
                        f"`chariot-migrate prepare {esc(' '.join(waiting))}`" if waiting else
                        f"`chariot-migrate shift {esc(name)} PERCENT` may now serve accounts from the new side")
                console.print(f"[green]{esc(name)} is prepared[/green]: dual write on both ways, backfilled, verified "
                              f"clean; {then}", highlight=False, soft_wrap=True)
            else:
                failed.append(verdict.sentence(f"{name} is not prepared"))
        if failed:
            raise ControlError("; ".join(failed))
