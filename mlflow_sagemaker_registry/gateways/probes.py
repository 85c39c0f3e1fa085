"""What `mlsync doctor` asks AWS: who the credentials are, the region, an S3 write, SageMaker's answers.

The clients are mlsync's own (`aws_clients`: the same credentials, region, endpoint and retry mode),
built on the first question, with at most `DOCTOR_ATTEMPTS` attempts a call: doctor diagnoses, it does
not ride out an outage. Failures leave as GatewayError (`aws_errors`), whose code the checklist reads.

SageMaker has no dry run. IAM authorizes a request by the action and the ARN it names before SageMaker
looks the resource up, so a read naming a group that does not exist (PROBE_NAME under the group prefix,
inside the policy's resources) answers AccessDenied when the action is not allowed, and "does not
exist" when it is. Writes are not tried: a refused write and a write that happens cannot be told apart
in advance, and doctor never writes to the registry.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session

from ..config import Settings
from ..doctor import PROBE_BODY, PROBE_NAME, Identity, ProbeObject, Region
from ..domain import Document
from ..errors import GatewayError, NotFoundError
from ..mapping.identity import group_name
from .aws import AwsClients, aws_clients, aws_errors
from .s3 import S3Storage, parse_s3_uri
from .sagemaker import SageMakerRegistry

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

DOCTOR_ATTEMPTS = 2
"""Attempts a call at most (the settings' `max_attempts` if lower): one retry of a transient failure."""

_Read = Callable[["SageMakerClient", "_ProbeGroup"], object]


class _ProbeGroup:
    """The group doctor reads: PROBE_NAME under the group prefix, so the policy's resources cover it."""

    def __init__(self, settings: Settings, region: str, account: str, partition: str) -> None:
        self.name = group_name(PROBE_NAME, settings.group_prefix)
        base = f"arn:{partition}:sagemaker:{region}:{account}"
        self.arn = f"{base}:model-package-group/{self.name}"
        self.package_arn = f"{base}:model-package/{self.name}/1"


# A harmless call per SageMaker action mlsync makes that has one; iam_policy lists the actions.
_READS: Mapping[str, _Read] = {
    "ListModelPackageGroups": lambda sm, group: sm.list_model_package_groups(
        NameContains=group.name, MaxResults=1
    ),
    "ListModelPackages": lambda sm, group: sm.list_model_packages(
        ModelPackageGroupName=group.name, MaxResults=1
    ),
    "DescribeModelPackageGroup": lambda sm, group: sm.describe_model_package_group(
        ModelPackageGroupName=group.name
    ),
    "DescribeModelPackage": lambda sm, group: sm.describe_model_package(ModelPackageName=group.package_arn),
    "ListTags": lambda sm, group: sm.list_tags(ResourceArn=group.arn, MaxResults=50),
    "GetModelPackageGroupPolicy": lambda sm, group: sm.get_model_package_group_policy(
        ModelPackageGroupName=group.name
    ),
}


class AwsProbes:
    """The AWS half of `doctor.Probes`, over the clients mlsync itself would use."""

    def __init__(self, settings: Settings, session: boto3.Session | None = None) -> None:
        self._settings = settings
        self._session = session or boto3.Session()

    def region(self) -> Region:
        """The region as `aws_clients` resolves it, and whether botocore knows SageMaker there."""
        name = self._settings.region or self._session.region_name
        origin = (
            "the settings" if self._settings.region else "boto3's chain: AWS_DEFAULT_REGION or the profile"
        )
        known = name is not None and any(
            name in self._session.get_available_regions("sagemaker", partition_name=partition)
            for partition in self._session.get_available_partitions()
        )
        return Region(name, origin, known)

    def identity(self) -> Identity:
        return self._identity

    @cached_property
    def _identity(self) -> Identity:
        """Asked of STS once: the SageMaker probes need the account for their ARNs too."""
        sts = self._clients.sts
        with aws_errors("GetCallerIdentity", "the current AWS credentials"):
            answer = sts.get_caller_identity()
        return Identity(answer["Account"], answer["Arn"], sts.meta.endpoint_url)

    def write_probe(self, s3_uri: str) -> ProbeObject:
        """PutObject as mlsync writes its documents, then DeleteObject; a refused delete is reported, not
        raised (mlsync's policy has no s3:DeleteObject)."""
        digest = f"sha256:{hashlib.sha256(PROBE_BODY).hexdigest()}"
        S3Storage(self._clients.s3).put_document(Document(s3_uri, PROBE_BODY, digest))
        bucket, key = parse_s3_uri(s3_uri)
        try:
            with aws_errors("DeleteObject", s3_uri):
                self._clients.s3.delete_object(Bucket=bucket, Key=key)
        except GatewayError as exc:
            return ProbeObject(s3_uri, removal_problem=str(exc))
        return ProbeObject(s3_uri)

    def sagemaker_read(self, operation: str) -> bool:
        """See the module docstring; "does not exist" means the call was allowed."""
        read = _READS.get(operation)
        if read is None:
            return False
        try:
            with aws_errors(operation, self._probe_group.name):
                read(self._clients.sagemaker, self._probe_group)
        except NotFoundError:
            pass
        return True

    def default_image(self, mlflow_version: str) -> str:
        """The gateway's own default (`SageMakerRegistry.default_image`)."""
        clients = self._clients
        return SageMakerRegistry(clients.sagemaker, clients.sts).default_image(mlflow_version)

    def image_problem(self, image: str) -> str | None:
        """The container image's constraints from botocore's SageMaker service model (`ContainerImage`)."""
        constraints = _image_constraints()
        if len(image) > constraints.get("max", len(image)):
            return f"longer than the {constraints['max']} characters SageMaker takes"
        pattern = constraints.get("pattern")
        if pattern is not None and not re.fullmatch(pattern, image):
            return f"not an image URI (SageMaker's pattern is {pattern})"
        return None

    @cached_property
    def _clients(self) -> AwsClients:
        settings = self._settings
        attempts = min(settings.max_attempts, DOCTOR_ATTEMPTS)
        return aws_clients(settings.region, settings.retry_mode, attempts, session=self._session)

    @cached_property
    def _probe_group(self) -> _ProbeGroup:
        region = self._clients.sagemaker.meta.region_name
        partition = self._session.get_partition_for_region(region)
        return _ProbeGroup(self._settings, region, self._identity.account, partition)


def _image_constraints() -> Mapping[str, Any]:
    service = botocore.session.get_session().get_service_model("sagemaker")
    shape = service.shape_for("ContainerImage")
    return shape.metadata
