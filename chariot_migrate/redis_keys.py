"""The rule for every Redis key the toolkit and the services use: it starts with the deployment's
namespace (``REDIS_NAMESPACE``, empty by default), then the store's own prefix. So deployments
that share one Redis (several `up` stacks on one machine, staging next to CI) never read,
consume or overwrite each other's state, outbox, rate limits, diffs, windows, events or cache.
`chariot-migrate up` gives each stack its own namespace unless one is configured.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import parse_qs

NAMESPACE_ENV = "REDIS_NAMESPACE"
_VALID = re.compile(r"[A-Za-z0-9_.:@-]*")


def deployment_namespace(env: Mapping[str, str] | None = None) -> str:
    value = (os.environ if env is None else env).get(NAMESPACE_ENV, "")
    if not _VALID.fullmatch(value):
        raise ValueError(f"{NAMESPACE_ENV}={value!r}: use letters, digits and _ . : @ - only")
    return value


def split_redis_url(url: str, default_prefix: str, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """``redis://host:port/db?prefix=p`` → (the URL without ``prefix=``, namespace + prefix)."""
    base, _, query = url.partition("?")  # not urlparse().geturl(): it turns unix:///path into unix:/path
    prefix = parse_qs(query).get("prefix", [default_prefix])[0]
    rest = "&".join(p for p in query.split("&") if p and not p.startswith("prefix="))
    return base + (f"?{rest}" if rest else ""), deployment_namespace(env) + prefix


def glob_escape(text: str) -> str:
    """``text`` as a literal in a SCAN ``MATCH`` pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
