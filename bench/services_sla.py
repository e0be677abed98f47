"""The ``services-sla`` group: the services' SLAs end to end through the proxy (issue "Performance").

Starts the whole local stack (``chariot-migrate up``: moto server, legacy estate, the services with Redis as
event bus and cache, the proxy), shifts account, asset-discovery and risk-assessment to 100 % new, seeds a few
assets and risks through the API, then loads one read route per service through the proxy with a valid
bearer token (wrk + ``bench/wrk_sla.lua``) and judges it against 1000 req/s and the service's p95 SLO.
Each route is also loaded straight at its service (same token) so the proxy's share is visible, and the
CPU per request of the proxy, the service and moto (which runs inside the ``up`` process) is read from /proc.
Optionally py-spy samples the service of the slowest route.

Plain data and verdicts at the top (pure); processes at the bottom.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field

from .procs import Child, Children, group_cpu_seconds
from .stats import LoadResult

GROUP = "services-sla"
TARGET_RPS = 1000.0
CONNECTIONS = 50


@dataclass(frozen=True)
class SlaRoute:
    service: str
    method: str
    path_query: str  # below the API base (…/chariot)
    body: str | None
    p95_ms: float  # the service's SLO (routes.yaml `slo.p95_ms`, the design seed's numbers)


ROUTES: tuple[SlaRoute, ...] = (
    SlaRoute("account", "GET", "/my?key=%23account%23", None, 100.0),
    SlaRoute("asset-discovery", "POST", "/my", '{"node":{"labels":["Asset"]},"page":0,"limit":100}', 500.0),
    SlaRoute("risk-assessment", "POST", "/my", '{"node":{"labels":["Risk"]}}', 200.0),
)


class SlaResult(BaseModel):
    service: str
    route: str
    target_rps: float
    slo_p95_ms: float
    via_proxy: LoadResult
    direct: LoadResult | None = None  # the same request straight at the service
    # CPU µs per request during the proxied run, per process group: proxy, service, moto (`up` process).
    cpu_us_per_req: dict[str, float] = Field(default_factory=dict)
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    rps_met: bool
    p95_met: bool
    errors_met: bool
    met: bool
    verdict: str


class SlaReport(BaseModel):
    duration_s: float
    connections: int
    seeded: dict[str, int] = Field(default_factory=dict)
    routes: list[SlaResult] = Field(default_factory=list)
    profile: dict[str, Any] | None = None
    error: str | None = None  # the group could not run (stack did not start, …): never faked


def judge_route(route: SlaRoute, via_proxy: LoadResult, direct: LoadResult | None = None,
                cpu: dict[str, float] | None = None, target_rps: float = TARGET_RPS) -> SlaResult:
    """Verdict of one route against the issue: ≥ target req/s, p95 ≤ SLO, 0 errors (non-2xx counts)."""
    rps = via_proxy.rps
    p95 = via_proxy.p95_us / 1000
    rps_met = rps >= target_rps
    p95_met = p95 <= route.p95_ms
    errors_met = via_proxy.errors == 0 and via_proxy.requests > 0
    parts = [f"{rps:,.0f} req/s {'≥' if rps_met else '<'} {target_rps:,.0f}"
             + ("" if rps_met else f" ({rps / target_rps:.1%} of target"
                + (f", {target_rps / rps:.1f}× short)" if rps else ", no answers)")),
             f"p95 {p95:,.0f} ms {'≤' if p95_met else '>'} {route.p95_ms:,.0f} ms"
             + ("" if p95_met else f" ({p95 / route.p95_ms:.1f}× the SLO)"),
             f"{via_proxy.errors} errors"]
    met = rps_met and p95_met and errors_met
    return SlaResult(service=route.service, route=f"{route.method} /chariot{route.path_query}",
                     target_rps=target_rps, slo_p95_ms=route.p95_ms, via_proxy=via_proxy, direct=direct,
                     cpu_us_per_req=cpu or {}, rps=round(rps, 1), p50_ms=round(via_proxy.p50_us / 1000, 1),
                     p95_ms=round(p95, 1), p99_ms=round(via_proxy.p99_us / 1000, 1), errors=via_proxy.errors,
                     rps_met=rps_met, p95_met=p95_met, errors_met=errors_met, met=met,
                     verdict=("met: " if met else "missed: ") + "; ".join(parts))


# ---- processes ------------------------------------------------------------------------------------


class SlaError(RuntimeError):
    pass


def _read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        k, _, v = line.strip().removeprefix("export ").partition("=")
        if v:
            env[k] = v
    return env


def _pids_with(fragment: str) -> list[int]:
    """Pids whose command line contains ``fragment`` (the stack's own routes path makes it unique)."""
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if fragment in cmd:
                out.append(int(entry.name))
    return out


def wrk_sla(url: str, route: SlaRoute, token: str, duration_s: float, connections: int, root: Path) -> LoadResult:
    # The token travels in the environment: never on a command line (ps) or in a log.
    env = {**os.environ, "SLA_METHOD": route.method, "SLA_BODY": route.body or "", "SLA_TOKEN": token}
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "5s",
            "-s", str(root / "bench" / "wrk_sla.lua"), url]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=root, timeout=duration_s + 60)
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            result = LoadResult.model_validate_json(line)
            # wrk stops with up to `connections` requests still queued in the services and moto, which go
            # on serving them: let that backlog drain, or it slows the first seconds of the next run.
            time.sleep(min(6.0, result.p99_us / 1e6 + 0.5) if result.requests else 5.0)
            return result
    raise SlaError(f"wrk printed no result for {url} (exit {proc.returncode}): "
                   f"{(proc.stderr or proc.stdout).strip()[-300:]}")


