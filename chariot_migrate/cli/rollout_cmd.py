"""shift, shadow, status, pin, unpin, rollback, history."""

from __future__ import annotations

import json
import sys
import time

import typer
from rich.table import Table

from ..rollout.state import HistoryEntry
from .common import AdminOpt, RoutesOpt, StateOpt, console, esc, friendly_errors
from .control import DirectControl, control


def _ago(ts: float) -> str:
    if not ts:
        return "never"
    d = max(0, time.time() - ts)
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if d >= n:
            return f"{int(d // n)}{unit} ago"
    return f"{int(d)}s ago"


def _pct(v: float) -> str:
    return f"{v:g}%"


ForceOpt = typer.Option(False, "--force", help="take the step although a safety check refuses it (needs --reason; "
                                               "recorded in the history as forced, with what was skipped)")


def _prepared(s: dict) -> str:
    """"yes (verified 3m ago)" / "no: dual write is off, no backfill has run"."""
    if s.get("prepared") is None:
        return "-"
    verified = f"verified {_ago(s['verify_at'])}" if s.get("verify_at") else "never verified"
    if s["prepared"]:
        return f"yes ({verified})"
    why = s.get("not_prepared_because") or []
    return "no: " + (why[0] if why else "?") + (f" (+{len(why) - 1} more; `prepare {s['service']}`)" if len(why) > 1 else "")


def status_table(doc: dict) -> Table:
    t = Table(title=f"rollout state (version {doc['version']})")
    for col in ("phase", "service", "stage", "% new", "shadow %", "dual write", "prepared", "pins", "last change"):
        t.add_column(col)
    for s in doc["services"]:
        pins = ", ".join(f"{a}→{v}" for a, v in s["pins"].items()) or "-"
        last = f"{_ago(s['updated_at'])} by {s['updated_by']}" if s["updated_at"] else "never"
        if s.get("reason"):
            last += f": {s['reason']}"
        t.add_row(*map(esc, (s["phase"] or "-", s["service"], s["stage"], _pct(s["percent"]),
                             _pct(s["shadow_percent"]), s["dual_write"], _prepared(s), pins, last)))
    return t


def _print_status(renderable, doc: dict) -> None:
    console.print(renderable)
    honoured = doc.get("dual_write_honoured")
    if honoured:
        console.print(f"dual write: {esc(honoured)}", highlight=False)


def service_view(ctl, service: str) -> dict:
    """One service now: its state, the controller's view of the next step (every gate with its
    measured value), and the window's errors per side, shadow diff rate and dual-write backlog."""
    from .plan_cmd import tick_doc

    row = next(r for r in ctl.ops.status() if r.service == service).as_dict()
    tick = ctl.evaluate(service)
    now = time.time()
    since = tick.since or now - 300
    win = ctl.evidence.windows.query(service, since, now=now)
    sides = {}
    for side in ("legacy", "new"):
        w = win.get(side)
        sides[side] = {"requests": w.requests if w else 0, "errors": w.errors if w else 0,
                       "error_rate": w.error_rate if w else None}
    shadow = None
    if ctl.evidence.diff_store is not None:
        from ..shadow.report import build_report

        rep = build_report(ctl.evidence.diff_store, service=service, since_s=max(1.0, now - since),
                           ignores=ctl.evidence.ignores)
        svc = next((x for x in rep.services if x.service == service), None)
        if svc is not None:
            shadow = {"pairs": svc.pairs, "adjusted_match_rate": svc.adjusted_match_rate,
                      "diff_rate": None if svc.adjusted_match_rate is None else 1 - svc.adjusted_match_rate}
    backlog = ctl.evidence.backlog(service) if ctl.evidence.backlog else None
    return {**row, "at": now, "window_since": since, "gates": tick_doc(tick), "sides": sides, "shadow": shadow,
            "backlog": None if backlog is None else backlog[0], "dead_letters": None if backlog is None else backlog[1]}


