"""The services' read cache (``app.state.cache``): which Redis namespace a service's entries live
in, and how writers outside the service (``chariot-migrate data backfill``/``repair``) invalidate it.

A namespace is per service AND per DynamoDB endpoint: stacks that share one Redis but each run
their own moto (several ``up`` stacks, test runs and benchmarks on one machine) hold different
data under the same account names, and must never read each other's entries. In production
(``AWS_ENDPOINT_URL`` unset) the namespace is just ``<REDIS_NAMESPACE><TABLE_PREFIX><service>:cache``
(the deployment's namespace first, as for every Redis key: chariot_migrate/redis_keys.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from typing import Any

from .cache import ReadThroughCache, flush_namespace

log = logging.getLogger("chariot.services.cache")
# What `chariot-migrate up` uses when no REDIS_URL is set; a CLI run on the same machine finds it.
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"


def cache_namespace(service: str, table_prefix: str = "", aws_endpoint_url: str | None = None,
                    redis_namespace: str = "") -> str:
    base = f"{redis_namespace}{table_prefix}{service}:cache"
    if not aws_endpoint_url:
        return base
    return f"{base}@{hashlib.sha256(aws_endpoint_url.encode()).hexdigest()[:12]}"


def service_cache(redis: Any | None, service: str, settings: Any) -> ReadThroughCache:
    """The read cache of one service instance, from its settings (``ChariotSettings``)."""
    return ReadThroughCache(
        redis,
        namespace=cache_namespace(service, settings.table_prefix, settings.aws_endpoint_url, settings.redis_namespace),
        l1_ttl=settings.cache_l1_ttl_seconds,
        l2_ttl=settings.cache_l2_ttl_seconds,
    )


def flush_service_cache(service: str, table_prefix: str, aws_endpoint_url: str | None,
                        env: Mapping[str, str] | None = None) -> str:
    """Invalidate every cached read of ``service`` after its tables were written around it.

    The Redis is the service's (``CHARIOT_<SERVICE>_REDIS_URL`` / ``REDIS_URL``), else the local
    one ``up`` uses when it answers. Returns one line for the operator; never raises: without a
    Redis the services' entries expire on their own (L2 TTL + L1 TTL, see the README).
    """
    import redis

    env = os.environ if env is None else env
    var = "CHARIOT_" + service.upper().replace("-", "_") + "_"
    url = env.get(var + "REDIS_URL") or env.get("REDIS_URL") or LOCAL_REDIS_URL
    redis_namespace = env.get(var + "REDIS_NAMESPACE", env.get("REDIS_NAMESPACE", ""))
    namespace = cache_namespace(service, table_prefix, aws_endpoint_url, redis_namespace)
    from chariot_migrate.redis_conn import sync_redis

    client = sync_redis(url, socket_connect_timeout=1.0, socket_timeout=5.0)
    try:
        deleted = flush_namespace(client, namespace)
    except redis.RedisError as exc:
        log.warning("service cache not flushed", extra={"service": service, "error": type(exc).__name__})
        return (f"{service}: cache not invalidated (Redis at {_redacted(url)}: {type(exc).__name__}); "
                "cached reads catch up when their TTL ends")
    finally:
        client.close()
    return f"{service}: cache invalidated ({deleted} cached entries dropped)"


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url
