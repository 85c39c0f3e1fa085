"""boto3 clients and the one translation of AWS failures into mlsync's errors.

Credentials, profile, region and `AWS_ENDPOINT_URL` all come from boto3's own resolution chain, so
mlsync behaves like the AWS CLI with the same environment; this module never reads `os.environ`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast, get_args

import boto3
import botocore.session
from boto3.exceptions import Boto3Error, S3UploadFailedError
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from ..errors import ConfigError, GatewayError, NotFoundError
from ..versions import installed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sts import STSClient

RetryMode = Literal["legacy", "standard", "adaptive"]
_BOTOCORE_POOL = 10  # botocore's default `max_pool_connections`

# Codes meaning "the named resource is not there". SageMaker has no such code: it answers a missing
# group or package with a ValidationException whose message says so (see `_is_not_found`).
_NOT_FOUND_CODES = frozenset({"404", "NoSuchBucket", "NoSuchKey", "NotFound", "ResourceNotFound"})

# What to do next, for the failures a user can fix without reading a traceback.
_HINTS: Mapping[str, str] = {
    "AccessDenied": "check that the AWS credentials in use are allowed this action",
    "AccessDeniedException": "check that the AWS credentials in use are allowed this action",
    "ThrottlingException": "AWS kept throttling after botocore's retries; rerun later or raise max attempts",
    "ExpiredToken": "refresh the AWS credentials (e.g. `aws sso login`)",
    "ExpiredTokenException": "refresh the AWS credentials (e.g. `aws sso login`)",
}


@dataclass(frozen=True)
class AwsClients:
    """The three boto3 clients mlsync uses, built with one shared retry and user-agent config."""

    sagemaker: SageMakerClient
    s3: S3Client
    sts: STSClient


def aws_clients(
    region: str | None,
    retry_mode: str = "standard",
    max_attempts: int = 10,
    session: boto3.Session | None = None,
    concurrency: int = 1,
) -> AwsClients:
    """Build the SageMaker, S3 and STS clients for one region.

    Args:
        region: an explicit region (`--region`); None lets boto3 resolve it (AWS_DEFAULT_REGION, profile).
        retry_mode: botocore's retry mode; "standard" and "adaptive" also retry ThrottlingException.
        max_attempts: attempts per call, the first one included (as AWS_MAX_ATTEMPTS counts them).
        session: a boto3 session (a profile); None uses boto3's default credential chain.
        concurrency: requests the caller makes at once; each client keeps that many connections open
            (botocore's default pool of 10 would make the rest wait and warn).

    Raises:
        ConfigError: no region could be resolved, or the retry mode is unknown.
    """
    session = session or boto3.Session()
    resolved = region or session.region_name
    if not resolved:
        raise ConfigError(
            "no AWS region found: set --region (MLSYNC_REGION), AWS_DEFAULT_REGION "
            "or a region in your AWS profile (boto3 does not read AWS_REGION)"
        )
    config = Config(
        region_name=resolved,
        # botocore's `max_attempts` counts retries only; `total_max_attempts` is AWS_MAX_ATTEMPTS' meaning.
        retries={"mode": _retry_mode(retry_mode), "total_max_attempts": max_attempts},
        user_agent_extra=f"mlsync/{installed()}",  # shows mlsync's calls apart in CloudTrail
        max_pool_connections=max(_BOTOCORE_POOL, concurrency),
    )
    return AwsClients(
        sagemaker=session.client("sagemaker", config=config),
        s3=session.client("s3", config=config),
        sts=session.client("sts", config=config),
    )


ROLE_SESSION_NAME = "mlsync"
"""The session name of an assumed role: CloudTrail shows mlsync's calls under `assumed-role/<role>/mlsync`."""


def aws_session(
    profile: str | None = None, role_arn: str | None = None, external_id: str | None = None
) -> boto3.Session:
    """The boto3 session of one target: boto3's default chain, a `profile`, or `role_arn` assumed.

    A role is assumed with the default chain's credentials through botocore's own assume-role support
    (`AssumeRoleCredentialFetcher` behind `DeferredRefreshableCredentials`, as a profile with `role_arn`
    gets): nothing is asked of STS until the first call, and botocore refreshes the credentials before
    they expire. `external_id` is passed to `AssumeRole` as the role's trust policy may require.
    """
    if role_arn is None:
        return boto3.Session(profile_name=profile)
    source = botocore.session.Session()
    extra = {"RoleSessionName": ROLE_SESSION_NAME} | ({"ExternalId": external_id} if external_id else {})
    fetcher = AssumeRoleCredentialFetcher(
        source.create_client, source.get_credentials(), role_arn, extra_args=extra
    )
    assumed = botocore.session.Session()
    resolver = assumed.get_component("credential_provider")
    resolver.insert_before(
        "env", _Fixed(DeferredRefreshableCredentials(fetcher.fetch_credentials, "assume-role"))
    )
    return boto3.Session(botocore_session=assumed)


class _Fixed(CredentialProvider):
    """A credential provider that answers with credentials made beforehand (the assumed role's)."""

    METHOD = "assume-role"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def _retry_mode(value: str) -> RetryMode:
    """Validate a retry mode from flags or settings before botocore rejects it with a stack trace."""
    if value not in get_args(RetryMode):
        raise ConfigError(f"unknown AWS retry mode {value!r}: use one of {', '.join(get_args(RetryMode))}")
    return cast(RetryMode, value)


@contextmanager
def aws_errors(operation: str, resource: str, hints: Mapping[str, str] | None = None) -> Iterator[None]:
    """Turn any botocore or boto3 failure inside the block into a GatewayError (NotFoundError if absent).

    The message names the operation, the resource and AWS's own message, plus what to do next when
    the error code has a known fix; callers may add hints of their own (keyed by AWS error code).
    """
    try:
        yield
    except (ClientError, BotoCoreError, Boto3Error) as exc:
        raise _gateway_error(operation, resource, exc, {**_HINTS, **(hints or {})}) from exc


def _gateway_error(operation: str, resource: str, exc: Exception, hints: Mapping[str, str]) -> GatewayError:
    cause = _client_error(exc)
    if cause is None:
        code, message, hint, missing = type(exc).__name__, str(exc), _local_hint(exc), False
    else:
        error = cause.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "") or str(cause)
        hint, missing = hints.get(code, ""), _is_not_found(code, message)
    text = f"{operation} {resource} failed: {message} ({code})" + (f". Fix: {hint}" if hint else "")
    return (NotFoundError if missing else GatewayError)(text, code=code)


def _client_error(exc: Exception) -> ClientError | None:
    """The ClientError behind `exc`; boto3's managed upload wraps it in S3UploadFailedError, unchained."""
    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
        return exc.__context__
    return exc if isinstance(exc, ClientError) else None


def _is_not_found(code: str, message: str) -> bool:
    lowered = message.lower()
    sagemaker_missing = code == "ValidationException" and (
        "does not exist" in lowered or "not found" in lowered
    )
    return code in _NOT_FOUND_CODES or sagemaker_missing


def _local_hint(exc: Exception) -> str:
    """A fix for failures raised before any request reaches AWS."""
    if isinstance(exc, NoCredentialsError):
        return (
            "configure AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a role)"
        )
    if isinstance(exc, EndpointConnectionError):
        return "check the network, and AWS_ENDPOINT_URL if you set one"
    return ""
