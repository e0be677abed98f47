"""Peer URLs under the names `chariot-migrate up` exports (one ``<SERVICE>_URL`` per routes.yaml
service, e.g. ``ASSET_DISCOVERY_URL``), as fallbacks for a service's own short setting names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

UP_NAMES = {"asset_url": "ASSET_DISCOVERY_URL", "risk_url": "RISK_ASSESSMENT_URL"}


def peer_url_overrides(service: str, env: Mapping[str, str], overrides: dict[str, Any],
                       fields: Mapping[str, str] = UP_NAMES) -> dict[str, Any]:
    """``overrides`` plus each field set from its routes.yaml-named variable, unless the field is
    given explicitly (override, ``CHARIOT_<SERVICE>_<FIELD>`` or ``<FIELD>``)."""
    prefix = "CHARIOT_" + service.upper().replace("-", "_") + "_"
    out = dict(overrides)
    for field, var in fields.items():
        explicit = field in out or (prefix + field.upper()) in env or field.upper() in env
        if not explicit and env.get(var):
            out[field] = env[var]
    return out
