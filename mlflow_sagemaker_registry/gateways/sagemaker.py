"""The SageMaker Model Registry over boto3: `ports.Registry` for the executor.

Requests follow the real API (botocore's service model), not moto: moto ignores `ClientToken`, drops
`ModelLifeCycle` and replaces metadata on update, and none of that is worked around here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, cast

from botocore.exceptions import ClientError

from ..domain import (
    ApprovalStatus,
    Container,
    GroupListing,
    GroupSpec,
    Inference,
    Lifecycle,
    ModelCard,
    ObservedPackage,
    PackageSpec,
    PackageSummary,
    PackageUpdate,
)
from ..errors import GatewayError, NotFoundError
from ..mapping.identity import owner_of
from .aws import aws_errors

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.literals import (
        ModelCardStatusType,
        ProductionVariantInstanceTypeType,
        TransformInstanceTypeType,
    )
    from mypy_boto3_sagemaker.type_defs import (
        CreateModelPackageInputTypeDef,
        DescribeModelPackageOutputTypeDef,
        InferenceSpecificationTypeDef,
        ListModelPackageGroupsInputPaginateTypeDef,
        ListModelPackagesInputPaginateTypeDef,
        MetadataPropertiesTypeDef,
        ModelLifeCycleTypeDef,
        ModelPackageContainerDefinitionOutputTypeDef,
        ModelPackageContainerDefinitionTypeDef,
        ModelPackageModelCardTypeDef,
        UpdateModelPackageInputTypeDef,
        UserContextTypeDef,
    )
    from mypy_boto3_sts import STSClient


_PAGE_SIZE = 100
"""The most a ListModelPackages or ListModelPackageGroups page holds (`MaxResults`)."""


class SageMakerRegistry:
    """`ports.Registry` over a boto3 SageMaker client (and STS, for the account of the default image)."""

    def __init__(self, sagemaker_client: SageMakerClient, sts_client: STSClient) -> None:
        self._sm = sagemaker_client
        self._sts = sts_client

    def list_group(self, group_name: str) -> GroupListing | None:
        """The group and the summaries of its packages by version; None when the group does not exist.

        One DescribeModelPackageGroup and one ListModelPackages per 100 packages: summaries carry the
        approval and lifecycle but no metadata (`describe_package` gets that, one call per package).
        """
        try:
            with aws_errors("DescribeModelPackageGroup", group_name):
                group = self._sm.describe_model_package_group(ModelPackageGroupName=group_name)
        except NotFoundError:
            return None
        summaries = [summary for _, summary in self._summaries(group_name)]
        return GroupListing(
            name=group["ModelPackageGroupName"],
            description=group.get("ModelPackageGroupDescription", ""),
            summaries=_in_version_order(summaries),
        )

    def list_groups(self, name_prefix: str = "") -> dict[str, GroupListing]:
        """Every group whose name starts with `name_prefix`, with its package summaries, by name.

        Two listings instead of one describe and one list per group: ListModelPackageGroups and
        ListModelPackages(ModelPackageType=Versioned) across the account, 100 per page, so a whole-registry
        reconcile costs ceil(groups / 100) + ceil(packages / 100) reads. A package listed for a group
        created after the group listing is left out: that group is seen by the next reconcile.
        """
        groups: dict[str, tuple[str, list[PackageSummary]]] = {}
        request: ListModelPackageGroupsInputPaginateTypeDef = {"PaginationConfig": {"PageSize": _PAGE_SIZE}}
        if name_prefix:
            request["NameContains"] = name_prefix  # a substring filter: the prefix is checked below
        paginator = self._sm.get_paginator("list_model_package_groups")
        with aws_errors("ListModelPackageGroups", f"the groups named {name_prefix}*"):
            for page in paginator.paginate(**request):
                for group in page["ModelPackageGroupSummaryList"]:
                    if group["ModelPackageGroupName"].startswith(name_prefix):
                        description = group.get("ModelPackageGroupDescription", "")
                        groups[group["ModelPackageGroupName"]] = (description, [])
        for group_name, summary in self._summaries(name_contains=name_prefix):
            if group_name in groups:
                groups[group_name][1].append(summary)
        return {
            name: GroupListing(name, description, _in_version_order(summaries))
            for name, (description, summaries) in groups.items()
        }

    def _summaries(
        self, group_name: str | None = None, name_contains: str = ""
    ) -> Iterator[tuple[str, PackageSummary]]:
        """The versioned packages of one group (or of every group), with their group's name, across pages.

        `ModelPackageGroupName` or `ModelPackageType` is what makes AWS list versioned packages at all.
        """
        request: ListModelPackagesInputPaginateTypeDef = {"PaginationConfig": {"PageSize": _PAGE_SIZE}}
        if group_name is not None:
            request["ModelPackageGroupName"] = group_name
        else:
            request["ModelPackageType"] = "Versioned"
        if name_contains:
            request["NameContains"] = name_contains
        paginator = self._sm.get_paginator("list_model_packages")
        with aws_errors("ListModelPackages", group_name or "the versioned packages"):
            for page in paginator.paginate(**request):
                for summary in page["ModelPackageSummaryList"]:
                    lifecycle = summary.get("ModelLifeCycle")
                    yield (
                        summary.get("ModelPackageGroupName", ""),
                        PackageSummary(
                            arn=summary["ModelPackageArn"],
                            package_version=summary.get("ModelPackageVersion", 0),
                            approval=ApprovalStatus(
                                summary.get("ModelApprovalStatus", ApprovalStatus.PENDING.value)
                            ),
                            lifecycle=Lifecycle(lifecycle["Stage"], lifecycle["StageStatus"])
                            if lifecycle
                            else None,
                            status=summary.get("ModelPackageStatus", "Completed"),
                        ),
                    )

    def describe_package(self, arn: str) -> ObservedPackage:
        """One package in full: metadata, creation-only fields, first container."""
        with aws_errors("DescribeModelPackage", arn):
            described = self._sm.describe_model_package(ModelPackageName=arn)
        return _observed(described)

    def group_tags(self, group_name: str) -> Mapping[str, str] | None:
        """DescribeModelPackageGroup (for its ARN) and ListTags; None when the group does not exist.

        A group holds at most 50 tags and ListTags answers at least 50 a page, so one page has them all.
        """
        try:
            with aws_errors("DescribeModelPackageGroup", group_name):
                arn = self._sm.describe_model_package_group(ModelPackageGroupName=group_name)[
                    "ModelPackageGroupArn"
                ]
        except NotFoundError:
            return None
        with aws_errors("ListTags", arn):
            tags = self._sm.list_tags(ResourceArn=arn, MaxResults=50)["Tags"]
        return {tag["Key"]: tag.get("Value", "") for tag in tags}

    def create_group(self, spec: GroupSpec) -> None:
        """Create the group; one that exists already is success only when its tag names the same model.

        SageMaker compares group names without case, so "already exists" may answer for another model's
        group (`Churn` beside `churn`) as well as for a concurrent push's: the owner tag tells them apart.

        Raises:
            GatewayError: the name is taken by another model's group, or by one mlsync did not make.
        """
        with aws_errors("CreateModelPackageGroup", spec.name):
            try:
                self._sm.create_model_package_group(
                    ModelPackageGroupName=spec.name,
                    ModelPackageGroupDescription=spec.description,
                    Tags=[{"Key": key, "Value": value} for key, value in sorted(spec.tags.items())],
                )
                return
            except ClientError as exc:
                if not _already_exists(exc):
                    raise
                answer = exc.response.get("Error", {}).get("Message", "")
        if owner_of(self.group_tags(spec.name) or {}) == spec.model_name:
            return  # a concurrent push made it
        raise GatewayError(
            f"CreateModelPackageGroup {spec.name}: {answer}. That group (names compare without case) is not "
            f"MLflow model {spec.model_name!r}'s, and mlsync never files one model's packages in another's "
            "group: rename one of the models or set group_prefix",
            code="Conflict",
        )

    def create_package(self, spec: PackageSpec, inference: Inference) -> str:
        """Create the versioned package; `spec.client_token` makes a retried create return the same ARN.

        CreateModelPackage has no `ApprovalDescription`; the reason for the initial approval is shown in
        the plan but not sent, as a second call per new version would double the writes of a push. Later
        approval changes carry their reason (`update_package`).
        """
        resource = f"{spec.group_name} (model {spec.model_name!r} version {spec.version})"
        with aws_errors("CreateModelPackage", resource):
            return self._sm.create_model_package(**_create_request(spec, inference))["ModelPackageArn"]

    def delete_package(self, arn: str) -> None:
        """DeleteModelPackage; one already gone counts as deleted (a retried or concurrent delete)."""
        try:
            with aws_errors("DeleteModelPackage", arn):
                self._sm.delete_model_package(ModelPackageName=arn)
        except NotFoundError:
            return

    def update_package(self, arn: str, change: PackageUpdate) -> None:
        """Send one UpdateModelPackage with only the fields `change` sets; nothing set sends nothing.

        SageMaker merges `CustomerMetadataProperties` into what is stored, so only changed keys are sent.
        """
        request = _update_request(arn, change)
        if request is None:
            return
        with aws_errors("UpdateModelPackage", arn):
            self._sm.update_model_package(**request)

    def group_arn(self, group_name: str) -> str:
        """`arn:<partition>:sagemaker:<region>:<account>:model-package-group/<name>`; the account is asked
        of STS once per registry."""
        region = self._sm.meta.region_name
        partition = self._sm.meta.partition
        return f"arn:{partition}:sagemaker:{region}:{self._account}:model-package-group/{group_name}"

    def get_group_policy(self, group_name: str) -> str | None:
        """GetModelPackageGroupPolicy; None when the group has no policy (or no longer exists)."""
        try:
            with aws_errors("GetModelPackageGroupPolicy", group_name):
                answer = self._sm.get_model_package_group_policy(ModelPackageGroupName=group_name)
        except NotFoundError:
            return None
        return answer.get("ResourcePolicy") or None

    def put_group_policy(self, group_name: str, policy: str) -> None:
        """PutModelPackageGroupPolicy (the group's name: the API takes no ARN here)."""
        with aws_errors("PutModelPackageGroupPolicy", group_name):
            self._sm.put_model_package_group_policy(ModelPackageGroupName=group_name, ResourcePolicy=policy)

    def delete_group_policy(self, group_name: str) -> None:
        """DeleteModelPackageGroupPolicy; a policy already gone counts as deleted."""
        try:
            with aws_errors("DeleteModelPackageGroupPolicy", group_name):
                self._sm.delete_model_package_group_policy(ModelPackageGroupName=group_name)
        except NotFoundError:
            return

    def default_image(self, mlflow_version: str) -> str:
        """The image `mlflow sagemaker build-and-push-container` pushes: this account's `mlflow-pyfunc`."""
        region = self._sm.meta.region_name
        domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return f"{self._account}.dkr.ecr.{region}.{domain}/mlflow-pyfunc:{mlflow_version}"

    @cached_property
    def _account(self) -> str:
        """The caller's account id, asked of STS once per registry (the credentials do not change)."""
        with aws_errors("GetCallerIdentity", "the current AWS credentials"):
            return self._sts.get_caller_identity()["Account"]


def _in_version_order(summaries: list[PackageSummary]) -> tuple[PackageSummary, ...]:
    return tuple(sorted(summaries, key=lambda summary: summary.package_version))


def _already_exists(exc: ClientError) -> bool:
    """SageMaker answers a duplicate group with a ValidationException saying it already exists."""
    error = exc.response.get("Error", {})
    return "already exists" in error.get("Message", "").lower()


def _observed(described: DescribeModelPackageOutputTypeDef) -> ObservedPackage:
    """An ObservedPackage from DescribeModelPackage; absent optional fields become empty values."""
    lifecycle = described.get("ModelLifeCycle")
    statistics = described.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
    containers = described.get("InferenceSpecification", {}).get("Containers", [])
    model_data_url, compressed = _model_data(containers[0]) if containers else (None, True)
    return ObservedPackage(
        arn=described["ModelPackageArn"],
        group_name=described["ModelPackageGroupName"],
        package_version=described["ModelPackageVersion"],
        approval=ApprovalStatus(described.get("ModelApprovalStatus", ApprovalStatus.PENDING.value)),
        lifecycle=Lifecycle(lifecycle["Stage"], lifecycle["StageStatus"]) if lifecycle else None,
        customer_metadata=described.get("CustomerMetadataProperties", {}),
        description=described.get("ModelPackageDescription", ""),
        metadata_properties=cast(Mapping[str, str], described.get("MetadataProperties", {})),
        quality_statistics_digest=statistics.get("ContentDigest"),
        model_data_url=model_data_url,
        status=described.get("ModelPackageStatus", "Completed"),
        quality_statistics_uri=statistics.get("S3Uri"),
        model_data_compressed=compressed,
        sample_payload_url=described.get("SamplePayloadUrl"),
        approval_description=described.get("ApprovalDescription", ""),
        modified_by=_who(described.get("LastModifiedBy", {})),
        modified_time=_when(described.get("LastModifiedTime")),
        model_card=_card(described.get("ModelCard")),
    )


def _card(card: ModelPackageModelCardTypeDef | None) -> ModelCard | None:
    """A described `ModelCard` (either member may be missing), or None when the package has none."""
    if card is None:
        return None
    return ModelCard(card.get("ModelCardContent", ""), card.get("ModelCardStatus", ""))


def _model_card(card: ModelCard) -> ModelPackageModelCardTypeDef:
    """Both members, always: UpdateModelPackage replaces the whole card."""
    return {"ModelCardContent": card.content, "ModelCardStatus": cast("ModelCardStatusType", card.status)}


def _who(user: UserContextTypeDef) -> str | None:
    """A person's name for a `UserContext`: the Studio user profile, else the IAM identity's ARN."""
    return user.get("UserProfileName") or user.get("IamIdentity", {}).get("Arn") or user.get("UserProfileArn")


def _when(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds") if moment else None


def _model_data(container: ModelPackageContainerDefinitionOutputTypeDef) -> tuple[str | None, bool]:
    """Where a container's model is, and whether it is a `model.tar.gz` (else an uncompressed prefix)."""
    source = container.get("ModelDataSource", {}).get("S3DataSource")
    if source is not None:
        return source["S3Uri"], source["CompressionType"] == "Gzip"
    return container.get("ModelDataUrl"), True


def _create_request(spec: PackageSpec, inference: Inference) -> CreateModelPackageInputTypeDef:
    """The CreateModelPackage request; optional fields are left out when empty (AWS rejects empty maps).

    `Domain`, `Task` and `SamplePayloadUrl` can only be set here: UpdateModelPackage cannot change them.
    """
    request: CreateModelPackageInputTypeDef = {
        "ModelPackageGroupName": spec.group_name,
        "ClientToken": spec.client_token,
        "ModelApprovalStatus": spec.approval.value,
        "InferenceSpecification": _inference_specification(inference),
    }
    if inference.domain:
        request["Domain"] = inference.domain
    if inference.task:
        request["Task"] = inference.task
    if inference.sample_payload_url:
        request["SamplePayloadUrl"] = inference.sample_payload_url
    if spec.description:
        request["ModelPackageDescription"] = spec.description
    if spec.customer_metadata:
        request["CustomerMetadataProperties"] = dict(spec.customer_metadata)
    properties = {key: value for key, value in spec.metadata_properties.items() if value}
    if properties:
        request["MetadataProperties"] = cast("MetadataPropertiesTypeDef", properties)
    if spec.quality_statistics is not None:
        statistics = spec.quality_statistics
        request["ModelMetrics"] = {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": statistics.content_type,
                    "S3Uri": statistics.s3_uri,
                    "ContentDigest": statistics.digest,
                }
            }
        }
    if spec.lifecycle is not None:
        request["ModelLifeCycle"] = _lifecycle(spec.lifecycle)
    if spec.model_card is not None:
        request["ModelCard"] = _model_card(spec.model_card)
    return request


