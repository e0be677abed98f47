"""``make bench``: direct vs bare forwarder vs chariot-migrate proxy, all in one run, as ratios.

Starts one echo upstream, the bare aiohttp forwarder and the proxy (1 and 2 workers each), checks
that the proxy's bucketing really splits traffic, loads every scenario with wrk (or the built-in
aiohttp loader) in interleaved rounds, prints one table and the verdicts on the issue's targets,
and writes bench/results/latest.json. Every process it starts is stopped on exit, Ctrl-C included.

    python -m bench.run [--quick | --smoke] [--loader auto|wrk|builtin] [--profile SECONDS] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console

from . import data_bench
from .loadgen import run_load_blocking
from .procs import Child, Children, StartError, group_cpu_seconds
from .report import (
    BenchReport,
    Machine,
    SkippedScenario,
    compute_ratios,
    goal_lines,
    judge,
    render_sla_table,
    render_table,
    scenario_result,
    sla_goals,
)
from .scenarios import MODES, SCENARIOS, Mode, ProxyProfile, Scenario, all_scenarios, select_scenarios
from .services_sla import GROUP as SLA_GROUP
from .services_sla import SlaError, SlaReport, run_group
from .stats import LoadResult

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLI = str(BIN / "chariot-migrate")
WRK_SCRIPT = ROOT / "bench" / "wrk_report.lua"
BENCH_PATH = "/bench/1"
SERVICE = "svc"
# Admin token for the proxies this run starts (read /metrics after the load). Never printed.
ADMIN_TOKEN = secrets.token_urlsafe(24)

# Wide enough for the table when output goes to a file or CI log (rich would assume 80 columns).
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)


class BenchError(RuntimeError):
    """The harness itself failed (a process did not start, a check did not pass)."""


# ---- loaders --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loader:
    kind: str  # "wrk" or "builtin"
    version: str

    def run(self, url: str, connections: int, duration_s: float, write_share: float = 0.0) -> LoadResult:
        if self.kind == "builtin":
            # In-process (no interpreter start-up per run); the harness is idle meanwhile.
            return run_load_blocking(url, connections, duration_s, write_share=write_share)
        # wrk takes whole seconds; one thread leaves the second core to the servers.
        args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "5s",
                "-s", str(WRK_SCRIPT), url]
        env = {**os.environ, "BENCH_WRITE_SHARE": f"{write_share:g}"}
        proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=duration_s + 60)
        for line in reversed(proc.stdout.strip().splitlines()):
            if line.startswith("{"):
                return LoadResult.model_validate_json(line)
        raise BenchError(f"wrk printed no result for {url} (exit {proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()[-300:]}")


def pick_loader(choice: str) -> Loader:
    wrk = shutil.which("wrk")
    if choice == "wrk" and not wrk:
        raise BenchError("--loader wrk: wrk is not installed (apt-get install wrk), or use --loader builtin")
    if wrk and choice in ("auto", "wrk"):
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
        version = (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0] if (out.stdout or out.stderr) else "wrk"
        return Loader("wrk", version.strip())
    return Loader("builtin", "bench.loadgen (aiohttp)")


def _pythonpath() -> str:
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


# ---- processes ------------------------------------------------------------------------------------


@dataclass
class Targets:
    upstream: Child | None = None
    bare: dict[tuple[int, str, str], Child] = field(default_factory=dict)  # (workers, client, server)
    proxies: dict[tuple[str, int], Child] = field(default_factory=dict)
    proxy_dirs: dict[tuple[str, int], Path] = field(default_factory=dict)

    def child(self, s: Scenario) -> Child:
        child = {"direct": lambda: self.upstream, "bare": lambda: self.bare[(s.workers, s.client, s.server)],
                 "proxy": lambda: self.proxies[(s.profile.name, s.workers)]}[s.target]()
        assert child is not None
        return child

    def url(self, s: Scenario) -> str:
        return f"http://127.0.0.1:{self.child(s).info['port']}{BENCH_PATH}"


def routes_yaml(upstream_port: int, *, outbox: Path | None = None) -> str:
    """Both sides point at the same upstream, so direct / bare / proxy compare fairly.

    ``outbox``: enable the dual-write section (durable outbox in this file, replay worker in the proxy).
    """
    doc: dict[str, object] = {
        "version": 1,
        "bucket_by": ["header:account"],
        "legacy": {"invoker": "http", "url": f"http://127.0.0.1:{upstream_port}"},
        "services": {SERVICE: {"phase": 1, "url": f"http://127.0.0.1:{upstream_port}"}},
        "routes": [{"path": "/bench/{id}", "methods": ["GET", "POST"], "service": SERVICE}],
    }
    if outbox is not None:
        doc["dual_write"] = {"outbox": f"sqlite:///{outbox}"}
    return yaml.safe_dump(doc, sort_keys=False)


def setup_proxy_state(workdir: Path, profile: ProxyProfile) -> None:
    """Live state set through the same code the CLI runs (``chariot-migrate shift|shadow|dual-write set``
    → cli.control.DirectControl → rollout.Operations), in-process: one interpreter start-up per
    command would cost seconds on a loaded 2-core machine."""
    from chariot_migrate.cli.control import DirectControl

    ctl = DirectControl(str(workdir / "routes.yaml"), f"sqlite:///{workdir / 'state.db'}")
    try:
        if profile.dual_write:
            ctl.ops.set_dual_write(SERVICE, "on", reason="bench")
        # Forced, with the reason audited: the synthetic upstream holds no customer data to prepare.
        ctl.shift(SERVICE, profile.percent_new, "bench: synthetic upstream, no data to prepare", True)
        if profile.shadow_percent:
            ctl.shadow(SERVICE, profile.shadow_percent, "bench")
    except Exception as e:  # noqa: BLE001 — any refusal is a harness failure with its message
        raise BenchError(f"setting the proxy's live state failed: {e}") from None
    finally:
        close = getattr(ctl.ops.store, "close", None)
        if callable(close):
            close()


def start_targets(kids: Children, scenarios: list[Scenario], workdir: Path, upstream_workers: int) -> Targets:
    t = Targets()
    env = {"PYTHONPATH": _pythonpath(), "CHARIOT_MIGRATE_ADMIN_TOKEN": ADMIN_TOKEN}
    t.upstream = kids.start("upstream", [CLI, "example-upstream", "bench", "--port", "0",
                                         "--workers", str(upstream_workers)], env=env)
    up = t.upstream.info["port"]
    for w, client, server in sorted({(s.workers, s.client, s.server) for s in scenarios if s.target == "bare"}):
        name = "-".join(["bare", *([server] if server != "uvicorn" else []), *([client] if client != "aiohttp" else []),
                         f"w{w}"])
        t.bare[(w, client, server)] = kids.launch(name, [
            sys.executable, "-m", "bench.bare_forwarder", "--upstream", f"http://127.0.0.1:{up}", "--port", "0",
            "--workers", str(w), "--client", client, "--server", server], cwd=ROOT, env=env)
    profiles = {s.profile.name: s.profile for s in scenarios if s.target == "proxy"}
    for key in sorted({(s.profile.name, s.workers) for s in scenarios if s.target == "proxy"}):
        profile = profiles[key[0]]
        d = workdir / f"proxy-{key[0]}-w{key[1]}"
        d.mkdir()
        (d / "routes.yaml").write_text(routes_yaml(up, outbox=d / "outbox.db" if profile.dual_write else None))
        setup_proxy_state(d, profile)
        t.proxy_dirs[key] = d
    for key, d in t.proxy_dirs.items():
        # Access logs stay on ("logging on" is part of the target); they go to a file.
        t.proxies[key] = kids.launch(f"proxy-{key[0]}-w{key[1]}", [
            CLI, "proxy", "--routes", str(d / "routes.yaml"), "--state", f"sqlite:///{d / 'state.db'}",
            "--port", "0", "--admin-port", "0", "--workers", str(key[1]),
            "--http-client", profiles[key[0]].http_client, "--server", profiles[key[0]].server], cwd=d, env=env)
    for child in [*t.bare.values(), *t.proxies.values()]:
        child.wait_announced()
    return t


# ---- checks ---------------------------------------------------------------------------------------


def wait_serving(url: str, timeout: float = 30.0) -> None:
    """Workers come up after the port is announced: wait until the URL answers 200."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, headers={"account": "warmup@example.com"}, timeout=2)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as e:
            last = str(e)
        time.sleep(0.1)
    raise BenchError(f"{url} did not answer 200 within {timeout:g}s ({last})")


