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

from pydantic import BaseModel, ConfigDict, ValidationError

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
            field = str(err["loc"][0]) if err["loc"] else "?"
            var = source.get(field, field.upper())
            raise SettingsError(f"environment variable {var}: {err['msg']}") from None


def _coerce(raw: str, annotation: Any) -> Any:
    # Lists/dicts arrive as JSON; scalars are left to pydantic's lax coercion.
    if raw.startswith(("[", "{")) and annotation not in (str, str | None):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw
