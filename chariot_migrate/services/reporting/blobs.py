"""File blobs in S3 (``{username}/{path}``) with presigned URLs, as legacy/blobs.py does.

The bucket defaults to the legacy one (``CHARIOT_BUCKET``): blobs are immutable objects that both
sides read during the migration, so only the ``#file#`` rows move to reporting's own table.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from ...model.files import checked_name, object_key

PRESIGN_SECONDS = 3600


def check_name(name: str | None) -> str:
    return checked_name(name)


class BlobMissing(LookupError):
    """The file row exists but its object does not (a presigned upload never happened)."""


class Blobs:
    def __init__(self, bucket: str, *, endpoint_url: str | None, region: str) -> None:
        self.bucket = bucket
        # Path-style + SigV4: presigned URLs must work against a local endpoint (no bucket DNS).
        self.s3: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=region,
                                    config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))

    def presign(self, method: str, username: str, name: str) -> str:
        op = {"GET": "get_object", "PUT": "put_object"}[method]
        return self.s3.generate_presigned_url(op, Params={"Bucket": self.bucket, "Key": object_key(username, name)},
                                              ExpiresIn=PRESIGN_SECONDS)

    def write(self, username: str, name: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=object_key(username, name), Body=data, ContentType=content_type)

    def read(self, username: str, name: str) -> bytes:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=object_key(username, name))["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise BlobMissing(name) from None
            raise

    def remove(self, username: str, name: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=object_key(username, name))