def _token(api: str, key_id: str, secret: str) -> str:
    r = httpx.get(f"{api}/token", headers={"X-GUARD-API-KEY-ID": key_id, "X-GUARD-API-KEY-SECRET": secret},
                  timeout=30)
    if r.status_code != 200:
        raise SlaError(f"GET /token answered {r.status_code}: {r.text[:200]}")
    return str(r.json()["token"])


def seed(api: str, token: str, assets: int = 20, risks: int = 10, deadline_s: float = 60.0) -> dict[str, int]:
    """A few assets and risks through the proxy (new side). A risk needs its asset to be known to
    risk-assessment (event over Redis), so each risk is retried until it is accepted."""
    h = {"authorization": f"Bearer {token}"}
    done = {"assets": 0, "risks": 0}
    with httpx.Client(base_url=api, headers=h, timeout=30) as c:
        for i in range(assets):
            r = c.put("/asset", json={"group": "bench.example.com", "identifier": f"10.0.0.{i}"})
            if r.status_code != 200:
                raise SlaError(f"PUT /asset answered {r.status_code}: {r.text[:200]}")
            done["assets"] += 1
        end = time.monotonic() + deadline_s
        for i in range(risks):
            body = {"key": f"#asset#bench.example.com#10.0.0.{i}", "name": f"CVE-2024-{i:04d}", "status": "TH",
                    "comment": "bench"}
            while True:
                r = c.put("/risk", json=body)
                if r.status_code == 200:
                    done["risks"] += 1
                    break
                if time.monotonic() > end:
                    raise SlaError(f"PUT /risk still {r.status_code} after {deadline_s:g}s: {r.text[:200]}")
                time.sleep(0.2)
    return done


def _check(api: str, route: SlaRoute, token: str, expect: str | None) -> None:
    r = httpx.request(route.method, api + route.path_query, content=route.body,
                      headers={"authorization": f"Bearer {token}", "content-type": "application/json"}, timeout=30)
    side = r.headers.get("x-migrate-side")
    if r.status_code != 200 or side != "new":
        raise SlaError(f"{route.service}: {route.method} {route.path_query} answered {r.status_code} from side "
                       f"{side!r} (want 200 from new): {r.text[:200]}")
    if expect and expect not in r.text:
        raise SlaError(f"{route.service}: the answer does not contain the seeded data ({expect!r}): {r.text[:200]}")