def check_bucketing(url: str, accounts: int = 100) -> dict[str, int]:
    """Count which side answered for many accounts: the split must really happen."""
    sides: Counter[str] = Counter()
    with httpx.Client(timeout=5) as c:
        for i in range(accounts):
            r = c.get(url, headers={"account": f"bench{i}@example.com"})
            if r.status_code != 200:
                raise BenchError(f"proxy answered {r.status_code} during the bucketing check: {r.text[:200]}")
            sides[r.headers.get("x-migrate-side", "?")] += 1
    if not (sides.get("legacy") and sides.get("new")):
        raise BenchError(f"bucketing did not split traffic at 50 % new: {dict(sides)}")
    return dict(sides)


def proxy_counters(child: Child) -> dict[str, float]:
    """Selected Prometheus counters from a proxy's admin /metrics (proof that metrics and shadowing ran)."""
    r = httpx.get(f"http://127.0.0.1:{child.info['admin_port']}/metrics",
                  headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    if r.status_code != 200:
        return {"error": float(r.status_code)}
    out: dict[str, float] = {}
    for line in r.text.splitlines():
        name, _, rest = line.partition("{")
        if name == "proxy_requests_total":
            out["proxy_requests_total"] = out.get("proxy_requests_total", 0.0) + float(line.rsplit(" ", 1)[1])
        elif name in ("shadow_requests_total", "dual_write_records_total"):
            result = rest.split('result="', 1)[1].split('"', 1)[0] if 'result="' in rest else "?"
            key = f"{name.split('_')[0] if name.startswith('shadow') else 'dual_write'}_{result}"
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


# ---- profiling ------------------------------------------------------------------------------------


def profile_target(child: Child, url: str, loader: Loader, seconds: float, raw: Path,
                   handler: str) -> dict[str, object]:
    """py-spy on a 1-worker server (its main process is the worker) under 50-connection load.

    Areas and steps come with µs per request: their share of the samples × the CPU per request
    measured from /proc over the same window, so the bare forwarder and the proxy compare directly.
    """
    from .profile import summarise_collapsed

    pyspy = shutil.which("py-spy") or str(BIN / "py-spy")
    if not Path(pyspy).exists():
        return {"error": "py-spy is not installed (pip install py-spy)"}
    spy = subprocess.Popen([pyspy, "record", "--pid", str(child.pid), "--duration", str(max(1, round(seconds))),
                            "--rate", "250", "--format", "raw", "--output", str(raw), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # let py-spy attach before the load starts
    cpu0 = group_cpu_seconds(child.pid)
    load = loader.run(url, 50, seconds)
    cpu_us = (group_cpu_seconds(child.pid) - cpu0) * 1e6 / max(1, load.requests)
    try:
        _, err = spy.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, err = spy.communicate()
    if spy.returncode != 0 or not raw.exists():
        return {"error": f"py-spy failed (exit {spy.returncode}): {err.strip()[-300:]}"}
    summary = summarise_collapsed(raw.read_text().splitlines(), handler=handler)
    summary["load_rps_while_profiled"] = round(load.rps, 1)
    summary["cpu_us_per_req"] = round(cpu_us, 1)
    for key in ("areas", "under_handler", "top_self"):
        for row in summary[key]:  # type: ignore[union-attr]
            row["us_per_req"] = round(row["pct"] * cpu_us / 100, 1)
    return summary


def profile_targets(targets: Targets, loader: Loader, seconds: float, workdir: Path) -> dict[str, object]:
    """Profile the 1-worker bare forwarder and the 1-worker proxy the same way, one after the other."""
    out: dict[str, object] = {}
    bare = next(s for s in SCENARIOS if s.name == "bare-w1-c50")
    proxy = next(s for s in SCENARIOS if s.name == "proxy-w1-c50")
    if (1, "aiohttp", "uvicorn") in targets.bare:
        out["bare_w1"] = profile_target(targets.bare[(1, "aiohttp", "uvicorn")], targets.url(bare), loader, seconds,
                                        workdir / "bare.collapsed", "BareForwarder.__call__ (")
    if (proxy.profile.name, 1) in targets.proxies:
        out["proxy_w1"] = profile_target(targets.proxies[(proxy.profile.name, 1)], targets.url(proxy), loader,
                                         seconds, workdir / "proxy.collapsed", "ProxyApp._handle (")
    return out or {"error": "needs the bare-w1-c50 / proxy-w1-c50 scenarios"}


# ---- the run --------------------------------------------------------------------------------------


def git_info() -> tuple[str, bool]:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
        return sha or "unknown", dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def machine() -> Machine:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return Machine(cores=cores, cpu_model=cpu, platform=platform.platform(), python=platform.python_version())


def plan(mode: str, only: list[str] | None) -> tuple[list[Scenario], list[tuple[str, str]], bool]:
    """(scenarios, [(name, why skipped)], run services-sla?). services-sla is opt-in: the full run
    (make bench) or ``--only services-sla``; never quick or smoke."""
    with_sla = SLA_GROUP in only if only else mode == "full"
    only_scenarios = [n for n in (only or []) if n != SLA_GROUP]
    if only and not only_scenarios:
        return [], [], with_sla
    scenarios, skipped = select_scenarios(mode, only_scenarios or None)
    if not with_sla and not only:
        skipped.append((SLA_GROUP, "opt-in: make bench or --only services-sla"))
    return scenarios, skipped, with_sla


DATA_GROUP = "data"


def run(mode: Mode, loader: Loader, *, out: Path, upstream_workers: int, profile_s: float,
        only: list[str] | None = None, keep: bool = False, sla_duration_s: float = 10.0,
        sla_profile_s: float = 8.0, data_args: argparse.Namespace | None = None) -> BenchReport:
    started = time.monotonic()
    known = [s.name for s in all_scenarios()] + [SLA_GROUP, DATA_GROUP]
    unknown = sorted(set(only or []) - set(known))
    if unknown:
        raise BenchError(f"unknown scenario {', '.join(unknown)} in --only; known: {', '.join(known)}")
    # The data group (backfill/verify on moto) is opt-in like services-sla: make bench or --only data.
    with_data = DATA_GROUP in only if only else mode.name == "full"
    rest = [n for n in only or [] if n != DATA_GROUP]
    scenarios, skipped_reasons, with_sla = plan(mode.name, rest or None) if rest or not only else ([], [], False)
    if not with_data and not only:
        skipped_reasons.append((DATA_GROUP, "opt-in: make bench or --only data"))
    skipped = [SkippedScenario(name=n, reason=r) for n, r in skipped_reasons]
    if not scenarios and not with_sla and not with_data:
        raise BenchError(f"nothing to run: {', '.join(only or [])} is not wired into the proxy yet")
    if with_sla and loader.kind != "wrk":
        raise BenchError(f"{SLA_GROUP} needs wrk (apt-get install wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="chariot-bench-"))
    rounds: dict[str, list[LoadResult]] = {s.name: [] for s in scenarios}
    cpu_per_req: dict[str, list[float]] = {s.name: [] for s in scenarios}
    checks: dict[str, object] = {}
    sla: SlaReport | None = None
    data: dict[str, object] | None = None
    try:
        if scenarios:
            _run_scenarios(mode, loader, scenarios, workdir, upstream_workers, profile_s, started, rounds,
                           cpu_per_req, checks)
        if with_sla:
            sla_dir = workdir / "services-sla"
            sla_dir.mkdir()
            try:
                sla = run_group(root=ROOT, cli=CLI, workdir=sla_dir, duration_s=sla_duration_s,
                                direct_s=sla_duration_s, profile_s=sla_profile_s, log=console.print)
            except (SlaError, StartError, httpx.HTTPError, OSError, subprocess.SubprocessError) as e:
                sla = SlaReport(duration_s=sla_duration_s, connections=50, error=f"{type(e).__name__}: {e}")
        if with_data:
            args = data_args or data_bench.parser().parse_args([])
            try:
                data = data_bench.run_group(args.sizes, args, log=console.print)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                data = {"error": f"{type(e).__name__}: {e}"}
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results = [scenario_result(s, rounds[s.name], cpu_per_req[s.name]) for s in scenarios]
    ratios = compute_ratios(results)
    sha, dirty = git_info()
    report = BenchReport(
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), git_commit=sha, git_dirty=dirty,
        machine=machine(), mode=mode.name, loader=f"{loader.kind} ({loader.version})",
        settings={"duration_s": mode.duration_s, "warmup_s": mode.warmup_s, "rounds": mode.rounds,
                  "upstream_workers": upstream_workers, "path": BENCH_PATH, "percent_new": 50},
        scenarios=results, skipped=skipped, ratios=ratios,
        goals=(judge(ratios) if scenarios else []) + sla_goals(sla), checks=checks, services_sla=sla, data=data,
        wall_time_s=round(time.monotonic() - started, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.model_dump_json(indent=2) + "\n")
    return report


def _run_scenarios(mode: Mode, loader: Loader, scenarios: list[Scenario], workdir: Path, upstream_workers: int,
                   profile_s: float, started: float, rounds: dict[str, list[LoadResult]],
                   cpu_per_req: dict[str, list[float]], checks: dict[str, object]) -> None:
    """The proxy-overhead scenarios: their processes are stopped before the services-sla group starts."""
    with Children(workdir) as kids:
        console.print(f"starting upstream, bare forwarders and proxies (logs in {workdir}) …")
        targets = start_targets(kids, scenarios, workdir, upstream_workers)
        for s in scenarios:
            wait_serving(targets.url(s))
        console.print(f"  all serving after {time.monotonic() - started:.1f}s")
        for key in targets.proxies:
            s = next(s for s in scenarios if s.target == "proxy" and (s.profile.name, s.workers) == key)
            checks[f"bucketing_{key[0]}_w{key[1]}"] = check_bucketing(targets.url(s))
        if mode.warmup_s > 0:  # pools, lazy imports, caches: every target at once, before measuring
            urls = sorted({targets.url(s) for s in scenarios})
            with ThreadPoolExecutor(len(urls)) as pool:
                list(pool.map(lambda u: loader.run(u, 50, mode.warmup_s), urls))
        total = len(scenarios) * mode.rounds
        n = 0
        for r in range(mode.rounds):
            for s in scenarios:
                pgid = targets.child(s).pid
                cpu0 = group_cpu_seconds(pgid)
                res = loader.run(targets.url(s), s.connections, mode.duration_s, s.write_share)
                cpu = group_cpu_seconds(pgid) - cpu0
                rounds[s.name].append(res)
                if res.requests:
                    cpu_per_req[s.name].append(cpu * 1e6 / res.requests)
                n += 1
                console.print(f"  [{n}/{total}] round {r + 1} {s.name:<14} {res.rps:>9,.0f} req/s  "
                              f"p50 {res.p50_us / 1000:.2f} ms  p99 {res.p99_us / 1000:.2f} ms  "
                              f"CPU {cpu * 1e6 / max(1, res.requests):.0f} µs/req"
                              f"{'  errors ' + str(res.errors) if res.errors else ''}")
        if profile_s > 0:
            console.print(f"profiling the 1-worker bare forwarder and proxy with py-spy, {profile_s:g}s each …")
            checks["profile"] = profile_targets(targets, loader, profile_s, workdir)
        counters = {f"{k[0]}_w{k[1]}": proxy_counters(c) for k, c in targets.proxies.items()}
        checks["proxy_counters"] = counters
        blind = sorted(k for k, v in counters.items() if not v.get("proxy_requests_total"))
        if blind:
            checks["warnings"] = [f"admin /metrics shows no proxy_requests_total for {', '.join(blind)}: "
                                  "the proxy's request metrics did not reach the admin port"]
        checks["proxy_log_lines"] = {f"{k[0]}_w{k[1]}": _count_lines(kids, f"proxy-{k[0]}-w{k[1]}")
                                     for k in targets.proxies}


def _count_lines(kids: Children, name: str) -> int:
    child = next((c for c in kids.started if c.name == name), None)
    if child is None:
        return 0
    with open(child.stderr_path, "rb") as f:
        return sum(1 for _ in f)


def print_data(data: dict[str, Any]) -> None:
    if data.get("error"):
        console.print(f"  {DATA_GROUP}: {data['error']}")
        return
    for engine, res in (data.get("engines") or {}).items():
        console.print(f"  {DATA_GROUP} {engine}: {res['verdict']}")
        for row in res["sizes"]:
            console.print(f"  {DATA_GROUP} {engine} {row['size']}: insert {row['insert']} backfill {row['backfill']} "
                          f"verify {row['verify']} legacy {row['legacy']}")
    for row in data.get("ratio_dynalite_over_moto") or []:
        console.print(f"  {DATA_GROUP} dynalite/moto {row}")
    for engine, reason in (data.get("skipped") or {}).items():
        console.print(f"  skipped {DATA_GROUP} {engine}: {reason}")


def print_report(report: BenchReport, out: Path) -> None:
    if report.scenarios:
        console.print(render_table(report))
    sla = report.services_sla
    if sla is not None and sla.error:
        console.print(f"[red]  {SLA_GROUP} could not run: {sla.error}[/red]")
    elif sla is not None:
        console.print(render_sla_table(sla))
        for r in sla.routes:
            console.print(f"  {r.service}: {r.verdict}")
    if report.data is not None:
        print_data(report.data)
    for line in goal_lines(report):
        console.print("  " + line)
    for s in report.skipped:
        console.print(f"  skipped {s.name}: {s.reason}")
    for w in report.checks.get("warnings", []) or []:  # type: ignore[union-attr]
        console.print(f"[yellow]  warning: {w}[/yellow]")
    errors = sum(r.errors for r in report.scenarios)
    if errors:
        console.print(f"[red]  {errors} request errors during the run — see the errors column[/red]")
    prof = report.checks.get("profile")
    if isinstance(prof, dict):
        for name, p in prof.items():
            if not isinstance(p, dict) or "areas" not in p:
                console.print(f"  profile {name}: {p}")
                continue
            console.print(f"  {name} under py-spy: {p['cpu_us_per_req']:.0f} µs CPU/request; by area (self time):")
            for row in p["areas"][:8]:
                console.print(f"    {row['pct']:5.1f}%  {row['us_per_req']:6.1f} µs/req  {row['area']}")
    sp = sla.profile if sla is not None else None
    for name in ("service", "moto"):
        prof = (sp or {}).get(name)
        if isinstance(prof, dict) and "areas" in prof:
            console.print(f"  {name} ({sp['route_service']} route, {sp['load_rps_while_profiled']:,.0f} req/s through "  # type: ignore[index]
                          f"the proxy) under py-spy: {prof['cpu_us_per_req']:,.0f} µs CPU/request; samples by area "
                          f"(waiting threads included, idle loop {prof['idle_pct']}%):")
            for row in prof["areas"][:8]:
                console.print(f"    {row['pct']:5.1f}%  {row['area']}")
            for row in prof["top_inclusive"][:8]:
                console.print(f"    incl {row['pct']:5.1f}%  {row['frame']}")
        elif prof:
            console.print(f"  profile of {name}: {prof}")
    console.print(f"  written to {out} ({report.wall_time_s:g}s)")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _caused_by_interrupt(e: BaseException | None) -> bool:
    while e is not None:
        if isinstance(e, KeyboardInterrupt):
            return True
        e = e.__context__
    return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="~30-second version (one round, short runs)")
    g.add_argument("--smoke", action="store_true", help="tiny run for tests (seconds per scenario)")
    p.add_argument("--loader", choices=("auto", "wrk", "builtin"), default="auto",
                   help="auto: wrk when installed, else the built-in aiohttp loader")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    p.add_argument("--upstream-workers", type=int, default=1)
    p.add_argument("--profile", type=float, default=0.0, metavar="SECONDS",
                   help="also profile the 1-worker proxy with py-spy for this long")
    p.add_argument("--only", nargs="*", help=f"run only these scenarios (names from the table; {SLA_GROUP}: the "
                   "services' SLAs through the whole stack)")
    p.add_argument("--sla-duration", type=float, default=10.0, metavar="SECONDS",
                   help=f"{SLA_GROUP}: load per route through the proxy, and again straight at the service")
    p.add_argument("--sla-profile", type=float, default=8.0, metavar="SECONDS",
                   help=f"{SLA_GROUP}: py-spy the slowest route's service for this long (0: off)")
    p.add_argument("--data-sizes", type=int, nargs="+", default=[10_000, 100_000], metavar="N",
                   help=f"{DATA_GROUP}: legacy rows per size (backfill and verify items/s, peak RSS)")
    p.add_argument("--data-segments", type=int, default=1, help=f"{DATA_GROUP}: parallel scan segments")
    p.add_argument("--data-write-mode", choices=("threads", "transact"), default="threads")
    p.add_argument("--data-dynamodb", nargs="+", choices=("moto", "dynalite"), default=["moto", "dynalite"],
                   help=f"{DATA_GROUP}: DynamoDB engines, in turn (ratio dynalite/moto when both ran)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir with process logs")
    p.add_argument("--strict", action="store_true", help="exit 1 when a binding target is missed")
    args = p.parse_args(argv)
    mode = MODES["quick" if args.quick else "smoke" if args.smoke else "full"]
    # SIGTERM (e.g. from a CI timeout) unwinds like Ctrl-C, so every child is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        loader = pick_loader(args.loader)
        report = run(mode, loader, out=args.out, upstream_workers=args.upstream_workers,
                     profile_s=args.profile, only=args.only, keep=args.keep, sla_duration_s=args.sla_duration,
                     sla_profile_s=args.sla_profile,
                     data_args=data_bench.parser().parse_args(
                         ["--sizes", *map(str, args.data_sizes), "--segments", str(args.data_segments),
                          "--write-mode", args.data_write_mode, "--dynamodb", *args.data_dynamodb]))
    except (BenchError, StartError) as e:
        console.print(f"[red]bench failed:[/red] {e}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: all started processes were stopped[/yellow]")
        return 130
    except RuntimeError as e:
        # A signal landing inside uvloop's start leaves its loop "running": closing it then raises
        # RuntimeError over the KeyboardInterrupt. Still an interrupt, and cleanup has run.
        if not _caused_by_interrupt(e):
            raise
        console.print("[yellow]interrupted: all started processes were stopped[/yellow]")
        return 130
    print_report(report, args.out)
    missed = [g for g in report.goals if g.binding and g.met is False]
    if report.services_sla is not None and report.services_sla.error:
        return 1
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
