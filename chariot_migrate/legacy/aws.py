"""boto3 clients and settings, created once per warm container (lazily).

boto3 honours ``AWS_ENDPOINT_URL``, which the local runtime points at the moto server.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3

DEFAULT_TABLE = "chariot"
DEFAULT_BUCKET = "chariot-files"
DEFAULT_SECRET = "chariot/signing-key"
DEFAULT_REPLAY_PRINCIPAL = "replay@chariot-migrate.local"


def table_name() -> str:
    return os.environ.get("CHARIOT_TABLE", DEFAULT_TABLE)


def bucket_name() -> str:
    return os.environ.get("CHARIOT_BUCKET", DEFAULT_BUCKET)


def secret_id() -> str:
    return os.environ.get("CHARIOT_SIGNING_SECRET_ID", DEFAULT_SECRET)


def replay_principal() -> str:
    return os.environ.get("CHARIOT_REPLAY_PRINCIPAL", DEFAULT_REPLAY_PRINCIPAL)


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@cache
def table() -> Any:
    return boto3.resource("dynamodb", region_name=region()).Table(table_name())


@cache
def s3() -> Any:
    from botocore.config import Config

    # Path-style URLs: presigned URLs must work against a local endpoint (no bucket DNS).
    return boto3.client("s3", region_name=region(), config=Config(s3={"addressing_style": "path"},
                                                                   signature_version="s3v4"))


@cache
def secrets() -> Any:
    return boto3.client("secretsmanager", region_name=region())


@cache
def lambda_client() -> Any:
    return boto3.client("lambda", region_name=region())


def reset() -> None:
    """Forget cached clients (tests switch endpoints between cases)."""
    for f in (table, s3, secrets, lambda_client):
        f.cache_clear()
    from . import signing

    signing.reset()
