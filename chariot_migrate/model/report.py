"""``POST /export/report`` rules shared by legacy's report function and the reporting service.

The real API queues a report job; the client (``guard export report``) polls ``GET /my?key=<job
key>`` and downloads ``job.config.output``. The report is small, so both sides build it inline and
write the job row already passed (``JP``): the answer is ``{"key": "#job#<id>#system#report",
"job": {...}}``. Formats: ``pdf`` (default; a plain text PDF, 60 lines a page) and ``zip``
(report.md + risks.json). Everything here is pure: the callers read risks and write the blob, the
file row and the job row.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .plain import plain
from .status import job_status

STATES = frozenset("TOIRD")
JOB_PREFIX = "#job#"
JOB_SUFFIX = "#system#report"
CONTENT_TYPES = {"pdf": "application/pdf", "zip": "application/zip"}


class ReportConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    title: str = Field("Findings report", min_length=1, max_length=200)
    client_name: str = Field("", max_length=200)


class ReportBody(BaseModel):
    """The request body (the CLI also sends group_by, shared_output, report_date, …: kept, unused)."""

    model_config = ConfigDict(extra="allow")
    status_filter: list[str] = Field(default_factory=lambda: ["O", "T"])
    config: ReportConfig = Field(default_factory=ReportConfig)
    export_format: Literal["pdf", "zip"] = "pdf"
    risk_keys: list[str] | None = None
    customer_email: str = ""


def status_filter_problem(states: list[str]) -> str | None:
    """Why ``status_filter`` is refused (400), else None: entries are single risk states."""
    bad = [s for s in states if s not in STATES]
    return f"status_filter entries must be risk states {sorted(STATES)}; got {bad}" if bad else None


def select_risks(rows: list[dict[str, Any]], states: list[str], keys: list[str] | None) -> list[dict[str, Any]]:
    """Named risk keys win over the status filter (which matches the status's first letter)."""
    if keys:
        wanted = set(keys)
        return [r for r in rows if r["key"] in wanted]
    return [r for r in rows if str(r.get("status", ""))[:1] in states]


def markdown(title: str, client: str, risks: list[dict[str, Any]]) -> str:
    lines = [f"# {title}", "", f"Client: {client}" if client else "", f"Findings: {len(risks)}", ""]
    for r in sorted(risks, key=lambda r: (r.get("priority", 60), r["key"])):
        lines += [f"## {r.get('title') or r.get('name')} ({r.get('status')})", f"- key: {r['key']}",
                  f"- asset: {r.get('dns', '')}", ""]
    return "\n".join(lines)


def pdf_bytes(text: str) -> bytes:
    """A minimal valid PDF (Helvetica, 60 lines a page) — enough for a reader to open."""
    def esc(s: str) -> str:
        return s.encode("latin-1", "replace").decode("latin-1").replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    lines = text.splitlines() or [""]
    pages = [lines[i:i + 60] for i in range(0, len(lines), 60)]
    objs: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for page in pages:
        stream = "BT /F1 10 Tf 50 800 Td 12 TL " + " ".join(f"({esc(line)}) '" for line in page) + " ET"
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream".encode("latin-1"))
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {len(objs)} 0 R "
                    f"/Resources << /Font << /F1 3 0 R >> >> >>".encode())
        kids.append(f"{len(objs)} 0 R")
    objs[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.4\n")
    for i, body in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode())
    out.write("".join(f"{o:010d} 00000 n \n" for o in offsets).encode())
    out.write(f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def render(body: ReportBody, risks: list[dict[str, Any]]) -> tuple[bytes, str]:
    """(file content, content type) of the report over the already selected risks."""
    text = markdown(body.config.title, body.config.client_name, risks)
    if body.export_format == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("report.md", text)
            z.writestr("risks.json", json.dumps(plain(risks), default=str, indent=2))
        return buf.getvalue(), CONTENT_TYPES["zip"]
    return pdf_bytes(text), CONTENT_TYPES["pdf"]


def output_path(title: str, job_id: str, export_format: str) -> str:
    """Where the report lands in the account's files: ``home/reports/<title slug>-<id8>.<ext>``."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "report"
    return f"home/reports/{slug}-{job_id[:8]}.{export_format}"


def job_key(job_id: str) -> str:
    return f"{JOB_PREFIX}{job_id}{JOB_SUFFIX}"


def is_job_key(key: str) -> bool:
    """A report job's key ``#job#<id>#system#report`` (no '#' inside the id)."""
    job_id = key.removeprefix(JOB_PREFIX).removesuffix(JOB_SUFFIX)
    return key.startswith(JOB_PREFIX) and key.endswith(JOB_SUFFIX) and bool(job_id) and "#" not in job_id


def adopted_job_id(values: Mapping[str, Any] | None) -> str | None:
    """During a replay: the primary's job id (its ``id``, or the id inside its report job ``key``)."""
    if not values:
        return None
    if values.get("id") not in (None, ""):
        return str(values["id"])
    key = str(values.get("key") or "")
    return key.removeprefix(JOB_PREFIX).removesuffix(JOB_SUFFIX) if is_job_key(key) else None


def job_row(username: str, job_id: str, body: ReportBody, path: str, risk_count: int, now: str) -> dict[str, Any]:
    """The job row, already passed: the report was written before the answer."""
    return {"username": username, "key": job_key(job_id), "dns": path, "id": job_id,
            "source": f"report#{now}", "status": job_status("JP", now), "created": now, "updated": now,
            "started": now, "finished": now, "ttl": 0,
            "config": {"output": path, "format": body.export_format, "risks": str(risk_count),
                       "title": body.config.title}}


def answer(job: dict[str, Any]) -> dict[str, Any]:
    """What ``POST /export/report`` answers (the client reads ``key``, then polls the job)."""
    return {"key": job["key"], "job": job}
