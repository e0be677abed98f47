"""Every Redis connection the toolkit and the services open: one helper, so each takes its
credentials and TLS from the environment (or a Kubernetes Secret mounted as environment) when
the URL carries none — the URLs sit in routes.yaml and ConfigMaps, which must not hold secrets.

* password: ``CHARIOT_MIGRATE_REDIS_PASSWORD``, else ``REDIS_PASSWORD`` (used when the URL has no
  password); username (Redis 6 ACL): ``CHARIOT_MIGRATE_REDIS_USERNAME``, else ``REDIS_USERNAME``;
* TLS: a ``rediss://`` URL, or ``CHARIOT_MIGRATE_REDIS_TLS=1`` (also ``true``/``yes``) turns
  ``redis://`` into ``rediss://``; the CA bundle from ``CHARIOT_MIGRATE_REDIS_CA_FILE`` (else
  ``REDIS_CA_FILE``), a client certificate from ``CHARIOT_MIGRATE_REDIS_CERT_FILE`` /
  ``CHARIOT_MIGRATE_REDIS_KEY_FILE`` (mutual TLS). Settings in the URL's query win.

What the URL says always wins over the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

_TRUE = {"1", "true", "yes", "on"}


def _env(env: Mapping[str, str], *names: str) -> str | None:
    for n in names:
        v = env.get(n)
        if v:
            return v
    return None


def redis_options(url: str, env: Mapping[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """Pure: ``(url, keyword arguments for from_url)`` with the environment's credentials and TLS."""
    env = os.environ if env is None else env
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    kw: dict[str, Any] = {}
    if not parts.password and "password" not in query:
        pw = _env(env, "CHARIOT_MIGRATE_REDIS_PASSWORD", "REDIS_PASSWORD")
        if pw:
            kw["password"] = pw
    if not parts.username and "username" not in query:
        user = _env(env, "CHARIOT_MIGRATE_REDIS_USERNAME", "REDIS_USERNAME")
        if user and kw.get("password"):  # a pair: the URL's own password goes with its own user
            kw["username"] = user
    scheme = parts.scheme
    if scheme == "redis" and (_env(env, "CHARIOT_MIGRATE_REDIS_TLS", "REDIS_TLS") or "").lower() in _TRUE:
        url, scheme = "rediss" + url[len("redis"):], "rediss"
    if scheme == "rediss":
        for key, names in (("ssl_ca_certs", ("CHARIOT_MIGRATE_REDIS_CA_FILE", "REDIS_CA_FILE")),
                           ("ssl_certfile", ("CHARIOT_MIGRATE_REDIS_CERT_FILE", "REDIS_CERT_FILE")),
                           ("ssl_keyfile", ("CHARIOT_MIGRATE_REDIS_KEY_FILE", "REDIS_KEY_FILE"))):
            v = _env(env, *names)
            if v and key not in query:
                kw[key] = v
    return url, kw


def sync_redis(url: str, **kwargs: Any):
    """``redis.Redis.from_url`` with the environment's credentials and TLS."""
    import redis

    url, kw = redis_options(url)
    return redis.Redis.from_url(url, **{**kw, **kwargs})


def async_redis(url: str, **kwargs: Any):
    """``redis.asyncio.Redis.from_url`` with the environment's credentials and TLS."""
    import redis.asyncio as aioredis

    url, kw = redis_options(url)
    return aioredis.Redis.from_url(url, **{**kw, **kwargs})
