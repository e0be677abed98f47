"""Idempotent creation of AWS resources the stacks need, shared by the legacy provisioning and the
services' startup (both may import the core; running it twice changes nothing)."""

from __future__ import annotations

import os
from typing import Any

from botocore.exceptions import ClientError

# boto3's service-specific endpoint variable: `up --dynamodb dynalite` sends DynamoDB alone there.
DYNAMODB_ENV = "AWS_ENDPOINT_URL_DYNAMODB"


def ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    """Create ``bucket`` unless it exists (us-east-1 takes no location constraint)."""
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def dynamodb_endpoint(default: str | None) -> str | None:
    """The endpoint a DynamoDB client should use: ``AWS_ENDPOINT_URL_DYNAMODB`` when set (botocore
    gives an explicit ``endpoint_url`` precedence over it, so code that passes the stack's single
    AWS endpoint must ask here first), else ``default``."""
    return os.environ.get(DYNAMODB_ENV) or default
