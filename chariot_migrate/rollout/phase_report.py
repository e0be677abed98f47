"""Phase report: the evidence that a service's phase is done, for humans (Markdown / HTML).

Cost figures are estimates from *configured* prices (``plan.costs`` in routes.yaml) and the
measured request volume and latencies — no price is hard-coded as a claim about AWS today.
"""

from __future__ import annotations

import html
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..routes.models import RoutesFile
from .plan import Plan, step_label


class Prices(BaseModel):
    """Unit prices used for the estimate; override them in routes.yaml `plan.costs`."""

    model_config = ConfigDict(extra="forbid")

    lambda_per_million_requests: float = 0.20
    lambda_per_gb_second: float = 0.0000166667
    lambda_memory_gb: float = 0.5
    container_per_vcpu_hour: float = 0.04048
    container_per_gb_hour: float = 0.004445
    container_vcpu: float = 0.25
    container_memory_gb: float = 0.5
    container_replicas: int = Field(2, ge=1)


def estimate_monthly_cost(prices: Prices, requests_per_s: float, legacy_mean_ms: float | None) -> dict[str, float]:
    month_s = 30 * 86400
    reqs = requests_per_s * month_s
    dur_s = (legacy_mean_ms or 0) / 1000
    lam = reqs / 1e6 * prices.lambda_per_million_requests + reqs * dur_s * prices.lambda_memory_gb * prices.lambda_per_gb_second
    cont = prices.container_replicas * 730 * (prices.container_vcpu * prices.container_per_vcpu_hour
                                             + prices.container_memory_gb * prices.container_per_gb_hour)
    return {"requests_per_month": round(reqs), "lambda_usd": round(lam, 2), "containers_usd": round(cont, 2)}


def build_phase_report(ctl, cfg: RoutesFile, plan: Plan, service: str, *, since: str = "7d") -> dict[str, Any]:
    from ..shadow.report import build_report, parse_since
    from .operations import OperationError

    if service not in cfg.services:
        raise OperationError(f"unknown service {service!r}; routes.yaml knows: {', '.join(sorted(cfg.services))}")
    try:
        window_s = parse_since(since)
    except ValueError as e:
        raise OperationError(str(e)) from None
    now = time.time()
    state = ctl._state(service)
    steps = plan.steps_for(service)
    win = ctl.evidence.windows.query(service, now - window_s)
    sides = {}
    for side in ("legacy", "new"):
        s = win.get(side)
        sides[side] = {
            "requests": s.requests if s else 0, "errors": s.errors if s else 0,
            "error_rate": s.error_rate if s else None,
            "p50_ms": s.percentile_ms(0.5) if s else None, "p95_ms": s.percentile_ms(0.95) if s else None,
            "p99_ms": s.percentile_ms(0.99) if s else None,
        }
    shadow = None
    if ctl.evidence.diff_store is not None:
        rep = build_report(ctl.evidence.diff_store, service=service, since_s=window_s, ignores=ctl.evidence.ignores)
        svc = next((x for x in rep.services if x.service == service), None)
        if svc:
            shadow = {"pairs": svc.pairs, "exact_match_rate": svc.exact_match_rate,
                      "adjusted_match_rate": svc.adjusted_match_rate,
                      "routes": [{"route": r.route, "pairs": r.pairs, "adjusted_match_rate": r.adjusted_match_rate,
                                  "real_signatures": r.real_signatures} for r in svc.routes]}
    backlog = ctl.evidence.backlog(service) if ctl.evidence.backlog else None
    from .evidence import last_verify_clean

    total = sum(v["requests"] for v in sides.values())
    prices = Prices.model_validate((cfg.plan or {}).get("costs") or {})
    cost = estimate_monthly_cost(prices, total / window_s if window_s else 0, sides["legacy"]["p50_ms"])
    tick = ctl.evaluate(service)
    return {
        "service": service, "phase": cfg.services[service].phase, "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "window": since, "step": step_label(state, steps), "stage": state.stage, "percent": state.percent,
        "slo_p95_ms": cfg.services[service].slo.p95_ms, "sides": sides, "shadow": shadow,
        "dual_write": None if backlog is None else {"backlog": backlog[0], "dead_letters": backlog[1]},
        "verify_clean": last_verify_clean(service), "cost": cost, "prices": prices.model_dump(),
        "next": {"step": tick.target, "decision": tick.decision, "reason": tick.reason},
        "history": [{"at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(h.at)), "actor": h.actor,
                     "action": h.action, "change": h.summary(), "reason": h.reason}
                    for h in ctl.ops.history(service, 200)],
    }


def _v(x: Any, unit: str = "") -> str:
    if x is None:
        return "n/a"
    if unit == "%":
        return f"{x * 100:.2f}%"
    if isinstance(x, float):
        return f"{x:g}{unit}"
    return f"{x}{unit}"