def profile_processes(pids: dict[str, int], run_load: Any, seconds: float, workdir: Path) -> dict[str, Any]:
    """py-spy (250 Hz, non-blocking) on several processes at once while ``run_load()`` loads them.

    Shares are of all samples of all threads, waiting ones included (a thread blocked in a socket read
    is sampled too), so the µs/request split is an upper bound for waiting areas; the CPU per request
    itself is measured from /proc over the same window.
    """
    from .profile import summarise_collapsed

    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        return {"error": "py-spy is not installed (pip install py-spy)"}
    spies = {name: subprocess.Popen([pyspy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                                     "--rate", "250", "--format", "raw", "--output", str(workdir / f"{name}.collapsed"),
                                     "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for name, pid in pids.items()}
    time.sleep(0.5)
    cpu0 = {name: group_cpu_seconds(pid) for name, pid in pids.items()}
    load: LoadResult = run_load()
    out: dict[str, Any] = {"load_rps_while_profiled": round(load.rps, 1)}
    for name, pid in pids.items():
        cpu_us = (group_cpu_seconds(pid) - cpu0[name]) * 1e6 / max(1, load.requests)
        spy, raw = spies[name], workdir / f"{name}.collapsed"
        try:
            _, err = spy.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        if spy.returncode != 0 or not raw.exists():
            out[name] = {"error": f"py-spy failed (exit {spy.returncode}): {err.strip()[-300:]}"}
            continue
        summary = summarise_collapsed(raw.read_text().splitlines(), handler="run_endpoint_function (")
        summary["cpu_us_per_req"] = round(cpu_us, 1)
        for key in ("areas", "under_handler", "top_self"):
            for row in summary[key]:  # type: ignore[attr-defined]
                row["us_per_req"] = round(row["pct"] * cpu_us / 100, 1)
        out[name] = summary
    return out


def run_group(*, root: Path, cli: str, workdir: Path, duration_s: float, direct_s: float, profile_s: float,
              log: Any = print) -> SlaReport:
    """Start the stack, shift, seed, load, judge; every process started here is stopped on return."""
    report = SlaReport(duration_s=duration_s, connections=CONNECTIONS)
    state_dir = workdir / "state"
    state_dir.mkdir(parents=True)
    state_url = f"sqlite:///{state_dir / 'state.db'}"
    kids = Children(workdir)
    try:
        log("services-sla: starting the stack (chariot-migrate up: moto, legacy, services, Redis, proxy) …")
        t0 = time.monotonic()
        up = kids.launch("up", [cli, "up", "--routes", str(root / "routes.yaml"), "--state", state_url, "--port", "0",
                                "--admin-port", "0", "--free-ports", "--state-dir", str(state_dir)], cwd=workdir)
        info = _wait_ready(up, timeout=180)
        routes_file = state_dir / "routes.effective.yaml"
        api = f"http://127.0.0.1:{info['port']}/chariot"
        if "Redis Streams" not in up.stdout_path.read_text(errors="replace"):
            raise SlaError("the stack runs without Redis (no Redis answered at 127.0.0.1:6379): the SLA scenario "
                           "needs it as event bus and cache")
        log(f"  up after {time.monotonic() - t0:.0f}s; shifting account, asset-discovery, risk-assessment to 100 % …")
        for r in ROUTES:
            out = subprocess.run([cli, "shift", r.service, "100", "--force", "--reason", "bench", "--routes",
                                  str(routes_file), "--state", state_url], cwd=workdir, capture_output=True,
                                 text=True, timeout=120)
            if out.returncode != 0:
                raise SlaError(f"shift {r.service} 100 failed: {(out.stdout + out.stderr).strip()[-300:]}")
        demo = _read_env_file(Path(info["env_file"]))
        token = _token(api, demo["PRAETORIAN_CLI_API_KEY_ID"], demo["PRAETORIAN_CLI_API_KEY_SECRET"])
        report.seeded = seed(api, token)
        log(f"  seeded {report.seeded}")
        ports = {name.removeprefix("service-"): port for name, port in info["services"].items()}
        fragment = str(routes_file)
        proxy_pids = _pids_with(f" proxy --routes {fragment}")
        svc_pids = {r.service: _pids_with(f"service run {r.service} --routes {fragment}") for r in ROUTES}
        for r, expect in zip(ROUTES, (None, "10.0.0.1", "CVE-2024-0001"), strict=True):
            _check(api, r, token, expect)
        # Warm every route through the proxy (connection pools, lazy imports, the services' caches).
        for r in ROUTES:
            wrk_sla(api + r.path_query, r, token, min(2.0, duration_s), CONNECTIONS, root)
        for r in ROUTES:
            groups = {"proxy": proxy_pids, "service": svc_pids[r.service], "moto (up)": [up.pid]}
            cpu0 = {k: sum(group_cpu_seconds(p) for p in v) for k, v in groups.items()}
            via = wrk_sla(api + r.path_query, r, token, duration_s, CONNECTIONS, root)
            cpu = {k: round((sum(group_cpu_seconds(p) for p in v) - cpu0[k]) * 1e6 / max(1, via.requests), 1)
                   for k, v in groups.items()}
            direct = None
            if direct_s > 0:
                direct = wrk_sla(f"http://127.0.0.1:{ports[r.service]}{r.path_query}", r, token, direct_s,
                                 CONNECTIONS, root)
            res = judge_route(r, via, direct, cpu)
            report.routes.append(res)
            log(f"  {r.service:<16} {res.rps:>7,.0f} req/s  p50 {res.p50_ms:.0f} ms  p95 {res.p95_ms:.0f} ms  "
                f"p99 {res.p99_ms:.0f} ms  errors {res.errors}"
                + (f"  (direct to service: {direct.rps:,.0f} req/s, p95 {direct.p95_us / 1000:.0f} ms)" if direct
                   else ""))
        if profile_s > 0 and report.routes:
            worst = min(report.routes, key=lambda x: x.rps)
            route = next(r for r in ROUTES if r.service == worst.service)
            log(f"  profiling service {route.service} and moto (the `up` process) with py-spy for {profile_s:g}s "
                "under proxied load …")
            prof = profile_processes({"service": (svc_pids[route.service] or [0])[0], "moto": up.pid},
                                     lambda: wrk_sla(api + route.path_query, route, token, profile_s, CONNECTIONS,
                                                     root), profile_s, workdir)
            report.profile = {"route_service": route.service, **prof}
    finally:
        _stop_stack(kids, str(state_dir / "routes.effective.yaml"))
    return report


def _stop_stack(kids: Children, fragment: str, grace_s: float = 30.0) -> None:
    """Stop ``up`` (SIGINT: it stops its services and proxy, each in its own session), then whatever of
    this stack is still alive. ``up`` gets a long grace: services still serving a load backlog take a
    while, and a SIGKILLed ``up`` would orphan them."""
    for child in kids.started:
        child.terminate()
    deadline = time.monotonic() + grace_s
    for child in kids.started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.popen.wait(max(0.1, deadline - time.monotonic()))
    kids.stop_all(grace_s=1.0)
    left = _pids_with(fragment)
    for sig in (signal.SIGINT, signal.SIGKILL):
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        end = time.monotonic() + 5
        while (left := _pids_with(fragment)) and time.monotonic() < end:
            time.sleep(0.2)
        if not left:
            return


def _wait_ready(up: Child, timeout: float) -> dict[str, Any]:
    """``up`` prints console lines, then one JSON ``up.ready`` line with the ports."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in up.stdout_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    doc = json.loads(line)
                except ValueError:
                    continue
                if doc.get("event") == "up.ready":
                    up.info = doc
                    return doc
        if up.popen.poll() is not None:
            raise SlaError(f"chariot-migrate up exited with {up.popen.returncode}: {up.stderr_tail(8)}")
        time.sleep(0.2)
    raise SlaError(f"chariot-migrate up was not ready within {timeout:g}s: {up.stderr_tail(8)}")