def _inference_specification(inference: Inference) -> InferenceSpecificationTypeDef:
    """Containers, MIME types and instance types; an empty instance-type list is left out (min 1)."""
    specification: InferenceSpecificationTypeDef = {
        "Containers": [_container(inference.container)],
        "SupportedContentTypes": list(inference.content_types),
        "SupportedResponseMIMETypes": list(inference.response_types),
    }
    if inference.realtime_instance_types:
        specification["SupportedRealtimeInferenceInstanceTypes"] = cast(
            "list[ProductionVariantInstanceTypeType]", list(inference.realtime_instance_types)
        )
    if inference.transform_instance_types:
        specification["SupportedTransformInstanceTypes"] = cast(
            "list[TransformInstanceTypeType]", list(inference.transform_instance_types)
        )
    return specification


def _container(container: Container) -> ModelPackageContainerDefinitionTypeDef:
    """A `model.tar.gz` goes in `ModelDataUrl`; an uncompressed prefix in `ModelDataSource`."""
    definition: ModelPackageContainerDefinitionTypeDef = {"Image": container.image}
    if container.compressed:
        definition["ModelDataUrl"] = container.model_data_url
    else:
        definition["ModelDataSource"] = {
            "S3DataSource": {
                "S3Uri": container.model_data_url,
                "S3DataType": "S3Prefix",
                "CompressionType": "None",
            }
        }
    if container.environment:
        definition["Environment"] = dict(container.environment)
    if container.framework:
        definition["Framework"] = container.framework
    if container.framework_version:
        definition["FrameworkVersion"] = container.framework_version
    return definition


def _lifecycle(lifecycle: Lifecycle) -> ModelLifeCycleTypeDef:
    return {"Stage": lifecycle.stage, "StageStatus": lifecycle.stage_status}


def _update_request(arn: str, change: PackageUpdate) -> UpdateModelPackageInputTypeDef | None:
    """The UpdateModelPackage request with only what changes, or None when nothing does."""
    request: UpdateModelPackageInputTypeDef = {"ModelPackageArn": arn}
    if change.approval is not None:
        request["ModelApprovalStatus"] = change.approval.value
    if change.approval_reason:
        request["ApprovalDescription"] = change.approval_reason
    if change.lifecycle is not None:
        request["ModelLifeCycle"] = _lifecycle(change.lifecycle)
    if change.metadata_set:
        request["CustomerMetadataProperties"] = dict(change.metadata_set)
    removed = sorted(set(change.metadata_remove))
    if removed:
        request["CustomerMetadataPropertiesToRemove"] = removed
    if change.model_card is not None:
        request["ModelCard"] = _model_card(change.model_card)
    return request if len(request) > 1 else None
