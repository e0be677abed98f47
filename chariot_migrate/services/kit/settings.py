"""Service settings read from the environment.

Each field ``foo_bar`` is read from ``CHARIOT_<SERVICE>_FOO_BAR`` first, then from the common
``FOO_BAR`` (so one ``REDIS_URL``/``AWS_ENDPOINT_URL`` serves every service on a host), then the
default. Services subclass :class:`ServiceSettings` to add their own fields.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

S = TypeVar("S", bound="ServiceSettings")


class SettingsError(ValueError):
    """A setting from the environment is invalid (message names the variable)."""


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    service_name: str = "service"
    host: str = "127.0.0.1"
    port: int = 0
    log_level: str = "INFO"
    aws_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    redis_url: str | None = None
    # Token verification: a JWKS URL, or a static JWKS (JSON) / PEM public key.
    jwks_url: str | None = None
    jwks_json: str | None = None
    jwt_public_key: str | None = None
    issuer: str = "chariot-migrate-local"
    audience: str = "chariot"
    internal_audience: str = "chariot-internal"
    jwks_cache_seconds: float = 300.0
    # Event bus: "inprocess" (embedded default) or "redis".
    event_bus: str = "inprocess"
    table_prefix: str = ""
    # The deployment's Redis namespace (chariot_migrate/redis_keys.py): every Redis key and stream
    # of the service starts with it, so deployments sharing one Redis never see each other's.
    redis_namespace: str = Field("", pattern=r"^[A-Za-z0-9_.:@-]*$")

    @property
    def redis_prefix(self) -> str:
        """What every Redis key of this service starts with: the namespace, then TABLE_PREFIX."""
        return self.redis_namespace + self.table_prefix

    @classmethod
    def from_env(cls: type[S], service: str, env: Mapping[str, str] | None = None, **overrides: Any) -> S:
        """Build settings for ``service`` from ``env`` (default ``os.environ``)."""
        env = os.environ if env is None else env
        prefix = "CHARIOT_" + service.upper().replace("-", "_") + "_"
        values: dict[str, Any] = {"service_name": service}
        source: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            if name == "service_name":
                continue
            for var in (prefix + name.upper(), name.upper()):
                if var in env:
                    raw = env[var]
                    values[name] = _coerce(raw, field.annotation)
                    source[name] = var
                    break
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            failed = str(err["loc"][0]) if err["loc"] else "?"
            var = source.get(failed, failed.upper())
            raise SettingsError(f"environment variable {var}: {err['msg']}") from None


def _coerce(raw: str, annotation: Any) -> Any:
    # Lists/dicts arrive as JSON; scalars are left to pydantic's lax coercion.
    if raw.startswith(("[", "{")) and annotation not in (str, str | None):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


# ---- the Chariot services' settings (legacy variable names honoured) -------------------------

DEFAULT_SIGNING_SECRET = "chariot/signing-key"  # = chariot_migrate.legacy.aws.DEFAULT_SECRET
DEFAULT_REPLAY_PRINCIPAL = "replay@chariot-migrate.local"  # = legacy.aws.DEFAULT_REPLAY_PRINCIPAL
# Names the legacy functions read; services honour them too so one env serves both sides.
LEGACY_ENV = {"signing_secret_id": "CHARIOT_SIGNING_SECRET_ID", "replay_principal": "CHARIOT_REPLAY_PRINCIPAL"}


class ChariotSettings(ServiceSettings):
    """Env ``CHARIOT_<SERVICE>_<FIELD>``, then ``<FIELD>``, then (for the two legacy names)
    ``CHARIOT_SIGNING_SECRET_ID`` / ``CHARIOT_REPLAY_PRINCIPAL``, then the default."""

    signing_secret_id: str = DEFAULT_SIGNING_SECRET
    account_url: str | None = None  # account service, for membership (assume-role) lookups
    replay_principal: str = DEFAULT_REPLAY_PRINCIPAL
    # Short: legacy checks membership on every call, so an unlinked collaborator must lose access
    # at once (the cache only absorbs bursts of one client's calls).
    membership_cache_seconds: float = 1.0
    page_size: int = 1000  # GET /my page size (legacy: CHARIOT_PAGE_SIZE)
    # app.state.cache: entries live this long per instance (L1) and in Redis (L2). Writes through
    # the service invalidate at once; the L2 TTL (+ L1) bounds how long a write made around the
    # service that does not invalidate can stay unseen.
    cache_l1_ttl_seconds: float = 5.0
    cache_l2_ttl_seconds: float = 60.0

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None, **overrides: Any):
        env = os.environ if env is None else env
        prefix = "CHARIOT_" + service.upper().replace("-", "_") + "_"
        fallbacks = dict(LEGACY_ENV, page_size="CHARIOT_PAGE_SIZE")
        for field, legacy_var in fallbacks.items():
            if field in overrides or (prefix + field.upper()) in env or field.upper() in env:
                continue
            if legacy_var in env:
                overrides[field] = env[legacy_var]
        return super().from_env(service, env, **overrides)
