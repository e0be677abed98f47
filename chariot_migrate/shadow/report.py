"""Diff reports: per service and route, what differs, how often, whether it is noise.

``build_report`` is pure over what a store returns; renderers turn a ``Report`` into a terminal
table, JSON, Markdown, or one self-contained HTML page (inline CSS and SVG, opens offline).
"""

from __future__ import annotations

import html
import io
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from .ignores import IgnoreRule, active_ignores
from .noise import DEFAULT_MIN_SAMPLES, Classification, PathCounts, adjusted_match_rate, classify
from .records import SIDES, RouteData, percentile
from .store import DiffStore


class LatencyStats(BaseModel):
    count: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class SignatureReport(BaseModel):
    signature: str
    path: str
    kind: str
    value_class: str
    count: int = Field(..., description="A/B pairs showing this signature")
    share: float = Field(..., description="count / pairs compared")
    path_ab_rate: float = Field(..., description="share of A/B pairs differing at this path (any kind)")
    noise_rate: float | None = Field(..., description="share of A/A pairs differing at this path; None without A/A samples")
    classification: Classification
    ignored: bool = False
    ignore_reason: str | None = None
    first_seen: str | None = None
    last_seen: str | None = None
    example: dict[str, Any] | None = None


class TimelinePoint(BaseModel):
    minute: int
    pairs: int
    exact_match_rate: float | None
    adjusted_match_rate: float | None


class RouteReport(BaseModel):
    service: str
    route: str
    pairs: int
    exact_matches: int
    exact_match_rate: float | None
    adjusted_match_rate: float | None = Field(..., description="pairs whose differences are all noise or ignored")
    aa_pairs: int
    real_signatures: int = Field(..., description="signatures classified 'difference' and not ignored")
    latency: dict[str, LatencyStats]
    errors: dict[str, int]
    error_rate: dict[str, float | None]
    examples_dropped: int = 0
    signatures: list[SignatureReport] = Field(default_factory=list)
    more_signatures: int = 0
    timeline: list[TimelinePoint] = Field(default_factory=list)

    @property
    def adjusted_matches(self) -> int:
        return round((self.adjusted_match_rate or 0) * self.pairs)


class ServiceReport(BaseModel):
    service: str
    pairs: int
    exact_match_rate: float | None
    adjusted_match_rate: float | None
    routes: list[RouteReport]


class Report(BaseModel):
    generated_at: str
    since_s: float | None
    confidence: float
    min_samples: int
    services: list[ServiceReport]

    def route(self, service: str, route: str) -> RouteReport | None:
        for s in self.services:
            if s.service == service:
                for r in s.routes:
                    if r.route == route:
                        return r
        return None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> float:
    """``90s``, ``15m``, ``1h``, ``7d``, ``1w`` (or plain seconds) → seconds, for ``--since``."""
    t = text.strip().lower()
    try:
        if t and t[-1] in _UNITS:
            value = float(t[:-1]) * _UNITS[t[-1]]
        else:
            value = float(t)
    except ValueError:
        value = -1
    if value <= 0:
        raise ValueError(f"--since {text!r}: use a positive duration like 90s, 15m, 1h or 7d")
    return value


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rate(n: int, total: int) -> float | None:
    return n / total if total else None


