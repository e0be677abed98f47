"""The proxy worker's environment, read once into one typed object.

``chariot-migrate proxy`` (``proxy/server.py``) passes everything a worker needs as
``CHARIOT_MIGRATE_*`` variables; the app reads them here, at start, and nowhere else on the hot
path. A bad number falls back to its default rather than refusing to serve.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


def _float(raw: str | None, default: float) -> float:
    try:
        return float(raw) if raw not in (None, "") else default
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class ProxySettings:
    routes: str = "routes.yaml"  # CHARIOT_MIGRATE_ROUTES
    state: str | None = None  # CHARIOT_MIGRATE_STATE: the rollout state store URL
    access_log: bool = True  # CHARIOT_MIGRATE_ACCESS_LOG (0: off)
    operator_token: str = ""  # CHARIOT_MIGRATE_OPERATOR_TOKEN: enables X-Migrate-Target
    legacy_endpoint_url: str | None = None  # CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL (moto from `up`)
    metrics_store: str | None = None  # CHARIOT_MIGRATE_METRICS_STORE (else the plan's)
    shadow_store: str | None = None  # CHARIOT_MIGRATE_SHADOW_STORE (else routes.yaml's)
    capture: str | None = None  # CHARIOT_MIGRATE_CAPTURE: a file to capture exchanges into
    capture_sample: float = 1.0  # CHARIOT_MIGRATE_CAPTURE_SAMPLE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProxySettings:
        e = os.environ if env is None else env
        return cls(
            routes=e.get("CHARIOT_MIGRATE_ROUTES") or "routes.yaml",
            state=e.get("CHARIOT_MIGRATE_STATE") or None,
            access_log=e.get("CHARIOT_MIGRATE_ACCESS_LOG", "1") != "0",
            operator_token=e.get("CHARIOT_MIGRATE_OPERATOR_TOKEN", ""),
            legacy_endpoint_url=e.get("CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL") or None,
            metrics_store=e.get("CHARIOT_MIGRATE_METRICS_STORE") or None,
            shadow_store=e.get("CHARIOT_MIGRATE_SHADOW_STORE") or None,
            capture=e.get("CHARIOT_MIGRATE_CAPTURE") or None,
            capture_sample=_float(e.get("CHARIOT_MIGRATE_CAPTURE_SAMPLE"), 1.0),
        )
