"""Phase report: the evidence that a service's phase is done, for humans (Markdown / HTML).

Cost figures are estimates from *configured* prices (``plan.costs`` in routes.yaml) and the
measured request volume and latencies — no price is hard-coded as a claim about AWS today.
"""

from __future__ import annotations

import math
import re
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


def first_request_at(windows: Any, service: str, since_ts: float, now: float) -> float | None:
    """When the window's first request was recorded (to the second within the store's per-second
    retention, to the minute before): a binary search over ``query``, which counts from a time on."""
    def count(t: float) -> int:
        return sum(s.requests for s in windows.query(service, t, now=now).values())

    total = count(since_ts)
    if not total:
        return None
    lo, hi = since_ts, now  # count(lo) == total; the first request is in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) / 2
        if count(mid) == total:
            lo = mid
        else:
            hi = mid
    return float(math.ceil(lo))  # rows are per whole second (or minute): the first one counted from lo


def shadow_latency(diff_store: Any, service: str, since_ts: float) -> dict[str, dict[str, Any]]:
    """p50/p95/p99 per side over every route of the service, from the shadow comparisons' latency
    histograms — the same histograms and percentile function as ``chariot-migrate report``."""
    from ..shadow.records import SIDES, percentile

    merged: dict[str, dict[int, int]] = {side: {} for side in SIDES}
    if diff_store is not None:
        for d in diff_store.load(service=service, since_ts=since_ts):
            for side, hist in d.latency.items():
                for idx, n in hist.items():
                    merged[side][idx] = merged[side].get(idx, 0) + n
    out = {}
    for side, hist in merged.items():
        q = {k: percentile(hist, v) for k, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
        out[side] = {"count": sum(hist.values()),
                     **{f"{k}_ms": round(v * 1000, 3) if v is not None else None for k, v in q.items()}}
    return out


def build_phase_report(ctl: Any, cfg: RoutesFile, plan: Plan, service: str, *, since: str = "7d") -> dict[str, Any]:
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
    windows = ctl.evidence.windows
    win = windows.query(service, now - window_s)
    lat = shadow_latency(ctl.evidence.diff_store, service, now - window_s)
    sides = {}
    for side in ("legacy", "new"):
        s = win.get(side)
        row = {"requests": s.requests if s else 0, "errors": s.errors if s else 0,
               "error_rate": s.error_rate if s else None, "latency_samples": lat[side]["count"],
               "p50_ms": lat[side]["p50_ms"], "p95_ms": lat[side]["p95_ms"], "p99_ms": lat[side]["p99_ms"]}
        sides[side] = row
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
    total = sum(v["requests"] for v in sides.values())
    first = first_request_at(windows, service, now - window_s, now) if total else None
    observed_s = max(1.0, now - first) if first is not None else 0.0
    prices = Prices.model_validate((cfg.plan or {}).get("costs") or {})
    # The legacy side's mean duration is not recorded; its median stands in for it (as before).
    cost: dict[str, Any] = estimate_monthly_cost(prices, total / observed_s if observed_s else 0, sides["legacy"]["p50_ms"])
    cost.update({"observed_requests": total, "observed_s": round(observed_s, 1),
                 "observed_from": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first)) if first else None,
                 "short_observation": bool(total) and observed_s < 86400})
    tick = ctl.evaluate(service)
    return {
        "service": service, "phase": cfg.services[service].phase, "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "window": since, "step": step_label(state, steps), "stage": state.stage, "percent": state.percent,
        "slo_p95_ms": cfg.services[service].slo.p95_ms, "sides": sides, "shadow": shadow,
        "dual_write": None if backlog is None else {"backlog": backlog[0], "dead_letters": backlog[1]},
        "verify_clean": ctl.evidence.verify_clean(service), "cost": cost, "prices": prices.model_dump(),
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


def duration_text(seconds: float) -> str:
    """``95`` → ``1 min 35 s``; ``90000`` → ``1 d 1 h``: the observed period in words."""
    s = int(round(seconds))
    parts: list[str] = []
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if s >= n or (unit == "s" and not parts):
            parts.append(f"{s // n} {unit}")
            s %= n
    return " ".join(parts[:2])


def cost_sentences(d: dict[str, Any]) -> list[str]:
    """The cost estimate stated with the period it rests on (plain text, no markup)."""
    c = d["cost"]
    containers = f"containers ≈ ${c['containers_usd']:,} a month ({d['prices']['container_replicas']} replicas, always on)"
    if not c.get("observed_requests"):
        return [f"No requests observed in the last {d['window']}: there is no volume to estimate Lambda's cost from; "
                f"{containers}."]
    out = [f"Observed: {c['observed_requests']:,} requests over {duration_text(c['observed_s'])} "
           f"(first at {c['observed_from']}, within the {d['window']} window).",
           f"At that average rate a 30-day month would see {c['requests_per_month']:,} requests: "
           f"Lambda ≈ ${c['lambda_usd']:,}, {containers}."]
    if c.get("short_observation"):
        out.append("Less than a day was observed, so daily and weekly peaks are not in this figure: "
                   "treat it as an order of magnitude, not a forecast.")
    return out


def _md(v: Any) -> str:
    """A Markdown table cell: ``|`` escaped, one line."""
    return str(v).replace("|", "\\|").replace("\n", " ")


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def _text(v: Any) -> str:
    """User text in a Markdown table cell, shown as written: ``**100**`` stays two stars, not bold."""
    return _MD_SPECIAL.sub(r"\\\1", str(v)).replace("\n", " ")


def _code(v: Any) -> str:
    """A Markdown code span that holds any text (a backtick inside gets a longer fence)."""
    text = _md(v)
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render_markdown(d: dict[str, Any]) -> str:
    out = [f"# Phase report: {d['service']} (phase {d['phase']})", "",
           f"Generated {d['generated_at']} over the last {d['window']}. Step **{d['step']}** "
           f"(stage {d['stage']}, {d['percent']:g}% of accounts on the new side). "
           f"Next: {d['next']['step'] or '-'} → **{d['next']['decision']}** ({d['next']['reason']}).", "",
           "## Latency and errors", "",
           "Requests and errors: the proxies' request windows. Latency: the shadow comparisons, "
           "computed like `chariot-migrate report`.", "",
           "| side | requests | errors | error rate | latency samples | p50 | p95 | p99 |",
           "|---|---|---|---|---|---|---|---|"]
    for side, s in d["sides"].items():
        out.append(f"| {side} | {s['requests']} | {s['errors']} | {_v(s['error_rate'], '%')} | {s['latency_samples']} "
                   f"| {_v(s['p50_ms'], ' ms')} | {_v(s['p95_ms'], ' ms')} | {_v(s['p99_ms'], ' ms')} |")
    out += ["", f"SLO: p95 ≤ {d['slo_p95_ms']:g} ms.", "", "## Shadow comparison", ""]
    sh = d["shadow"]
    if sh:
        out.append(f"{sh['pairs']} pairs, exact match {_v(sh['exact_match_rate'], '%')}, "
                   f"noise-adjusted match {_v(sh['adjusted_match_rate'], '%')}.")
        out += ["", "| route | pairs | adjusted match | real signatures |", "|---|---|---|---|"]
        for r in sh["routes"]:
            out.append(f"| {_code(r['route'])} | {r['pairs']} | {_v(r['adjusted_match_rate'], '%')} | {r['real_signatures']} |")
    else:
        out.append("No shadow comparisons recorded.")
    dw = d["dual_write"]
    out += ["", "## Data", "", f"Dual-write backlog: {dw['backlog'] if dw else 'n/a'}, dead letters: "
            f"{dw['dead_letters'] if dw else 'n/a'}. Last `data verify`: "
            f"{ {True: 'clean', False: 'drift', None: 'not run'}[d['verify_clean']] }.", "",
            "## Estimated monthly cost", "", " ".join(cost_sentences(d)), "",
            f"Prices from `plan.costs`: {', '.join(f'{k}={v}' for k, v in d['prices'].items())}.", "",
            "## Step history", "", "| when (UTC) | who | action | change | why |", "|---|---|---|---|---|"]
    for h in d["history"]:
        out.append("| " + " | ".join(_text(x) for x in (h["at"], h["actor"], h["action"], h["change"], h["reason"] or "-"))
                   + " |")
    return "\n".join(out) + "\n"


def _latency_bars(d: dict[str, Any]) -> dict[str, Any]:
    vals = [(f"{side} p{q}", d["sides"][side][f"p{q}_ms"]) for side in ("legacy", "new") for q in (50, 95, 99)]
    top = max([v for _, v in vals if v is not None] + [d["slo_p95_ms"], 1])
    bars = [{"label": label, "value": v, "y": 6 + i * 22, "width": 300 * (v or 0) / top,
             "colour": "#888" if label.startswith("legacy") else "#2a7"} for i, (label, v) in enumerate(vals)]
    return {"bars": bars, "height": len(vals) * 22 + 12, "slo_x": 90 + 300 * d["slo_p95_ms"] / top}


def render_html(d: dict[str, Any]) -> str:
    """Self-contained HTML from a Jinja2 template (autoescaped; nothing fetched), with an inline
    SVG latency chart. Built from the report's data, not from the Markdown."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("chariot_migrate.rollout", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["v"] = _v
    return env.get_template("phase_report.html.j2").render(d=d, chart=_latency_bars(d), cost=cost_sentences(d),
                                                           verify={True: "clean", False: "drift", None: "not run"})