def service_panel(doc: dict):
    from rich.console import Group

    from .plan_cmd import summarise

    g = doc["gates"]
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    rate = lambda v: "n/a" if v is None else f"{v * 100:.2f}%"  # noqa: E731
    sh = doc["shadow"]
    for k, v in (("service", f"{doc['service']} (phase {doc['phase'] or '-'})"),
                 ("step", f"{g['step']} → next {g['next'] or '-'}: {g['decision']}"),
                 ("traffic", f"{_pct(doc['percent'])} new, shadow {_pct(doc['shadow_percent'])}, stage {doc['stage']}"),
                 ("prepared", _prepared(doc)),
                 ("window", f"since {time.strftime('%H:%M:%S', time.localtime(doc['window_since']))}"),
                 *((f"errors {side}", f"{s['errors']} of {s['requests']} ({rate(s['error_rate'])})")
                   for side, s in doc["sides"].items()),
                 ("diff rate", "no shadow comparisons" if not sh else
                  f"{rate(sh['diff_rate'])} of {sh['pairs']} pairs (noise-adjusted)"),
                 ("dual write", f"{doc['dual_write']}; backlog {doc['backlog'] if doc['backlog'] is not None else 'n/a'}, "
                                f"dead letters {doc['dead_letters'] if doc['dead_letters'] is not None else 'n/a'}"),
                 ("last change", f"{_ago(doc['updated_at'])} by {doc['updated_by']}: {doc['reason'] or '-'}"
                  if doc["updated_at"] else "never")):
        head.add_row(esc(k), esc(v))
    gates = Table(title=f"gates for {esc(g['next'] or '-')}", title_justify="left")
    for col in ("", "gate", "measured", "threshold", "on failure"):
        gates.add_column(col)
    for c in g["checks"]:
        gates.add_row("ok" if c["ok"] else "FAIL", *map(esc, (c["name"], summarise(c["measured"]), c["threshold"],
                                                              c["on_fail"])))
    if not g["checks"]:
        gates.add_row("", esc(g["reason"]), "", "", "")
    return Group(head, gates)


def watch_loop(snapshot, render, *, interval: float, count: int | None, as_json: bool) -> None:
    """Redraw until Ctrl-C (or ``count`` redraws): rich Live on a terminal; elsewhere (logs, pipes,
    tests) one plain block per redraw, headed by its time, or one JSON document per line."""
    n = 0
    try:
        if as_json or not console.is_terminal:
            while True:
                doc = snapshot()
                n += 1
                if as_json:
                    typer.echo(json.dumps(doc, default=str))
                else:
                    console.print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} (redraw {n}; Ctrl-C stops)",
                                  highlight=False)
                    _print_status(render(doc), doc)
                if count and n >= count:
                    return
                time.sleep(interval)
        from rich.live import Live

        with Live(console=console, auto_refresh=False, transient=False) as live:
            while True:
                doc = snapshot()
                n += 1
                from rich.console import Group
                from rich.text import Text

                live.update(Group(render(doc), Text(f"{time.strftime('%H:%M:%S')} · every {interval:g}s · "
                                                    "Ctrl-C stops", style="dim")), refresh=True)
                if count and n >= count:
                    return
                time.sleep(interval)
    except KeyboardInterrupt:
        return  # the way to stop watching: not an error


def _notes(result: dict) -> None:
    for note in result.get("notes") or ():
        console.print(f"note: {esc(note)}", highlight=False)


def _side_text(s) -> str:
    return f"{_pct(s.percent)} new, shadow {_pct(s.shadow_percent)}, stage {s.stage}"


