"""S3 over boto3: `ports.Storage`, where mlsync puts its JSON documents and `model.tar.gz` artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from boto3.s3.transfer import TransferConfig

from ..domain import Document
from ..errors import ConfigError, NotFoundError
from .aws import aws_errors

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MiB = 1024 * 1024

# 64 MiB parts keep S3's 10,000-part limit above 600 GiB and the request count low for big models.
# A file upload reads each part from disk as it is sent, so memory stays at about one part per thread.
DEFAULT_TRANSFER = TransferConfig(
    multipart_threshold=64 * _MiB, multipart_chunksize=64 * _MiB, max_concurrency=8
)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split `s3://bucket/key` into bucket and key.

    Raises:
        ConfigError: the URI is not of that form (it comes from MLSYNC_S3_PREFIX in the end).
    """
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise ConfigError(f"malformed S3 URI {uri!r}: expected s3://bucket/key (check MLSYNC_S3_PREFIX)")
    return bucket, key


class S3Storage:
    """`ports.Storage` over a boto3 S3 client."""

    def __init__(self, s3_client: S3Client, transfer_config: TransferConfig = DEFAULT_TRANSFER) -> None:
        self._s3 = s3_client
        self._transfer = transfer_config

    def put_document(self, document: Document) -> None:
        """Write one small document in a single PutObject (same URI, same bytes: safe to repeat)."""
        bucket, key = parse_s3_uri(document.s3_uri)
        with aws_errors("PutObject", document.s3_uri, _missing_bucket_hint(bucket)):
            self._s3.put_object(Bucket=bucket, Key=key, Body=document.body, ContentType=document.content_type)

    def upload_file(self, path: Path, s3_uri: str) -> bool:
        """Upload `path` with boto3's managed (multipart) transfer unless `s3_uri` already exists.

        Keys are content-addressed, so an existing object already holds these bytes. Returns whether
        anything was uploaded.
        """
        bucket, key = parse_s3_uri(s3_uri)
        if self._exists(bucket, key, s3_uri):
            return False
        with aws_errors("Upload", s3_uri, _missing_bucket_hint(bucket)):
            self._s3.upload_file(str(path), bucket, key, Config=self._transfer)
        return True

    def read(self, s3_uri: str) -> bytes:
        """GetObject into memory: only for small objects (documents, MLmodel files, input examples)."""
        bucket, key = parse_s3_uri(s3_uri)
        with aws_errors("GetObject", s3_uri, _missing_bucket_hint(bucket)):
            return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def list_prefix(self, s3_uri: str) -> list[str]:
        """Every key under the prefix `s3_uri`, relative to it, across ListObjectsV2 pages, sorted."""
        bucket, prefix = parse_s3_uri(s3_uri)
        paginator = self._s3.get_paginator("list_objects_v2")
        with aws_errors("ListObjectsV2", s3_uri, _missing_bucket_hint(bucket)):
            keys = [
                item["Key"][len(prefix) :]
                for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
        return sorted(keys)

    def download_file(self, s3_uri: str, path: Path) -> None:
        """Download with boto3's managed transfer: parts are written to disk as they arrive."""
        bucket, key = parse_s3_uri(s3_uri)
        with aws_errors("Download", s3_uri, _missing_bucket_hint(bucket)):
            self._s3.download_file(bucket, key, str(path), Config=self._transfer)

    def _exists(self, bucket: str, key: str, s3_uri: str) -> bool:
        """HeadObject; only a missing key means "absent" (a missing bucket or no access is an error).

        S3 answers HEAD without a body, so a missing bucket may look like a missing key ("404"); the
        upload that follows then fails with NoSuchBucket, which gets the same hint.
        """
        try:
            with aws_errors("HeadObject", s3_uri, _missing_bucket_hint(bucket)):
                self._s3.head_object(Bucket=bucket, Key=key)
        except NotFoundError as exc:
            if exc.code == "NoSuchBucket":
                raise
            return False
        return True


def _missing_bucket_hint(bucket: str) -> dict[str, str]:
    return {"NoSuchBucket": f"create bucket {bucket!r}, or set MLSYNC_S3_PREFIX to a bucket that exists"}
