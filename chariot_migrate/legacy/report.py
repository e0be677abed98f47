"""``POST /export/report``: a findings report over the account's risks, written to its files.

The real API queues a report job and the client polls it, then downloads ``job.config.output``.
Here the report is small and built inline, so the job row is written already passed (``JP``).
Formats: ``zip`` (report.md + risks.json) and ``pdf`` (a plain one-page-per-60-lines text PDF).
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import blobs, store
from .auth import Caller, secured
from .http import Request, bad_request, dispatch

STATES = frozenset("TOIRD")


class ReportConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    title: str = Field("Findings report", min_length=1, max_length=200)
    client_name: str = Field("", max_length=200)


class ReportBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    status_filter: list[str] = Field(default_factory=lambda: ["O", "T"])
    config: ReportConfig = Field(default_factory=ReportConfig)
    export_format: Literal["pdf", "zip"] = "pdf"
    risk_keys: list[str] | None = None
    customer_email: str = ""


def select_risks(rows: list[dict[str, Any]], states: list[str], keys: list[str] | None) -> list[dict[str, Any]]:
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


def export_report(req: Request, caller: Caller) -> Any:
    m = req.model(ReportBody)
    bad = [s for s in m.status_filter if s not in STATES]
    if bad:
        raise bad_request(f"status_filter entries must be risk states {sorted(STATES)}; got {bad}")
    risks = select_risks(store.query_all(caller.username, "#risk#"), m.status_filter, m.risk_keys)
    text = markdown(m.config.title, m.config.client_name, risks)
    slug = re.sub(r"[^a-z0-9]+", "-", m.config.title.lower()).strip("-") or "report"
    job_id = str(caller.adopt(req.body_dict(), "id", str(uuid.uuid4())))
    path = f"home/reports/{slug}-{job_id[:8]}.{m.export_format}"
    if m.export_format == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("report.md", text)
            z.writestr("risks.json", json.dumps(risks, default=str, indent=2))
        data, ctype = buf.getvalue(), "application/zip"
    else:
        data, ctype = pdf_bytes(text), "application/pdf"
    blobs.write(caller.username, path, data, caller.now, ctype)
    status = f"JP#{caller.now}"
    job = {"username": caller.username, "key": f"#job#{job_id}#system#report", "dns": path, "id": job_id,
           "source": f"report#{caller.now}", "status": status, "created": caller.now, "updated": caller.now,
           "started": caller.now, "finished": caller.now, "ttl": 0,
           "config": {"output": path, "format": m.export_format, "risks": str(len(risks)),
                      "title": m.config.title}}
    store.put(job)
    return {"key": job["key"], "job": job}


ROUTES = {("POST", "/export/report"): export_report}


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