def dry_run(routes: str | None, state: str | None, admin_url: str | None, service: str, mutate, *,
            force: bool, reason: str, phase_order: bool) -> dict:
    """What a change would do and what would refuse it — the phase order, the safety rule (the same
    evaluation ``Operations.apply`` makes) — plus what the plan's gates say about the next step.
    Reads the stores; writes nothing (no state, no history)."""
    import os

    from ..rollout.plan import phase_blockers
    from .common import ControlError
    from .plan_cmd import build_controller, tick_doc

    if admin_url or os.environ.get("CHARIOT_MIGRATE_ADMIN_URL"):
        raise ControlError("--dry-run evaluates against the state store itself: run it where the store is "
                           "(--state URL), without --admin-url / CHARIOT_MIGRATE_ADMIN_URL")
    ctl, cfg, _ = build_controller(routes, state)
    pv = ctl.ops.preview(service, mutate)
    blockers = []
    if phase_order and cfg.plan is not None and pv.after.percent_bp > 0:
        blockers = phase_blockers(cfg, ctl.ops.store.all(), service)
    problems = []
    if blockers and not force:
        problems.append(f"{service} cannot leave shadow while an earlier phase is unfinished ({'; '.join(blockers)})")
    if pv.refusal and not force:
        problems.append(pv.refusal)
    if force and not reason:
        problems.append("--force needs a --reason (it is kept in the audit history)")
    return {"service": service, "dry_run": True, "changes": pv.before != pv.after,
            "before": json.loads(pv.before.model_dump_json()), "after": json.loads(pv.after.model_dump_json()),
            "before_text": _side_text(pv.before), "after_text": _side_text(pv.after),
            "phase_blockers": blockers,
            "safety": {"checked": pv.checked, "ok": pv.refusal is None, "refusal": pv.refusal,
                       "missing": list(pv.missing), "notes": list(pv.notes)},
            "forced": bool(force and reason and (blockers or pv.refusal)),
            "would_apply": not problems, "refused_because": problems,
            "gates_next_step": tick_doc(ctl.evaluate(service))}


def show_dry_run(doc: dict, as_json: bool) -> None:
    from .plan_cmd import summarise

    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        say = lambda text: console.print(esc(text), highlight=False, soft_wrap=True)  # noqa: E731
        say(f"{doc['service']}: dry run, nothing changed")
        say(f"  would change: {doc['before_text']} → {doc['after_text']}" if doc["changes"] else
            f"  no change: already {doc['before_text']}")
        say("  phase order: " + ("; ".join(doc["phase_blockers"]) + (" (forced past)" if doc["forced"] else "")
                                 if doc["phase_blockers"] else "ok"))
        sf = doc["safety"]
        if not sf["checked"]:
            say("  safety rule: not needed (no account changes side)")
        elif sf["ok"]:
            say("  safety rule: ok" + (f" ({'; '.join(sf['notes'])})" if sf["notes"] else ""))
        else:
            say(f"  safety rule: {'forced past: ' + '; '.join(sf['missing']) if doc['forced'] else sf['refusal']}")
        g = doc["gates_next_step"]
        failing = [c for c in g["checks"] if not c["ok"]]
        say(f"  plan gates for the next step ({g['next'] or '-'}): {g['decision']}"
            + ("" if failing else f" ({g['reason']})") + " — advisory: a shift does not wait for them")
        for c in failing:
            say(f"    FAIL {c['name']}: {summarise(c['measured'])} (threshold {c['threshold']})")
        say("  verdict: would apply" if doc["would_apply"] else
            "  verdict: would be refused: " + "; ".join(doc["refused_because"]))
    if not doc["would_apply"]:
        sys.exit(1)


def undo_change(state, steps: list[str]):
    """(label, pure change) that takes SERVICE back one step of its plan; None when it is already
    plain legacy. Between two steps (e.g. 30 % with steps 25, 50) it goes to the step below."""
    from ..rollout import state as st
    from ..rollout.plan import current_index

    i = current_index(state, steps)
    if i < 0:
        return None
    here = steps[i]
    if here == "retired":
        return "100 (not retired)", lambda s: st.shift(s.model_copy(update={"stage": "new"}), s.percent)
    if here == "shadow":
        target = "shadow" if state.percent_bp > 0 else "legacy"
    elif state.percent_bp > round(float(here) * 100):
        target = here
    else:
        target = steps[i - 1] if i > 0 else "legacy"
    if target == "legacy":
        return "legacy", lambda s: st.set_shadow(st.shift(s, 0), 0)
    return target, lambda s: st.apply_step(s, target)


