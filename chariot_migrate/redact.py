"""Redaction of everything that may be stored or shown (examples, diffs, captures). Pure.

Rules: Authorization, Cookie, Set-Cookie, X-GUARD-API-KEY-SECRET, and any header, query
parameter or JSON field whose name contains secret|token|password|apikey|api_key|authorization|
credential|hook, or is a pin (any case) lose their value; JWT-looking strings and bearer
credentials anywhere are replaced. Redact *before* truncating, so a cut can never leave half a
secret behind.

Some credentials are known by where they sit rather than by a field name: a path parameter with a
sensitive name (the webhook's ``/hook/{principal}/{pin}``) and a composite-key segment that names
one (``#account#<owner>#hook#<pin>``). ``secrets_in`` collects those values from a whole record
(request and response) and ``redact_known`` removes them wherever else they appear in it — e.g.
the webhook row's ``value`` next to its key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

REDACTED = "[REDACTED]"

_SENSITIVE_WORDS = (r"secret|token|passw(?:or)?d|api[-_]?key|authori[sz]ation|credential|cookie|session|"
                    r"private[-_]?key|hook|(?<![a-z])pin(?![a-z])")
SENSITIVE_NAME = re.compile(_SENSITIVE_WORDS, re.IGNORECASE)
# `#<sensitive name>#<value>` inside a composite key (Chariot: `#account#<owner>#hook#<pin>`).
_KEY_SEGMENT = re.compile(
    rf"#(?P<name>[A-Za-z0-9_\-]*(?:{_SENSITIVE_WORDS})[A-Za-z0-9_\-]*)#(?P<value>[^#\s\"'&,;}}\\]+)",
    re.IGNORECASE,
)
_MIN_KNOWN = 6  # shorter values would erase ordinary text
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_\-+/=]*")
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)
# name=value / "name": "value" / name: value in free text (form bodies, logs, error messages)
_TEXT_PAIR = re.compile(
    r"""(?P<name>["']?[A-Za-z0-9_\-]*"""
    r"""(?:secret|token|passw(?:or)?d|api[-_]?key|authori[sz]ation|credential|cookie|(?<![a-z])pin(?![a-z]))"""
    r"""[A-Za-z0-9_\-]*["']?)"""
    r"""(?P<sep>\s*[:=]\s*)(?P<q>["']?)(?P<value>[^"'&\s,;}]+)""",
    re.IGNORECASE,
)


def is_sensitive(name: str) -> bool:
    return bool(SENSITIVE_NAME.search(name))


def redact_text(text: str) -> str:
    text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _KEY_SEGMENT.sub(lambda m: f"#{m.group('name')}#{REDACTED}", text)
    return _TEXT_PAIR.sub(lambda m: f"{m.group('name')}{m.group('sep')}{m.group('q')}{REDACTED}", text)


def secrets_in(*texts: str, path_params: Mapping[str, str] | None = None) -> frozenset[str]:
    """Credentials known by their place: values of sensitively named path parameters and of
    composite-key segments that name a secret (see the module doc)."""
    found = {v for k, v in (path_params or {}).items() if is_sensitive(k)}
    for text in texts:
        found.update(m.group("value") for m in _KEY_SEGMENT.finditer(text))
    return frozenset(v for v in found if v and len(v) >= _MIN_KNOWN)


def redact_known(value: Any, known: frozenset[str] | set[str]) -> Any:
    """Replace every occurrence of the ``known`` secret values (plain or URL-encoded) in a string
    or JSON-like value."""
    if not known:
        return value
    if isinstance(value, dict):
        return {k: redact_known(v, known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_known(v, known) for v in value]
    if isinstance(value, str):
        for secret in sorted(known, key=len, reverse=True):
            value = value.replace(secret, REDACTED)
            encoded = quote(secret, safe="")
            if encoded != secret:
                value = value.replace(encoded, REDACTED)
        return value
    return value


def redact_path(path: str, path_params: Mapping[str, str] | None = None) -> str:
    """A request path for storing: sensitive path parameters (``{pin}``) and text rules."""
    return redact_text(redact_known(path, secrets_in(path_params=path_params)))


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
    out = redact_known(out, secrets_in(text))  # e.g. a webhook row's `value`, named by its key
    if len(out) > limit:
        out = out[:limit] + f"…[truncated {len(out) - limit} chars]"
    return out


def redact_path_value(path: str, value: Any) -> Any:
    """A differing value at ``path``: redacted when any key on the path names a secret."""
    keys = re.findall(r"[A-Za-z0-9_\-]+", path)
    if any(is_sensitive(k) for k in keys) and value is not None:
        return REDACTED
    return redact_value(value)


def redact_url(url: str) -> str:
    """A URL with any password replaced (``redis://:secret@host`` → ``redis://:***@host``)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
