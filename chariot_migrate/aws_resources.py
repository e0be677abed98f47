"""Idempotent creation of AWS resources the stacks need, shared by the legacy provisioning and the
services' startup (both may import the core; running it twice changes nothing)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


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
