"""The RS256 signing key, kept in Secrets Manager as JSON ``{"private_pem", "kid"}``."""

from __future__ import annotations

import json

from chariot_migrate.model.tokens import SigningKey

from . import aws

_cached: SigningKey | None = None


def load() -> SigningKey:
    global _cached
    if _cached is None:
        raw = aws.secrets().get_secret_value(SecretId=aws.secret_id())["SecretString"]
        data = json.loads(raw)
        _cached = SigningKey(data["private_pem"], data["kid"])
    return _cached


def reset() -> None:
    global _cached
    _cached = None