def route_report(
    d: RouteData,
    *,
    ignores: dict[str, IgnoreRule] | None = None,
    confidence: float = 0.95,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    top: int = 20,
) -> RouteReport:
    ignores = ignores or {}
    classes: dict[str, Classification] = {}
    for path in set(d.ab_paths) | set(d.aa_paths):
        counts = PathCounts(d.ab_paths.get(path, 0), d.pairs, d.aa_paths.get(path, 0), d.aa_pairs)
        classes[path] = classify(counts, confidence=confidence, min_samples=min_samples)
    forgiven: set[str] = set()
    sig_reports = []
    for sig, n in d.signatures.items():
        meta = d.sig_meta.get(sig)
        path = meta.path if meta else "?"
        cls = classes.get(path, "insufficient")
        rule = ignores.get(sig)
        if cls == "noise" or rule is not None:
            forgiven.add(sig)
        examples = d.examples.get(sig) or []
        sig_reports.append(
            SignatureReport(
                signature=sig,
                path=path,
                kind=meta.kind if meta else "?",
                value_class=meta.value_class if meta else "?",
                count=n,
                share=n / d.pairs if d.pairs else 0.0,
                path_ab_rate=d.ab_paths.get(path, 0) / d.pairs if d.pairs else 0.0,
                noise_rate=_rate(d.aa_paths.get(path, 0), d.aa_pairs),
                classification=cls,
                ignored=rule is not None,
                ignore_reason=rule.reason if rule else None,
                first_seen=_iso(d.sig_first_seen.get(sig)),
                last_seen=_iso(d.sig_last_seen[sig] + 59 if sig in d.sig_last_seen else None),
                example=examples[0] if examples else None,
            )
        )
    order = {"difference": 0, "insufficient": 1, "noise": 2}
    sig_reports.sort(key=lambda s: (s.ignored, order[s.classification], -s.count, s.signature))
    timeline = [
        TimelinePoint(
            minute=m,
            pairs=p.pairs,
            exact_match_rate=_rate(p.exact, p.pairs),
            adjusted_match_rate=adjusted_match_rate(p.sets, p.pairs, forgiven),
        )
        for m, p in sorted(d.timeline.items())
    ]
    latency = {}
    for side in SIDES:
        hist = d.latency.get(side, {})
        count = sum(hist.values())
        q = {k: percentile(hist, v) for k, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}
        latency[side] = LatencyStats(count=count, **{f"{k}_ms": (round(v * 1000, 3) if v is not None else None) for k, v in q.items()})
    real = sum(1 for s in sig_reports if s.classification == "difference" and not s.ignored)
    return RouteReport(
        service=d.service,
        route=d.route,
        pairs=d.pairs,
        exact_matches=d.exact,
        exact_match_rate=_rate(d.exact, d.pairs),
        adjusted_match_rate=adjusted_match_rate(d.diff_sets, d.pairs, forgiven),
        aa_pairs=d.aa_pairs,
        real_signatures=real,
        latency=latency,
        errors=dict(d.errors),
        error_rate={s: _rate(d.errors.get(s, 0), d.requests.get(s, 0)) for s in SIDES},
        examples_dropped=d.examples_dropped,
        signatures=sig_reports[:top],
        more_signatures=max(0, len(sig_reports) - top),
        timeline=timeline,
    )


def build_report(
    store: DiffStore,
    *,
    service: str | None = None,
    route: str | None = None,
    since_s: float | None = None,
    ignores: Sequence[IgnoreRule] | None = None,
    confidence: float = 0.95,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    top: int = 20,
    now: float | None = None,
) -> Report:
    now = time.time() if now is None else now
    since_ts = now - since_s if since_s is not None else None
    active = active_ignores(ignores or [], datetime.fromtimestamp(now, UTC))
    by_service: dict[str, list[RouteReport]] = {}
    for d in store.load(service=service, route=route, since_ts=since_ts):
        rr = route_report(d, ignores=active, confidence=confidence, min_samples=min_samples, top=top)
        by_service.setdefault(d.service, []).append(rr)
    services = []
    for name, routes in sorted(by_service.items()):
        pairs = sum(r.pairs for r in routes)
        exact = sum(r.exact_matches for r in routes)
        adjusted = sum((r.adjusted_match_rate or 0) * r.pairs for r in routes)
        services.append(
            ServiceReport(
                service=name,
                pairs=pairs,
                exact_match_rate=_rate(exact, pairs),
                adjusted_match_rate=adjusted / pairs if pairs else None,
                routes=routes,
            )
        )
    return Report(
        generated_at=_iso(now) or "", since_s=since_s, confidence=confidence, min_samples=min_samples, services=services
    )


