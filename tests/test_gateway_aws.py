"""aws_clients (region, retries, user agent, endpoint from boto3's chain) and the AWS error translation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ClientError, NoCredentialsError
from moto import mock_aws

from mlflow_sagemaker_registry.errors import ConfigError, GatewayError, NotFoundError
from mlflow_sagemaker_registry.gateways.aws import aws_clients, aws_errors


def client_error(code: str, message: str, operation: str = "DescribeModelPackageGroup") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_clients_share_region_retries_and_send_the_mlsync_user_agent() -> None:
    clients = aws_clients("eu-west-1", retry_mode="adaptive", max_attempts=4)
    sent: list[AWSPreparedRequest] = []
    clients.sts.meta.events.register("before-send", lambda request, **_: sent.append(request))

    with mock_aws():
        clients.sts.get_caller_identity()

    for client in (clients.sagemaker, clients.s3, clients.sts):
        assert client.meta.region_name == "eu-west-1"
        retries = client.meta.config.retries  # type: ignore[attr-defined]
        assert retries == {"mode": "adaptive", "total_max_attempts": 4}
    assert "mlsync/" in str(sent[0].headers["User-Agent"])


def test_region_comes_from_boto3_chain_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert aws_clients(None).sagemaker.meta.region_name == "ap-south-1"


def test_region_comes_from_the_session_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[profile ml]\nregion = eu-central-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    clients = aws_clients(None, session=boto3.Session(profile_name="ml"))

    assert clients.s3.meta.region_name == "eu-central-1"


def test_no_region_anywhere_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError, match="set --region"):
        aws_clients(None)


def test_endpoint_url_is_left_to_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    assert aws_clients("us-east-1").sagemaker.meta.endpoint_url == "http://127.0.0.1:5999"


def test_unknown_retry_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"'eager'.*legacy, standard, adaptive"):
        aws_clients("us-east-1", retry_mode="eager")


@pytest.mark.parametrize(
    "error",
    [
        client_error(
            "ValidationException", "ModelPackageGroup arn:...:model-package-group/g does not exist."
        ),
        client_error("NoSuchBucket", "The specified bucket does not exist", "PutObject"),
        client_error("404", "Not Found", "HeadObject"),
    ],
)
def test_missing_resources_become_not_found(error: ClientError) -> None:
    with pytest.raises(NotFoundError), aws_errors("Op", "thing"):
        raise error


def test_message_names_operation_resource_aws_message_and_fix() -> None:
    with pytest.raises(GatewayError) as raised, aws_errors("CreateModelPackage", "group-a"):
        raise client_error("AccessDeniedException", "User is not authorized to perform sagemaker:Create")

    assert not isinstance(raised.value, NotFoundError)
    assert raised.value.code == "AccessDeniedException"
    assert str(raised.value) == (
        "CreateModelPackage group-a failed: User is not authorized to perform sagemaker:Create "
        "(AccessDeniedException). Fix: check that the AWS credentials in use are allowed this action"
    )


def test_caller_hints_are_used_for_their_codes() -> None:
    hints = {"NoSuchBucket": "create bucket 'b'"}
    with (
        pytest.raises(GatewayError, match="Fix: create bucket 'b'"),
        aws_errors("PutObject", "s3://b/k", hints),
    ):
        raise client_error("NoSuchBucket", "The specified bucket does not exist", "PutObject")


def test_errors_raised_before_any_request_get_a_fix() -> None:
    expected = r"Unable to locate credentials.*Fix: configure AWS credentials"
    with pytest.raises(GatewayError, match=expected), aws_errors("GetCallerIdentity", "the caller"):
        raise NoCredentialsError()


def test_managed_upload_failures_are_read_from_the_wrapped_client_error() -> None:
    def upload() -> Any:
        try:
            raise client_error("NoSuchBucket", "The specified bucket does not exist", "PutObject")
        except ClientError as exc:
            raise S3UploadFailedError(f"Failed to upload f to b/k: {exc}")  # noqa: B904 (as boto3 does)

    with pytest.raises(NotFoundError) as raised, aws_errors("Upload", "s3://b/k"):
        upload()
    assert raised.value.code == "NoSuchBucket"


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(ValueError, match="a bug"), aws_errors("Op", "thing"):
        raise ValueError("a bug")
