"""``POST /export/report``: a job that renders the account's risks into a file.

The job row (``#job#report#<id>#export``) goes JQ → JR → JP/JF like capability jobs; its
``config.output`` names the produced file (``exports/report-<id>.<ext>``), downloadable with
``GET /file?name=…``. Formats: ``md`` (Markdown, Jinja2), ``json``, ``zip`` (both). PDF rendering
needs a browser engine we do not ship offline: asking for it is a 400 with the alternatives.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, field_validator

from chariot_migrate.model.keys import file_key
from chariot_migrate.model.status import job_status

FORMATS = ("md", "json", "zip")
TEMPLATE = """# {{ config.get('title') or 'Risk report' }}
{% if config.get('client_name') %}Client: {{ config.client_name }}
{% endif %}Generated: {{ generated }} · Account: {{ account }} · Statuses: {{ statuses | join(', ') }}

| Risk | Status | Asset |
|---|---|---|
{% for r in risks %}| {{ r.name }} | {{ r.status }} | {{ r.dns }} |
{% endfor %}
{{ risks | length }} risk(s).
"""
_env = SandboxedEnvironment(autoescape=False)


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
    chosen = [r for r in risks if any(str(r.get("status", "")).startswith(s) for s in req.status_filter)]
    if req.risk_keys is not None:
        wanted = set(req.risk_keys)
        chosen = [r for r in chosen if r["key"] in wanted]
    return sorted(chosen, key=lambda r: r["key"])


def render(account: str, risks: list[dict[str, Any]], req: ExportRequest, now: str) -> tuple[bytes, str]:
    """(content, extension) of the report (pure)."""
    rows = [{"key": r["key"], "name": r.get("name") or r["key"].split("#")[-1], "status": r.get("status", ""),
             "dns": r.get("dns") or r["key"].split("#")[2]} for r in risks]
    md = _env.from_string(TEMPLATE).render(config=req.config, generated=now, account=account,
                                           statuses=req.status_filter, risks=rows).encode()
    js = json.dumps({"account": account, "generated": now, "risks": rows}, indent=2).encode()
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
