"""S3Storage against moto, plus the answers real S3 gives differently (HEAD without a body)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.stub import Stubber
from moto import mock_aws
from recorded_calls import RecordedCalls, record_calls

from mlflow_sagemaker_registry.domain import Document
from mlflow_sagemaker_registry.errors import ConfigError, GatewayError
from mlflow_sagemaker_registry.gateways.aws import AwsClients, aws_clients
from mlflow_sagemaker_registry.gateways.s3 import S3Storage, parse_s3_uri

BUCKET = "mlsync-artifacts"
URI = f"s3://{BUCKET}/mlsync/artifacts/abc/model.tar.gz"


@pytest.fixture
def clients() -> Iterator[AwsClients]:
    with mock_aws():
        clients = aws_clients("us-east-1")
        clients.s3.create_bucket(Bucket=BUCKET)
        yield clients


@pytest.fixture
def storage(clients: AwsClients) -> S3Storage:
    return S3Storage(clients.s3)


@pytest.fixture
def calls(clients: AwsClients) -> RecordedCalls:
    return record_calls(clients.s3)


@pytest.fixture
def tarball(tmp_path: Path) -> Path:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"model bytes")
    return path


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [("s3://b/k", ("b", "k")), ("s3://bucket/a/b/model.tar.gz", ("bucket", "a/b/model.tar.gz"))],
)
def test_parse_s3_uri(uri: str, parsed: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == parsed


@pytest.mark.parametrize("uri", ["s3://bucket", "s3://bucket/", "s3:///key", "bucket/key", "https://b/k", ""])
def test_malformed_s3_uri_is_a_config_error(uri: str) -> None:
    with pytest.raises(ConfigError, match="expected s3://bucket/key"):
        parse_s3_uri(uri)


def test_put_document_writes_body_and_content_type(storage: S3Storage, clients: AwsClients) -> None:
    storage.put_document(Document(f"s3://{BUCKET}/mlsync/runs/r1.json", b'{"run": 1}', "sha256:00"))

    stored = clients.s3.get_object(Bucket=BUCKET, Key="mlsync/runs/r1.json")
    assert stored["Body"].read() == b'{"run": 1}'
    assert stored["ContentType"] == "application/json"


def test_upload_file_uploads_once_then_skips(
    storage: S3Storage, clients: AwsClients, calls: RecordedCalls, tarball: Path
) -> None:
    assert storage.upload_file(tarball, URI) is True
    uploads = len(calls.calls)

    assert storage.upload_file(tarball, URI) is False

    assert calls.operations[uploads:] == ["HeadObject"]
    assert clients.s3.get_object(Bucket=BUCKET, Key=URI.split("/", 3)[3])["Body"].read() == b"model bytes"


def test_big_files_go_up_in_parts(clients: AwsClients, calls: RecordedCalls, tmp_path: Path) -> None:
    big = tmp_path / "model.tar.gz"
    big.write_bytes(bytes(range(256)) * (24 * 1024 + 1))  # 6 MiB and a bit: two 5 MiB-chunked parts
    five_mib = 5 * 1024 * 1024
    storage = S3Storage(
        clients.s3, TransferConfig(multipart_threshold=five_mib, multipart_chunksize=five_mib)
    )

    assert storage.upload_file(big, URI) is True

    assert len(calls.of("UploadPart")) == 2
    assert calls.of("PutObject") == []
    body = clients.s3.get_object(Bucket=BUCKET, Key=URI.split("/", 3)[3])["Body"].read()
    assert body == big.read_bytes()


@pytest.mark.parametrize("operation", ["put_document", "upload_file"])
def test_missing_bucket_names_the_bucket_and_the_fix(
    storage: S3Storage, tarball: Path, operation: str
) -> None:
    uri = "s3://no-such-bucket/mlsync/x"
    with pytest.raises(GatewayError) as raised:
        if operation == "put_document":
            storage.put_document(Document(uri, b"{}", "sha256:00"))
        else:
            storage.upload_file(tarball, uri)

    assert raised.value.code == "NoSuchBucket"
    assert "create bucket 'no-such-bucket'" in str(raised.value)
    assert "MLSYNC_S3_PREFIX" in str(raised.value)


def test_missing_bucket_behind_a_bare_404_head_is_reported_by_the_upload(
    storage: S3Storage, clients: AwsClients, tarball: Path
) -> None:
    # Real S3 answers HEAD without a body: a missing bucket looks like a missing key ("404"); moto
    # names NoSuchBucket even there. The managed upload then fails with NoSuchBucket, wrapped by boto3.
    with Stubber(clients.s3) as stub:
        stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
        stub.add_client_error(
            "put_object",
            service_error_code="NoSuchBucket",
            service_message="The specified bucket does not exist",
            http_status_code=404,
        )
        with pytest.raises(GatewayError, match=r"Upload s3://mlsync-artifacts/.*create bucket") as raised:
            storage.upload_file(tarball, URI)

    assert raised.value.code == "NoSuchBucket"


def test_forbidden_head_is_an_error_not_a_missing_object(
    storage: S3Storage, clients: AwsClients, tarball: Path
) -> None:
    # Without s3:ListBucket, S3 answers 403 for a key that does not exist: uploading blindly would hide it.
    with Stubber(clients.s3) as stub:
        stub.add_client_error("head_object", service_error_code="403", http_status_code=403)
        with pytest.raises(GatewayError, match="HeadObject s3://mlsync-artifacts/") as raised:
            storage.upload_file(tarball, URI)
        stub.assert_no_pending_responses()

    assert raised.value.code == "403"
