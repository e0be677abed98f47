"""A bounded, deterministic schemathesis run over every operation of one OpenAPI schema.

``fuzz(schema, headers_for=..., max_examples=...)`` draws ``max_examples`` cases per operation and
generation mode (schema-conforming and schema-violating) with hypothesis derandomized, sends each
one (in-process for ``from_asgi`` schemas), runs schemathesis' ``not_a_server_error`` check on
every answer, and collects every 5xx instead of stopping at the first, so one run lists them all.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.errors
from hypothesis import HealthCheck, Phase
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup

MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@dataclass
class FuzzReport:
    operations: list[str] = field(default_factory=list)
    examples: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    # (operation, request summary, status, response text) per 5xx
    server_errors: list[tuple[str, str, int, str]] = field(default_factory=list)
    # 4xx answers whose body does not say why (no JSON "message")
    silent_rejections: list[tuple[str, str, int, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.operations)} operations, {self.examples} examples, "
                f"statuses {dict(sorted(self.statuses.items()))}")

    def failures(self) -> str:
        lines = [f"{status} {op} {req} -> {text[:300]}" for op, req, status, text in self.server_errors]
        lines += [f"{status} without a reason: {op} {req} -> {text[:300]}"
                  for op, req, status, text in self.silent_rejections]
        return "\n".join(lines)


def describe_case(case: Case) -> str:
    parts = [case.formatted_path]
    if case.query:
        parts.append(f"query={case.query!r}")
    if case.headers:
        parts.append(f"headers={ {k: v for k, v in case.headers.items() if k.lower() != 'authorization'}!r}")
    if case.body is not None and not isinstance(case.body, type(None)):
        try:
            parts.append(f"body={json.dumps(case.body, default=repr)[:300]}")
        except (TypeError, ValueError):
            parts.append(f"body={case.body!r:.300}")
    return " ".join(parts)


def has_reason(text: str, keys: Sequence[str] = ("message",)) -> bool:
    """Does this error body say why (a non-empty string, or FastAPI's list of errors, under one of ``keys``)?"""
    try:
        body = json.loads(text)
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    reasons = [body.get(k) for k in keys]
    return any((isinstance(r, str) and r.strip()) or (isinstance(r, list) and r) for r in reasons)


def fuzz(
    schema: BaseSchema,
    *,
    headers_for: Callable[[APIOperation], dict[str, str]],
    max_examples: int,
    modes: Sequence[GenerationMode] = MODES,
    skip: Callable[[APIOperation], bool] = lambda op: False,
    variants_for: Callable[[APIOperation], Sequence[dict[str, Any]]] = lambda op: ({},),
    reason_keys: Sequence[str] = ("message",),
) -> FuzzReport:
    """``variants_for(op)``: extra ``as_strategy`` arguments per run of ``op`` (e.g. fixed, valid
    path parameters so the body is fuzzed past a lookup); each variant gets its own examples."""
    report = FuzzReport()
    for result in schema.get_all_operations():
        operation = result.ok()
        if skip(operation):
            continue
        report.operations.append(operation.label)
        for variant in variants_for(operation):
            for mode in modes:
                _run_operation(operation, mode, variant, headers_for(operation), max_examples, reason_keys, report)
    return report


def _run_operation(operation: APIOperation, mode: GenerationMode, variant: dict[str, Any], headers: dict[str, str],
                   max_examples: int, reason_keys: Sequence[str], report: FuzzReport) -> None:
    label = operation.label

    @hypothesis.settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode, **variant))
    def run(case: Case) -> None:
        response = case.call(headers=headers, timeout=30)
        report.examples += 1
        report.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except FailureGroup:  # the check failed: a 5xx
            report.server_errors.append((label, describe_case(case), response.status_code, response.text))
            return
        if 400 <= response.status_code < 500 and not has_reason(response.text, reason_keys):
            report.silent_rejections.append((label, describe_case(case), response.status_code, response.text))

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # nothing in this operation's schema can be violated (no parameters, no body)