# --- renderers ------------------------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.2f}%"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def _lat(r: RouteReport, side: str) -> str:
    s = r.latency[side]
    return f"{_ms(s.p50_ms)}/{_ms(s.p95_ms)}/{_ms(s.p99_ms)}"


def _sig_label(s: SignatureReport) -> str:
    return "ignored" if s.ignored else s.classification


def render_json(report: Report) -> str:
    return report.model_dump_json(indent=2)


def render_table(report: Report, *, width: int = 160) -> str:
    from rich.console import Console
    from rich.table import Table

    from ..markup import esc

    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    if not report.services:
        console.print("No shadow comparisons recorded in this window.")
        return buf.getvalue()
    for svc in report.services:
        t = Table(title=f"{esc(svc.service)}: {svc.pairs} pairs, exact {_pct(svc.exact_match_rate)}, adjusted {_pct(svc.adjusted_match_rate)}")
        for col in ("route", "pairs", "exact", "adjusted", "A/A", "real sigs", "p50/p95/p99 legacy ms", "p50/p95/p99 new ms", "err legacy", "err new"):
            t.add_column(col, overflow="fold")
        for r in svc.routes:
            t.add_row(*map(esc, (
                r.route, r.pairs, _pct(r.exact_match_rate), _pct(r.adjusted_match_rate), r.aa_pairs,
                r.real_signatures, _lat(r, "legacy"), _lat(r, "new"), _pct(r.error_rate["legacy"]), _pct(r.error_rate["new"]),
            )))
        console.print(t)
        for r in svc.routes:
            if not r.signatures:
                continue
            st = Table(title=f"{esc(r.route)}: top signatures")
            for col in ("signature", "path", "kind", "class", "count", "share", "noise rate", "verdict"):
                st.add_column(col, overflow="fold")
            for s in r.signatures:
                st.add_row(*map(esc, (s.signature, s.path, s.kind, s.value_class, s.count, _pct(s.share), _pct(s.noise_rate),
                                     _sig_label(s))))
            console.print(st)
    return buf.getvalue()


def _md_cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    out = [f"# Shadow diff report\n\nGenerated {report.generated_at}"
           + (f", window {report.since_s:.0f}s" if report.since_s else "")
           + f"; confidence {report.confidence}, min samples {report.min_samples}.\n"]
    if not report.services:
        out.append("No shadow comparisons recorded in this window.\n")
    for svc in report.services:
        out.append(f"## {svc.service}\n\n{svc.pairs} pairs · exact match {_pct(svc.exact_match_rate)} · "
                   f"noise-adjusted match {_pct(svc.adjusted_match_rate)}\n")
        out.append("| route | pairs | exact | adjusted | A/A | real sigs | legacy p50/p95/p99 ms | new p50/p95/p99 ms | err legacy | err new |")
        out.append("|---|---:|---:|---:|---:|---:|---|---|---:|---:|")
        for r in svc.routes:
            out.append("| " + " | ".join(_md_cell(x) for x in (
                r.route, r.pairs, _pct(r.exact_match_rate), _pct(r.adjusted_match_rate), r.aa_pairs, r.real_signatures,
                _lat(r, "legacy"), _lat(r, "new"), _pct(r.error_rate["legacy"]), _pct(r.error_rate["new"]))) + " |")
        out.append("")
        for r in svc.routes:
            if not r.signatures:
                continue
            out.append(f"### {_md_cell(r.route)}\n")
            out.append("| signature | path | kind | class | count | share | noise rate | verdict |")
            out.append("|---|---|---|---|---:|---:|---:|---|")
            for s in r.signatures:
                verdict = _sig_label(s) + (f" ({s.ignore_reason})" if s.ignore_reason else "")
                out.append("| " + " | ".join(_md_cell(x) for x in (
                    f"`{s.signature}`", f"`{s.path}`", s.kind, s.value_class, s.count, _pct(s.share), _pct(s.noise_rate), verdict)) + " |")
            for s in r.signatures:
                if s.example and s.classification != "noise" and not s.ignored:
                    ex = s.example
                    out.append(f"\n<details><summary>example of <code>{s.signature}</code> at <code>{html.escape(s.path)}</code></summary>\n")
                    out.append("```json\n" + json.dumps(ex, indent=2, ensure_ascii=False) + "\n```\n</details>")
            if r.more_signatures:
                out.append(f"\n…and {r.more_signatures} more signatures.")
            out.append("")
    return "\n".join(out) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d2330;background:#fff}
