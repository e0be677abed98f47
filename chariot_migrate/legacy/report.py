"""``POST /export/report``: a findings report over the account's risks, written to its files.

The real API queues a report job and the client polls it, then downloads ``job.config.output``.
Here the report is small and built inline, so the job row is written already passed (``JP``).
The rules (body, selection, rendering, output path, job row) are :mod:`chariot_migrate.model.report`,
shared with the reporting service.
"""

from __future__ import annotations

import uuid
from typing import Any

from chariot_migrate.model import report

from . import blobs, store
from .auth import Caller, secured
from .http import Request, bad_request, dispatch


def export_report(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    m = req.model(report.ReportBody, body)
    problem = report.status_filter_problem(m.status_filter)
    if problem:
        raise bad_request(problem)
    risks = report.select_risks(store.query_all(caller.username, "#risk#"), m.status_filter, m.risk_keys)
    job_id = (report.adopted_job_id(body) if caller.replay else None) or str(uuid.uuid4())
    path = report.output_path(m.config.title, job_id, m.export_format)
    data, ctype = report.render(m, risks)
    blobs.write(caller.username, path, data, caller.now, ctype)
    job = store.put(report.job_row(caller.username, job_id, m, path, len(risks), caller.now))
    return report.answer(job)


ROUTES = {("POST", "/export/report"): export_report}


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