def render_markdown(d: dict[str, Any]) -> str:
    out = [f"# Phase report: {d['service']} (phase {d['phase']})", "",
           f"Generated {d['generated_at']} over the last {d['window']}. Step **{d['step']}** "
           f"(stage {d['stage']}, {d['percent']:g}% of accounts on the new side). "
           f"Next: {d['next']['step'] or '-'} → **{d['next']['decision']}** ({d['next']['reason']}).", "",
           "## Latency and errors", "", "| side | requests | errors | error rate | p50 | p95 | p99 |",
           "|---|---|---|---|---|---|---|"]
    for side, s in d["sides"].items():
        out.append(f"| {side} | {s['requests']} | {s['errors']} | {_v(s['error_rate'], '%')} | {_v(s['p50_ms'], ' ms')} "
                   f"| {_v(s['p95_ms'], ' ms')} | {_v(s['p99_ms'], ' ms')} |")
    out += ["", f"SLO: p95 ≤ {d['slo_p95_ms']:g} ms.", "", "## Shadow comparison", ""]
    sh = d["shadow"]
    if sh:
        out.append(f"{sh['pairs']} pairs, exact match {_v(sh['exact_match_rate'], '%')}, "
                   f"noise-adjusted match {_v(sh['adjusted_match_rate'], '%')}.")
        out += ["", "| route | pairs | adjusted match | real signatures |", "|---|---|---|---|"]
        for r in sh["routes"]:
            out.append(f"| `{r['route']}` | {r['pairs']} | {_v(r['adjusted_match_rate'], '%')} | {r['real_signatures']} |")
    else:
        out.append("No shadow comparisons recorded.")
    dw = d["dual_write"]
    out += ["", "## Data", "", f"Dual-write backlog: {dw['backlog'] if dw else 'n/a'}, dead letters: "
            f"{dw['dead_letters'] if dw else 'n/a'}. Last `data verify`: "
            f"{ {True: 'clean', False: 'drift', None: 'not run'}[d['verify_clean']] }.", "",
            "## Estimated monthly cost", "",
            f"At the measured volume ({d['cost']['requests_per_month']:,} requests/month): Lambda ≈ "
            f"${d['cost']['lambda_usd']:,}, containers ≈ ${d['cost']['containers_usd']:,} "
            f"(prices from `plan.costs`: {', '.join(f'{k}={v}' for k, v in d['prices'].items())}).", "",
            "## Step history", "", "| when (UTC) | who | action | change | why |", "|---|---|---|---|---|"]
    for h in d["history"]:
        out.append(f"| {h['at']} | {h['actor']} | {h['action']} | {h['change']} | {h['reason'] or '-'} |")
    return "\n".join(out) + "\n"


def render_html(d: dict[str, Any]) -> str:
    """Self-contained HTML: the Markdown's content as tables, plus an inline SVG latency chart."""
    md = render_markdown(d)
    rows = []
    for line in md.splitlines():
        if line.startswith("# "):
            rows.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            rows.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("|---"):
            continue
        elif line.startswith("|"):
            cells = [html.escape(c.strip().strip("`")) for c in line.strip("|").split("|")]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        elif line.strip():
            rows.append(f"<p>{html.escape(line)}</p>")
    body, table = [], []
    for r in rows:
        if r.startswith("<tr>"):
            table.append(r)
            continue
        if table:
            body.append("<table>" + "".join(table) + "</table>")
            table = []
        body.append(r)
    if table:
        body.append("<table>" + "".join(table) + "</table>")
    bars = []
    vals = [(f"{side} p{q}", d["sides"][side][f"p{q}_ms"] or 0) for side in ("legacy", "new") for q in (50, 95, 99)]
    top = max([v for _, v in vals] + [d["slo_p95_ms"], 1])
    for i, (label, v) in enumerate(vals):
        w = 300 * v / top
        bars.append(f'<text x="0" y="{18 + i * 22}" font-size="12">{label}</text>'
                    f'<rect x="90" y="{6 + i * 22}" width="{w:.1f}" height="16" fill="{"#888" if "legacy" in label else "#2a7"}"/>'
                    f'<text x="{95 + w:.1f}" y="{18 + i * 22}" font-size="12">{v:g} ms</text>')
    slo_x = 90 + 300 * d["slo_p95_ms"] / top
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="460" height="{len(vals) * 22 + 12}">{"".join(bars)}'
           f'<line x1="{slo_x:.1f}" y1="0" x2="{slo_x:.1f}" y2="{len(vals) * 22 + 12}" stroke="red" stroke-dasharray="4"/></svg>')
    style = "body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}td{border:1px solid #ccc;padding:2px 6px}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Phase report {html.escape(d['service'])}</title>"
            f"<style>{style}</style></head><body>{body[0]}<h2>Latency (red: SLO p95)</h2>{svg}{''.join(body[1:])}</body></html>")
