"""Status codes of assets, seeds, risks and jobs (pure rules)."""

from __future__ import annotations

import re

ASSET_STATUSES = frozenset({"A", "P", "F", "FR", "D", "AH", "AL", "AP", "FL", "FH"})
RISK_STATES = "TOIRD"
RISK_SEVERITIES = "ILMHCE"
RISK_DELETE_REASONS = "FSDO"
SEVERITY_PRIORITY = {"C": 0, "H": 10, "M": 20, "L": 30, "I": 40, "E": 50}
NO_SEVERITY_PRIORITY = 60
TRIAGE_STATUSES = frozenset({"TI", "TL", "TM", "TH", "TC"})
JOB_CODES = frozenset({"JQ", "JR", "JRA", "JQA", "JF", "JP"})
ROLES = ("admin", "analyst", "readonly")

_RISK = re.compile(r"^([TOIRD])([ILMHCE])([FSDO]?)$")


def is_asset_status(s: str) -> bool:
    return s in ASSET_STATUSES


def parse_risk_status(status: str) -> tuple[str, str, str]:
    """'DHF' → ('D', 'H', 'F'). Raises ValueError with the reason when invalid."""
    m = _RISK.match(status or "")
    if not m:
        raise ValueError(
            f"invalid risk status {status!r}: want <state T|O|I|R|D><severity I|L|M|H|C|E>[reason F|S|D|O]"
        )
    state, severity, reason = m.groups()
    if reason and state != "D":
        raise ValueError(f"invalid risk status {status!r}: only deleted (D) risks take a reason suffix")
    return state, severity, reason


def is_risk_status(status: str) -> bool:
    try:
        parse_risk_status(status)
        return True
    except ValueError:
        return False


def risk_status(state: str, severity: str, reason: str = "") -> str:
    s = f"{state}{severity}{reason}"
    parse_risk_status(s)
    return s


def risk_priority(status: str) -> int:
    """Priority from severity: C=0, H=10, M=20, L=30, I=40, E=50, no severity 60."""
    m = _RISK.match(status or "")
    if not m:
        return NO_SEVERITY_PRIORITY
    return SEVERITY_PRIORITY.get(m.group(2), NO_SEVERITY_PRIORITY)


def job_status(code: str, updated: str) -> str:
    if code not in JOB_CODES:
        raise ValueError(f"invalid job status code {code!r}")
    return f"{code}#{updated}"


def job_code(status: str) -> str:
    return (status or "").split("#", 1)[0]
