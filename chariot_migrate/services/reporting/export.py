"""``POST /export/report``: a job that renders the account's risks into a file.

The job row (``#job#report#<id>#export``) goes JQ → JR → JP/JF like capability jobs; its
``config.output`` names the produced file (``home/reports/<slug>-<id8>.<ext>``, as legacy), downloadable with
``GET /file?name=…``. Formats: ``md`` (Markdown, Jinja2), ``json``, ``zip`` (both). PDF rendering
needs a browser engine we do not ship offline: asking for it is a 400 with the alternatives.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chariot_migrate.model.keys import file_key
from chariot_migrate.model.status import job_status

FORMATS = ("md", "json", "zip")


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status_filter: list[str] = Field(default_factory=lambda: ["O", "T"])
    config: dict[str, Any] = Field(default_factory=dict)
    export_format: str = "md"
    risk_keys: list[str] | None = None

    @field_validator("export_format")
    @classmethod
    def _fmt(cls, v: str) -> str:
        if v == "pdf":
            raise ValueError("pdf export is not available in this deployment; use md, json or zip")
        if v not in FORMATS:
            raise ValueError(f"export_format must be one of {', '.join(FORMATS)}, got {v!r}")
        return v

    @field_validator("status_filter")
    @classmethod
    def _states(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if not s or s[0] not in "TOIRD"]
        if bad:
            raise ValueError(f"status_filter entries must start with a risk state T/O/I/R/D, got {bad[0]!r}")
        return v


def select(risks: list[dict[str, Any]], req: ExportRequest) -> list[dict[str, Any]]:
    """Legacy's rule: named risk keys win over the status filter."""
    if req.risk_keys:
        wanted = set(req.risk_keys)
        return [r for r in risks if r["key"] in wanted]
    return [r for r in risks if any(str(r.get("status", "")).startswith(s) for s in req.status_filter)]


def markdown(title: str, client: str, risks: list[dict[str, Any]]) -> str:
    """The report text, line for line as the legacy report function writes it (pure)."""
    lines = [f"# {title}", "", f"Client: {client}" if client else "", f"Findings: {len(risks)}", ""]
    for r in sorted(risks, key=lambda r: (r.get("priority", 60), r["key"])):
        lines += [f"## {r.get('title') or r.get('name')} ({r.get('status')})", f"- key: {r['key']}",
                  f"- asset: {r.get('dns', '')}", ""]
    return "\n".join(lines)


def output_name(req: ExportRequest, report_id: str, ext: str) -> str:
    """Where the report lands: ``home/reports/<title slug>-<id8>.<ext>``, like legacy."""
    slug = re.sub(r"[^a-z0-9]+", "-", title_of(req).lower()).strip("-") or "report"
    return f"home/reports/{slug}-{report_id[:8]}.{ext}"


def title_of(req: ExportRequest) -> str:
    return str(req.config.get("title") or "Findings report")


def render(account: str, risks: list[dict[str, Any]], req: ExportRequest, now: str) -> tuple[bytes, str]:
    """(content, extension) of the report (pure)."""
    md = markdown(title_of(req), str(req.config.get("client_name") or ""), risks).encode()
    js = json.dumps(risks, default=str, indent=2).encode()
    if req.export_format == "md":
        return md, "md"
    if req.export_format == "json":
        return js, "json"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("report.md", md)
        z.writestr("risks.json", js)
    return buf.getvalue(), "zip"


def job_row(account: str, report_id: str, req: ExportRequest, now: str) -> dict[str, Any]:
    return {"username": account, "key": f"#job#report#{report_id}#export", "dns": "report",
            "source": f"export#{now}", "status": job_status("JQ", now), "created": now, "updated": now,
            "started": "", "finished": "", "ttl": 0, "capabilities": ["export"],
            "config": {"export_format": req.export_format, "status_filter": ",".join(req.status_filter),
                       **{str(k): str(v) for k, v in req.config.items()}}}


def file_row(account: str, name: str, size: int, now: str) -> dict[str, Any]:
    return {"username": account, "key": file_key(name), "name": name, "updated": now, "bytes": size}
