"""Redaction of everything that may be stored or shown (examples, diffs, captures). Pure.

Rules: Authorization, Cookie, Set-Cookie, X-GUARD-API-KEY-SECRET, and any header, query
parameter or JSON field whose name contains secret|token|password|apikey|api_key|authorization|
credential (any case) lose their value; JWT-looking strings and bearer credentials anywhere are
replaced. Redact *before* truncating, so a cut can never leave half a secret behind.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, quote

REDACTED = "[REDACTED]"

SENSITIVE_NAME = re.compile(
    r"secret|token|passw(?:or)?d|api[-_]?key|authori[sz]ation|credential|cookie|session|private[-_]?key",
    re.IGNORECASE,
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_\-+/=]*")
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)
# name=value / "name": "value" / name: value in free text (form bodies, logs, error messages)
_TEXT_PAIR = re.compile(
    r"""(?P<name>["']?[A-Za-z0-9_\-]*(?:secret|token|passw(?:or)?d|api[-_]?key|authori[sz]ation|credential|cookie)[A-Za-z0-9_\-]*["']?)"""
    r"""(?P<sep>\s*[:=]\s*)(?P<q>["']?)(?P<value>[^"'&\s,;}]+)""",
    re.IGNORECASE,
)


def is_sensitive(name: str) -> bool:
    return bool(SENSITIVE_NAME.search(name))


def redact_text(text: str) -> str:
    text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _TEXT_PAIR.sub(lambda m: f"{m.group('name')}{m.group('sep')}{m.group('q')}{REDACTED}", text)


def redact_value(value: Any, name: str | None = None) -> Any:
    """Redact a JSON-like value; ``name`` is the key it sits under (if any)."""
    if name is not None and is_sensitive(name) and value is not None:
        return REDACTED
    if isinstance(value, dict):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_headers(headers: list[tuple[str, str]] | dict[str, str]) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, dict) else headers
    return [(k, REDACTED if is_sensitive(k) else redact_text(v)) for k, v in items]


def redact_query(query: str) -> str:
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    out = "&".join(f"{quote(k, safe='')}={REDACTED if is_sensitive(k) else quote(redact_text(v), safe='')}" for k, v in pairs)
    return out.replace(quote(REDACTED, safe=""), REDACTED)


def redact_body(body: bytes | str | None, *, limit: int = 4096) -> str:
    """A body as redacted, truncated text (JSON re-serialised compactly)."""
    if body is None:
        return ""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(body)} bytes binary>"
    else:
        text = body
    try:
        parsed = json.loads(text)
    except ValueError:
        out = redact_text(text)
    else:
        out = json.dumps(redact_value(parsed), separators=(",", ":"), ensure_ascii=False)
    if len(out) > limit:
        out = out[:limit] + f"…[truncated {len(out) - limit} chars]"
    return out


def redact_path_value(path: str, value: Any) -> Any:
    """A differing value at ``path``: redacted when any key on the path names a secret."""
    keys = re.findall(r"[A-Za-z0-9_\-]+", path)
    if any(is_sensitive(k) for k in keys) and value is not None:
        return REDACTED
    return redact_value(value)