DryRunOpt = typer.Option(False, "--dry-run", help="say what would change and what would refuse it (phase order, "
                                                  "safety rule, plan gates); change nothing. Exit 0 would apply, 1 refused")


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly_errors
    def shift(service: str, percent: float = typer.Argument(..., help="share of accounts on the new side, 0–100, 0.01 steps"),
              reason: str = typer.Option("", "--reason", "-m", help="why (kept in the audit history)"),
              force: bool = ForceOpt, dry_run_: bool = DryRunOpt,
              as_json: bool = typer.Option(False, "--json", help="machine-readable: the new state (or the dry run)"),
              routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Send PERCENT % of SERVICE's accounts to the new side (sticky, monotonic)."""
        if dry_run_:
            from ..rollout import state as st
            from ..rollout.operations import OperationError

            if not 0 <= percent <= 100:
                raise OperationError(f"percent must be between 0 and 100, got {percent}")
            show_dry_run(dry_run(routes, state, admin_url, service, lambda s: st.shift(s, percent), force=force,
                                 reason=reason, phase_order=True), as_json)
            return
        s = control(routes, state, admin_url).shift(service, percent, reason, force)
        if as_json:
            typer.echo(json.dumps(s, indent=2, default=str))
            return
        console.print(f"{esc(service)}: {_pct(s['percent_bp'] / 100)} new (stage {s['stage']}, version {s['version']})")
        _notes(s)

    @app.command()
    @friendly_errors
    def shadow(service: str, percent: float = typer.Argument(..., help="share of accounts whose safe requests are shadowed"),
               reason: str = typer.Option("", "--reason", "-m"),
               routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Copy PERCENT % of SERVICE's accounts' safe requests to the other side and compare."""
        s = control(routes, state, admin_url).shadow(service, percent, reason)
        console.print(f"{esc(service)}: shadow {_pct(s['shadow_bp'] / 100)} (stage {s['stage']})")

    @app.command()
    @friendly_errors
    def rollback(service: str, reason: str = typer.Option("", "--reason", "-m"),
                 force: bool = ForceOpt,
                 routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Send all of SERVICE's accounts back to legacy at once (pins stay). Refused while writes
        made on the new side could not reach legacy; writes still on their way keep an account on
        new until they arrive."""
        s = control(routes, state, admin_url, need_routes=False).rollback(service, reason, force)
        console.print(f"{esc(service)}: rolled back to 0% new (stage {s['stage']})")
        _notes(s)

    app.command("abort", help="Alias of `rollback` (the name Argo Rollouts uses): all of SERVICE's accounts back "
                              "to legacy at once, through the same safety checks.")(rollback)

    @app.command()
    @friendly_errors
    def undo(service: str, reason: str = typer.Option("", "--reason", "-m"), force: bool = ForceOpt,
             dry_run_: bool = DryRunOpt,
             as_json: bool = typer.Option(False, "--json", help="machine-readable: the new state (or the dry run)"),
             routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Take SERVICE back one step of its plan (50 % → 25 %, 1 % → shadow, shadow → legacy),
        through the same safety checks as `rollback` (`--force --reason` overrides, audited)."""
        from ..rollout.operations import initial_state
        from ..rollout.plan import Plan
        from ..rollout.state import ServiceState
        from ..routes.loader import load_table
        from .common import ControlError, routes_path

        cfg = load_table(routes_path(routes)).config
        ctl = control(routes, state, None if dry_run_ else admin_url)
        if service not in cfg.services:
            raise ControlError(f"unknown service {service!r}; routes.yaml knows: {', '.join(sorted(cfg.services))}")
        try:
            steps = Plan.from_routes(cfg).steps_for(service)
        except ValueError as e:
            raise ControlError(f"routes.yaml plan: {e}") from None
        if isinstance(ctl, DirectControl):
            current = ctl.ops.store.get(service) or initial_state(service, cfg.services[service])
        else:
            row = next(r for r in ctl.status()["services"] if r["service"] == service)
            current = ServiceState(service=service, stage=row["stage"], percent_bp=round(row["percent"] * 100),
                                   shadow_bp=round(row["shadow_percent"] * 100))
        change = undo_change(current, steps)
        if change is None:
            console.print(f"{esc(service)}: already on legacy, nothing to undo")
            return
        label, mutate = change
        if dry_run_:
            show_dry_run(dry_run(routes, state, admin_url, service, mutate, force=force, reason=reason,
                                 phase_order=False), as_json)
            return
        if force and not reason:
            raise ControlError("--force needs a --reason (it is kept in the audit history)")
        if isinstance(ctl, DirectControl):
            ops = ctl.ops
            s = ops.apply(service, mutate, actor=None, action=f"undo → {label}" + (" (forced)" if force else ""),
                          reason=reason or "undo", force=force)
            notes = ops.notes
        else:  # the admin API changes one dimension per call: the % first (the safety rule may refuse
            # it, and then nothing changed), then the shadow share (never refused)
            if label == "100 (not retired)":
                raise ControlError("un-retiring goes through the state store: run `undo` without --admin-url")
            res = ctl.shift(service, 0 if label in ("shadow", "legacy") else float(label), reason or "undo", force)
            if label in ("shadow", "legacy"):
                res = {**ctl.shadow(service, 100 if label == "shadow" else 0, reason or "undo"),
                       "notes": res.get("notes", [])}
            s, notes = ServiceState.model_validate({k: v for k, v in res.items() if k != "notes"}), res.get("notes", [])
        if as_json:
            typer.echo(json.dumps({**json.loads(s.model_dump_json()), "undone_to": label, "notes": list(notes)},
                                  indent=2))
            return
        console.print(f"{esc(service)}: back to {esc(label)} ({_side_text(s)})", highlight=False)
        _notes({"notes": notes})

    @app.command()
    @friendly_errors
    def pin(service: str, account: str, to: str = typer.Option(..., "--to", help="legacy or new"),
            reason: str = typer.Option("", "--reason", "-m"), force: bool = ForceOpt,
            routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Always serve ACCOUNT from one side, whatever the percentage."""
        s = control(routes, state, admin_url).pin(service, account, to, reason, force)
        console.print(f"{esc(service)}: {esc(account.lower())} pinned to {esc(to)}")
        _notes(s)

    @app.command()
    @friendly_errors
    def unpin(service: str, account: str, reason: str = typer.Option("", "--reason", "-m"),
              force: bool = ForceOpt, routes: str = RoutesOpt, state: str = StateOpt,
              admin_url: str = AdminOpt) -> None:
        """Remove ACCOUNT's pin; it follows the percentage again."""
        s = control(routes, state, admin_url).unpin(service, account, reason, force)
        console.print(f"{esc(service)}: {esc(account.lower())} unpinned")
        _notes(s)

    @app.command()
    @friendly_errors
    def status(service: str = typer.Argument(None, help="one service: its step, gates with their current values, "
                                                         "backlog, diff rate and errors per side"),
               as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
               watch: bool = typer.Option(False, "--watch", "-w", help="redraw every --interval until Ctrl-C"),
               interval: float = typer.Option(2.0, "--interval", min=0.01, help="seconds between redraws"),
               count: int = typer.Option(None, "--count", min=1, help="with --watch: stop after this many redraws"),
               routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Where every service stands: phase, stage, % new, shadow %, pins, last change. With
        SERVICE: that service's live view. `--watch` redraws it until Ctrl-C."""
        if service is None:
            def snapshot():
                return control(routes, state, admin_url).status()
            render = status_table
        else:
            import os

            from .common import ControlError

            if admin_url or os.environ.get("CHARIOT_MIGRATE_ADMIN_URL"):
                raise ControlError(f"`status {service}` reads the stores the gates read (state, request windows, "
                                   "shadow diffs, outbox): run it where they are, without --admin-url")
            from .plan_cmd import build_controller

            ctl = build_controller(routes, state)[0]
            ctl.ops._svc(service)

            def snapshot():
                return service_view(ctl, service)
            render = service_panel
        if not watch:
            doc = snapshot()
            if as_json:
                typer.echo(json.dumps(doc, indent=2, default=str))
            else:
                _print_status(render(doc), doc)
            return
        watch_loop(snapshot, render, interval=interval, count=count, as_json=as_json)

    @app.command()
    @friendly_errors
    def history(service: str = typer.Argument(None, help="one service, or all"),
                limit: int = typer.Option(50, "--limit", "-n"),
                as_json: bool = typer.Option(False, "--json"),
                routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """The audit trail: who changed what, when, from → to, and why."""
        entries = control(routes, state, admin_url, need_routes=False).history(service, limit)
        if as_json:
            typer.echo(json.dumps(entries, indent=2))
            return
        t = Table(title=f"history{' of ' + esc(service) if service else ''}")
        for col in ("#", "when (UTC)", "service", "who", "action", "change", "why"):
            t.add_column(col)
        for e in entries:
            h = HistoryEntry.model_validate(e)
            t.add_row(*map(esc, (h.id, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(h.at)), h.service, h.actor,
                                 h.action, h.summary(), h.reason or "-")))
        console.print(t)