h1{font-size:1.5rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}h3{font-size:1.05rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #dde;padding:.25rem .5rem;text-align:left;vertical-align:top}th{background:#f3f4f8}
td.n{text-align:right;font-variant-numeric:tabular-nums}code{font-size:.85em}
.difference{color:#b00020;font-weight:600}.noise{color:#777}.insufficient{color:#a66b00}.ignored{color:#777;text-decoration:line-through}
.charts{display:flex;gap:1.5rem;flex-wrap:wrap}figure{margin:0}figcaption{font-size:.8rem;color:#555}
pre{background:#f6f8fa;padding:.5rem;overflow:auto;max-height:20rem;font-size:.8rem}
"""


def _svg_timeline(r: RouteReport, w: int = 420, h: int = 160) -> str:
    pts = [p for p in r.timeline if p.pairs]
    pad = 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">',
             f'<title>match rate over time: {html.escape(r.route)}</title>',
             f'<rect x="{pad}" y="5" width="{w - pad - 5}" height="{h - pad - 5}" fill="#fafbfd" stroke="#ccd"/>']
    for frac, label in ((0, "0%"), (0.5, "50%"), (1, "100%")):
        y = 5 + (h - pad - 5) * (1 - frac)
        parts.append(f'<text x="2" y="{y + 4:.1f}" font-size="9" fill="#555">{label}</text>')
    if pts:
        t0, t1 = pts[0].minute, max(pts[-1].minute, pts[0].minute + 60)

        def xy(m: int, v: float) -> str:
            x = pad + (w - pad - 5) * (m - t0) / (t1 - t0)
            y = 5 + (h - pad - 5) * (1 - v)
            return f"{x:.1f},{y:.1f}"

        for attr, colour in (("exact_match_rate", "#7a8cff"), ("adjusted_match_rate", "#1a7f37")):
            line = " ".join(xy(p.minute, getattr(p, attr) or 0) for p in pts)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{line}"/>')
            for p in pts:
                cx, cy = xy(p.minute, getattr(p, attr) or 0).split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
        parts.append(f'<text x="{pad}" y="{h - 8}" font-size="9" fill="#555">{_iso(t0)}</text>')
    parts.append(f'<text x="{w - 150}" y="{h - 8}" font-size="9" fill="#7a8cff">exact</text>'
                 f'<text x="{w - 110}" y="{h - 8}" font-size="9" fill="#1a7f37">noise-adjusted</text></svg>')
    return "".join(parts)


def _svg_latency(r: RouteReport, w: int = 320, h: int = 160) -> str:
    vals = [(q, side, getattr(r.latency[side], f"{q}_ms")) for q in ("p50", "p95", "p99") for side in SIDES]
    top = max([v for _, _, v in vals if v is not None] + [1.0])
    pad, base = 30, h - 25
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">',
             f'<title>latency legacy vs new: {html.escape(r.route)}</title>']
    bw = (w - pad) / (len(vals) + 3)
    for i, (q, side, v) in enumerate(vals):
        x = pad + i * bw + (i // 2) * bw
        bh = 0 if v is None else (base - 15) * v / top
        colour = "#8c96a8" if side == "legacy" else "#2f6fde"
        parts.append(f'<rect x="{x:.1f}" y="{base - bh:.1f}" width="{bw * 0.9:.1f}" height="{bh:.1f}" fill="{colour}"/>')
        parts.append(f'<text x="{x:.1f}" y="{base - bh - 2:.1f}" font-size="8" fill="#333">{_ms(v)}</text>')
        if side == "legacy":
            parts.append(f'<text x="{x:.1f}" y="{base + 12}" font-size="9" fill="#555">{q}</text>')
    parts.append(f'<line x1="{pad}" y1="{base}" x2="{w}" y2="{base}" stroke="#999"/>')
    parts.append(f'<text x="{pad}" y="{h - 2}" font-size="9" fill="#8c96a8">legacy</text>'
                 f'<text x="{pad + 45}" y="{h - 2}" font-size="9" fill="#2f6fde">new</text>'
                 f'<text x="{pad + 75}" y="{h - 2}" font-size="9" fill="#555">(ms)</text></svg>')
    return "".join(parts)


def render_html(report: Report) -> str:
    e = html.escape
    out = ["<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           "<title>chariot-migrate shadow diff report</title>", f"<style>{_CSS}</style></head><body>",
           f"<h1>Shadow diff report</h1><p>Generated {e(report.generated_at)}"
           + (f", window {report.since_s:.0f}s" if report.since_s else "")
           + f"; confidence {report.confidence}, min samples {report.min_samples}.</p>"]
    if not report.services:
        out.append("<p>No shadow comparisons recorded in this window.</p>")
    for svc in report.services:
        out.append(f"<h2>{e(svc.service)}</h2><p>{svc.pairs} pairs · exact match {_pct(svc.exact_match_rate)} · "
                   f"noise-adjusted match <b>{_pct(svc.adjusted_match_rate)}</b></p>")
        out.append("<table><tr><th>route</th><th>pairs</th><th>exact</th><th>adjusted</th><th>A/A</th><th>real sigs</th>"
                   "<th>legacy p50/p95/p99 ms</th><th>new p50/p95/p99 ms</th><th>err legacy</th><th>err new</th></tr>")
        for r in svc.routes:
            out.append(f"<tr><td><code>{e(r.route)}</code></td><td class=n>{r.pairs}</td><td class=n>{_pct(r.exact_match_rate)}</td>"
                       f"<td class=n>{_pct(r.adjusted_match_rate)}</td><td class=n>{r.aa_pairs}</td><td class=n>{r.real_signatures}</td>"
                       f"<td>{_lat(r, 'legacy')}</td><td>{_lat(r, 'new')}</td><td class=n>{_pct(r.error_rate['legacy'])}</td>"
                       f"<td class=n>{_pct(r.error_rate['new'])}</td></tr>")
        out.append("</table>")
        for r in svc.routes:
            out.append(f"<h3><code>{e(r.route)}</code></h3><div class=charts>"
                       f"<figure>{_svg_timeline(r)}<figcaption>match rate per minute</figcaption></figure>"
                       f"<figure>{_svg_latency(r)}<figcaption>latency legacy vs new</figcaption></figure></div>")
            if r.signatures:
                out.append("<table><tr><th>signature</th><th>path</th><th>kind</th><th>class</th><th>count</th><th>share</th>"
                           "<th>noise rate</th><th>verdict</th><th>example</th></tr>")
                for s in r.signatures:
                    label = _sig_label(s)
                    reason = f" — {e(s.ignore_reason)}" if s.ignore_reason else ""
                    ex = (f"<details><summary>show</summary><pre>{e(json.dumps(s.example, indent=2, ensure_ascii=False))}</pre></details>"
                          if s.example else "")
                    out.append(f"<tr><td><code>{e(s.signature)}</code></td><td><code>{e(s.path)}</code></td><td>{e(s.kind)}</td>"
                               f"<td>{e(s.value_class)}</td><td class=n>{s.count}</td><td class=n>{_pct(s.share)}</td>"
                               f"<td class=n>{_pct(s.noise_rate)}</td><td class=\"{label}\">{label}{reason}</td><td>{ex}</td></tr>")
                out.append("</table>")
                if r.more_signatures:
                    out.append(f"<p>…and {r.more_signatures} more signatures.</p>")
    out.append("</body></html>")
    return "\n".join(out)
