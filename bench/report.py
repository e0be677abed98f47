"""Results of one benchmark run: the JSON document (bench/results/latest.json), the ratios against
the baselines of the same run, the verdicts on the issue's targets, and the printed table.

Everything here is pure over plain data; run.py does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, Field
from rich.table import Table

from .scenarios import GOALS, Goal, Scenario
from .services_sla import SlaReport
from .stats import LoadResult, median_round

SCHEMA_VERSION = 1


class ScenarioResult(BaseModel):
    name: str
    target: str
    workers: int
    connections: int
    purpose: str
    rps: float
    requests: int
    errors: int
    non2xx: int
    p50_us: int
    p95_us: int
    p99_us: int
    # Server-side CPU per request (all processes of the target, from /proc): steadier than req/s on a
    # shared machine. None when not measured (e.g. not Linux).
    cpu_us_per_req: float | None = None
    rps_rounds: list[float] = Field(default_factory=list)  # every round, to show the noise
    rounds: list[LoadResult] = Field(default_factory=list)


class SkippedScenario(BaseModel):
    name: str
    reason: str


class GoalResult(BaseModel):
    name: str
    description: str
    value: float | None
    threshold: float
    unit: str
    met: bool | None  # None: could not be computed (scenario missing)
    binding: bool
    notes: list[str] = Field(default_factory=list)


class Machine(BaseModel):
    cores: int
    cpu_model: str = ""
    platform: str = ""
    python: str = ""


class BenchReport(BaseModel):
    schema_version: int = SCHEMA_VERSION
    date: str
    git_commit: str
    git_dirty: bool
    machine: Machine
    mode: str
    loader: str
    settings: dict[str, float | int | str] = Field(default_factory=dict)
    scenarios: list[ScenarioResult]
    skipped: list[SkippedScenario] = Field(default_factory=list)
    ratios: dict[str, float] = Field(default_factory=dict)
    goals: list[GoalResult] = Field(default_factory=list)
    checks: dict[str, object] = Field(default_factory=dict)
    # The opt-in services-sla group (whole stack through the proxy); None when not run.
    services_sla: SlaReport | None = None
    # The opt-in data group (backfill/verify items/s and RSS per size, bench/data_bench.py).
    data: dict[str, object] | None = None
    wall_time_s: float = 0.0


def scenario_result(scenario: Scenario, rounds: list[LoadResult],
                    cpu_us_per_req: list[float] | None = None) -> ScenarioResult:
    """Collapse a scenario's rounds into the median-throughput round (its latencies stay with it);
    server CPU per request is the median over rounds."""
    chosen = median_round(rounds)
    cpu = sorted(cpu_us_per_req or [])
    return ScenarioResult(
        cpu_us_per_req=round(cpu[(len(cpu) - 1) // 2], 1) if cpu else None,
        name=scenario.name, target=scenario.target, workers=scenario.workers, connections=scenario.connections,
        purpose=scenario.purpose, rps=round(chosen.rps, 1), requests=chosen.requests,
        errors=sum(r.errors for r in rounds), non2xx=sum(r.non2xx for r in rounds),
        p50_us=chosen.p50_us, p95_us=chosen.p95_us, p99_us=chosen.p99_us,
        rps_rounds=[round(r.rps, 1) for r in rounds], rounds=list(rounds),
    )


def _rps_ratio(by: Mapping[str, ScenarioResult], a: str, b: str) -> float | None:
    if a in by and b in by and by[b].rps > 0:
        return by[a].rps / by[b].rps
    return None


def _cpu_ratio(by: Mapping[str, ScenarioResult], a: str, b: str) -> float | None:
    """b's CPU per request / a's: the throughput ratio a would reach if CPU were the only limit."""
    ca = by[a].cpu_us_per_req if a in by else None
    cb = by[b].cpu_us_per_req if b in by else None
    return cb / ca if ca and cb else None


def _added_p50_ms(by: Mapping[str, ScenarioResult], a: str, base: str) -> float | None:
    if a in by and base in by:
        return (by[a].p50_us - by[base].p50_us) / 1000
    return None


def compute_ratios(results: Iterable[ScenarioResult]) -> dict[str, float]:
    """Ratios against the baselines measured in the same run (missing scenarios are left out)."""
    by = {r.name: r for r in results}
    candidates = {
        "proxy_vs_bare_w1": _rps_ratio(by, "proxy-w1-c50", "bare-w1-c50"),
        "proxy_vs_bare_w2": _rps_ratio(by, "proxy-w2-c50", "bare-w2-c50"),
        "proxy_vs_direct_w1": _rps_ratio(by, "proxy-w1-c50", "direct-c50"),
        "bare_vs_direct_w1": _rps_ratio(by, "bare-w1-c50", "direct-c50"),
        "proxy_scaling_w2_vs_w1": _rps_ratio(by, "proxy-w2-c50", "proxy-w1-c50"),
        "bare_scaling_w2_vs_w1": _rps_ratio(by, "bare-w2-c50", "bare-w1-c50"),
        "proxy_vs_bare_cpu_w1": _cpu_ratio(by, "proxy-w1-c50", "bare-w1-c50"),
        "proxy_vs_bare_cpu_w2": _cpu_ratio(by, "proxy-w2-c50", "bare-w2-c50"),
        "shadow100_vs_proxy_w1": _rps_ratio(by, "proxy-shadow100-w1-c50", "proxy-w1-c50"),
        "dualwrite20_vs_proxy_w1": _rps_ratio(by, "proxy-dualwrite-20pct-writes-w1-c50", "proxy-w1-c50"),
        "proxy_added_p50_ms_c10": _added_p50_ms(by, "proxy-w1-c10", "direct-c10"),
        "proxy_added_p50_ms_c1": _added_p50_ms(by, "proxy-w1-c1", "direct-c1"),
        "bare_added_p50_ms_c10": _added_p50_ms(by, "bare-w1-c10", "direct-c10"),
        # Client choice: pyreqwest behind the same Transport interface; the baseline stays the aiohttp bare.
        "bare_reqwest_vs_bare_w1": _rps_ratio(by, "bare-reqwest-w1-c50", "bare-w1-c50"),
        "proxy_reqwest_vs_proxy_w1": _rps_ratio(by, "proxy-reqwest-w1-c50", "proxy-w1-c50"),
        "proxy_reqwest_vs_proxy_cpu_w1": _cpu_ratio(by, "proxy-reqwest-w1-c50", "proxy-w1-c50"),
        "proxy_reqwest_vs_bare_w1": _rps_ratio(by, "proxy-reqwest-w1-c50", "bare-w1-c50"),
        "proxy_reqwest_vs_bare_w2": _rps_ratio(by, "proxy-reqwest-w2-c50", "bare-w2-c50"),
        "proxy_reqwest_vs_bare_reqwest_w1": _rps_ratio(by, "proxy-reqwest-w1-c50", "bare-reqwest-w1-c50"),
        "bare_granian_reqwest_vs_bare_reqwest_w1": _rps_ratio(by, "bare-granian-reqwest-w1-c50", "bare-reqwest-w1-c50"),
        "bare_granian_reqwest_vs_bare_reqwest_cpu_w1": _cpu_ratio(by, "bare-granian-reqwest-w1-c50",
                                                                  "bare-reqwest-w1-c50"),
        # Server choice: the proxy under granian, against the same uvicorn bare forwarder as proxy-w*.
        "proxy_granian_vs_bare_w1": _rps_ratio(by, "proxy-granian-w1-c50", "bare-w1-c50"),
        "proxy_granian_vs_bare_w2": _rps_ratio(by, "proxy-granian-w2-c50", "bare-w2-c50"),
        "proxy_granian_vs_bare_cpu_w1": _cpu_ratio(by, "proxy-granian-w1-c50", "bare-w1-c50"),
        "proxy_granian_vs_proxy_w1": _rps_ratio(by, "proxy-granian-w1-c50", "proxy-w1-c50"),
        "proxy_granian_vs_proxy_cpu_w1": _cpu_ratio(by, "proxy-granian-w1-c50", "proxy-w1-c50"),
        "bare_granian_vs_bare_w1": _rps_ratio(by, "bare-granian-w1-c50", "bare-w1-c50"),
        "bare_granian_vs_bare_cpu_w1": _cpu_ratio(by, "bare-granian-w1-c50", "bare-w1-c50"),
        "bare_granian_rsgi_vs_bare_cpu_w1": _cpu_ratio(by, "bare-granian-rsgi-w1-c50", "bare-w1-c50"),
        "bare_granian_rsgi_vs_bare_granian_cpu_w1": _cpu_ratio(by, "bare-granian-rsgi-w1-c50", "bare-granian-w1-c50"),
    }
    return {k: round(v, 3) for k, v in candidates.items() if v is not None}


def judge(ratios: Mapping[str, float], goals: Iterable[Goal] = GOALS) -> list[GoalResult]:
    out = []
    for g in goals:
        value = ratios.get(g.name)
        out.append(GoalResult(name=g.name, description=g.description, value=value, threshold=g.threshold,
                              unit=g.unit, met=None if value is None else g.met(value), binding=g.binding,
                              notes=list(g.notes)))
    return out


def sla_goals(sla: SlaReport | None) -> list[GoalResult]:
    """The issue's SLA targets per route: req/s, p95 against the service's SLO, zero errors."""
    out: list[GoalResult] = []
    for r in (sla.routes if sla else []):
        out += [
            GoalResult(name=f"sla_{r.service}_rps", description=f"services-sla {r.service} ({r.route}) req/s through "
                       "the proxy", value=r.rps, threshold=r.target_rps, unit="req/s", met=r.rps_met, binding=True),
            GoalResult(name=f"sla_{r.service}_p95_ms", description=f"services-sla {r.service} p95 at that load",
                       value=r.p95_ms, threshold=r.slo_p95_ms, unit="ms", met=r.p95_met, binding=True),
            GoalResult(name=f"sla_{r.service}_errors", description=f"services-sla {r.service} errors (incl. non-2xx)",
                       value=float(r.errors), threshold=0, unit="errors", met=r.errors_met, binding=True),
        ]
    return out


def render_sla_table(sla: SlaReport) -> Table:
    t = Table(title=f"services-sla — through the proxy to the services on moto + Redis, {sla.connections} "
                    f"connections, {sla.duration_s:g} s per route")
    for col in ("service", "route", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "SLO p95", "verdict",
                "direct req/s", "direct p95", "CPU µs/req proxy / service / moto"):
        t.add_column(col, justify="left" if col in ("service", "route", "verdict") else "right")
    for r in sla.routes:
        cpu = r.cpu_us_per_req
        t.add_row(r.service, r.route, f"{r.rps:,.0f}", f"{r.p50_ms:,.1f}", f"{r.p95_ms:,.1f}", f"{r.p99_ms:,.1f}",
                  str(r.errors), f"{r.slo_p95_ms:g}", "met" if r.met else "MISSED",
                  f"{r.direct.rps:,.0f}" if r.direct else "—",
                  f"{r.direct.p95_us / 1000:,.1f}" if r.direct else "—",
                  " / ".join(f"{cpu.get(k, 0):,.0f}" for k in ("proxy", "service", "moto (up)")),
                  style=None if r.met else "red")
    return t


def _baseline_rps(by: Mapping[str, ScenarioResult], r: ScenarioResult) -> tuple[float | None, float | None]:
    """(ratio vs direct at the same connections, ratio vs bare with the same workers and connections)."""
    direct = by.get(f"direct-c{r.connections}")
    bare = by.get(f"bare-w{r.workers}-c{r.connections}")
    vs_direct = r.rps / direct.rps if direct and direct.rps and r.target != "direct" else None
    vs_bare = r.rps / bare.rps if bare and bare.rps and r.target == "proxy" else None
    return vs_direct, vs_bare


def render_table(report: BenchReport) -> Table:
    by = {r.name: r for r in report.scenarios}
    t = Table(title=f"chariot-migrate proxy benchmark — {report.mode}, loader {report.loader}, "
                    f"{report.machine.cores} cores, commit {report.git_commit[:10]}{'+dirty' if report.git_dirty else ''}")
    for col in ("scenario", "req/s", "vs direct", "vs bare", "p50 ms", "p95 ms", "p99 ms", "errors",
                "CPU µs/req"):
        t.add_column(col, justify="left" if col == "scenario" else "right")
    for r in report.scenarios:
        vs_direct, vs_bare = _baseline_rps(by, r)
        spread = f" (±{(max(r.rps_rounds) - min(r.rps_rounds)) / 2:.0f})" if len(r.rps_rounds) > 1 else ""
        t.add_row(r.name, f"{r.rps:,.0f}{spread}",
                  f"{vs_direct:.2f}" if vs_direct is not None else "—",
                  f"{vs_bare:.2f}" if vs_bare is not None else "—",
                  f"{r.p50_us / 1000:.2f}", f"{r.p95_us / 1000:.2f}", f"{r.p99_us / 1000:.2f}",
                  str(r.errors), f"{r.cpu_us_per_req:.0f}" if r.cpu_us_per_req is not None else "—",
                  style="red" if r.errors else None)
    return t


def goal_lines(report: BenchReport) -> list[str]:
    lines = []
    for g in report.goals:
        op = "≥" if g.unit in ("ratio", "req/s") else "≤"
        if g.value is None:
            verdict = "not measured"
        else:
            verdict = "met" if g.met else ("MISSED" if g.binding else "not reached (reported only)")
        suffix = "" if g.unit == "ratio" else f" {g.unit}"
        shown = "—" if g.value is None else (f"{g.value:.2f}" if g.unit in ("ratio", "ms") else f"{g.value:,.0f}") + \
            ("" if g.value is None else suffix)
        limit = f"{g.threshold:g}" + suffix
        note = f"  [{'; '.join(g.notes)}]" if g.notes and not g.met else ""
        lines.append(f"{g.description}: {shown} (target {op} {limit}) → {verdict}{note}")
    return lines
