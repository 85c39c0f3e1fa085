"""SageMakerRegistry: behaviour against moto, requests as sent, and real-API answers moto cannot give.

moto ignores `ClientToken`, drops `ModelLifeCycle` and replaces metadata on update, so those are
asserted on the recorded request; answers moto gives differently from SageMaker (a duplicate group,
a package with a lifecycle) come from botocore's Stubber, which checks them against the service model.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.stub import Stubber
from moto import mock_aws
from recorded_calls import RecordedCalls, record_calls

from mlflow_sagemaker_registry.domain import (
    ApprovalStatus,
    Container,
    Document,
    GroupListing,
    GroupSpec,
    Inference,
    Lifecycle,
    ModelCard,
    ObservedGroup,
    ObservedPackage,
    PackageSpec,
    PackageSummary,
    PackageUpdate,
)
from mlflow_sagemaker_registry.emulator import emulated_aws
from mlflow_sagemaker_registry.errors import GatewayError, NotFoundError
from mlflow_sagemaker_registry.gateways.aws import AwsClients, aws_clients
from mlflow_sagemaker_registry.gateways.sagemaker import SageMakerRegistry
from mlflow_sagemaker_registry.mapping.identity import KEY_MODEL

ACCOUNT = "123456789012"  # moto's account
GROUP = "churn-model"
DIGEST = "sha256:" + "ab" * 32
GROUP_ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package-group/{GROUP}"
CARD = ModelCard('{"intended_uses":{"intended_uses":"churn scoring"}}', "PendingReview")
SENT_CARD = {"ModelCardContent": CARD.content, "ModelCardStatus": "PendingReview"}


@pytest.fixture
def clients() -> Iterator[AwsClients]:
    with mock_aws():
        yield aws_clients("us-east-1")


@pytest.fixture
def registry(clients: AwsClients) -> SageMakerRegistry:
    return SageMakerRegistry(clients.sagemaker, clients.sts)


@pytest.fixture
def calls(clients: AwsClients) -> RecordedCalls:
    return record_calls(clients.sagemaker)


@pytest.fixture
def group(registry: SageMakerRegistry) -> str:
    registry.create_group(GroupSpec(GROUP, "churn", "Churn model", {}))
    return GROUP


def package_spec(**overrides: Any) -> PackageSpec:
    """A spec with every optional field set; tests blank the ones they need empty."""
    spec = PackageSpec(
        group_name=GROUP,
        model_name="churn",
        version="3",
        client_token="mlsync-0123456789abcdef",
        approval=ApprovalStatus.APPROVED,
        lifecycle=Lifecycle("Production", "Approved"),
        customer_metadata={"mlflow.model": "churn", "mlflow.version": "3"},
        description="Gradient boosting, 0.91 accuracy",
        metadata_properties={
            "GeneratedBy": "mlsync",
            "Repository": "git@example.com:ml/churn.git",
            "CommitId": "",
        },
        run_document=Document("s3://bucket/mlsync/runs/r1.json", b"{}", DIGEST),
        quality_statistics=Document("s3://bucket/mlsync/quality/q1.json", b"{}", DIGEST),
        model_card=CARD,
    )
    return replace(spec, **overrides)


CONTAINER = Container(
    image=f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:3.17.2",
    model_data_url=f"s3://bucket/mlsync/artifacts/{'ab' * 32}/model.tar.gz",
    environment={"MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function"},
    framework="SKLEARN",
    framework_version="1.5.2",
)
SERVED = Inference(CONTAINER, ("application/json", "text/csv"), ("application/json",))


def test_listing_a_missing_group_is_none(registry: SageMakerRegistry) -> None:
    assert registry.list_group("no-such-group") is None


def test_create_group_sends_description_and_sorted_tags(
    registry: SageMakerRegistry, calls: RecordedCalls
) -> None:
    registry.create_group(GroupSpec(GROUP, "churn", "Churn model", {"team": "risk", "mlflow.model": "churn"}))

    assert calls.of("CreateModelPackageGroup") == [
        {
            "ModelPackageGroupName": GROUP,
            "ModelPackageGroupDescription": "Churn model",
            "Tags": [{"Key": "mlflow.model", "Value": "churn"}, {"Key": "team", "Value": "risk"}],
        }
    ]
    assert registry.list_group(GROUP) == GroupListing(GROUP, "Churn model", ())


def test_create_group_that_a_concurrent_push_made_succeeds_quietly(
    registry: SageMakerRegistry, clients: AwsClients
) -> None:
    # moto silently replaces a duplicate group; SageMaker refuses it like this.
    with Stubber(clients.sagemaker) as stub:
        stub.add_client_error(
            "create_model_package_group",
            service_error_code="ValidationException",
            service_message=f"Model Package Group already exists: {GROUP_ARN}",
        )
        stub.add_response(
            "describe_model_package_group",
            {
                "ModelPackageGroupName": GROUP,
                "ModelPackageGroupArn": GROUP_ARN,
                "CreationTime": datetime.datetime(2026, 1, 1),
                "CreatedBy": {},
                "ModelPackageGroupStatus": "Completed",
            },
        )
        stub.add_response("list_tags", {"Tags": [{"Key": KEY_MODEL, "Value": "churn"}]})
        registry.create_group(GroupSpec(GROUP, "churn", "Churn model", {KEY_MODEL: "churn"}))
        stub.assert_no_pending_responses()


def test_a_group_name_taken_ignoring_case_by_another_model_is_a_clear_error() -> None:
    """SageMaker compares group names without case; the emulator does too (and looks them up exactly)."""
    with emulated_aws():
        clients = aws_clients("us-east-1", "standard", 1)
        registry = SageMakerRegistry(clients.sagemaker, clients.sts)
        registry.create_group(
            GroupSpec("Churn", "Churn", "MLflow registered model Churn", {KEY_MODEL: "Churn"})
        )
        with pytest.raises(
            GatewayError, match="not MLflow model 'churn''s, and mlsync never files"
        ) as raised:
            registry.create_group(
                GroupSpec("churn", "churn", "MLflow registered model churn", {KEY_MODEL: "churn"})
            )
    assert raised.value.code == "Conflict"
    assert "already exists" in str(raised.value)


def test_create_group_other_failures_name_the_group_and_aws_message(
    registry: SageMakerRegistry, clients: AwsClients
) -> None:
    with Stubber(clients.sagemaker) as stub:
        stub.add_client_error(
            "create_model_package_group",
            service_error_code="ResourceLimitExceeded",
            service_message="The account-level service limit 'Total number of model package groups' is 1000",
        )
        with pytest.raises(GatewayError, match=rf"CreateModelPackageGroup {GROUP}.*service limit") as raised:
            registry.create_group(GroupSpec(GROUP, "churn", "Churn model", {}))
    assert raised.value.code == "ResourceLimitExceeded"


def test_create_package_sends_every_field_of_the_real_api(
    registry: SageMakerRegistry, group: str, calls: RecordedCalls
) -> None:
    arn = registry.create_package(package_spec(), SERVED)

    assert arn.endswith(f"model-package/{group}/1")
    assert calls.of("CreateModelPackage") == [
        {
            "ModelPackageGroupName": GROUP,
            "ClientToken": "mlsync-0123456789abcdef",
            "ModelApprovalStatus": "Approved",
            "ModelPackageDescription": "Gradient boosting, 0.91 accuracy",
            "CustomerMetadataProperties": {"mlflow.model": "churn", "mlflow.version": "3"},
            "MetadataProperties": {"GeneratedBy": "mlsync", "Repository": "git@example.com:ml/churn.git"},
            "ModelMetrics": {
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": "s3://bucket/mlsync/quality/q1.json",
                        "ContentDigest": DIGEST,
                    }
                }
            },
            "ModelLifeCycle": {"Stage": "Production", "StageStatus": "Approved"},
            "ModelCard": SENT_CARD,
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": CONTAINER.image,
                        "ModelDataUrl": CONTAINER.model_data_url,
                        "Environment": {"MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function"},
                        "Framework": "SKLEARN",
                        "FrameworkVersion": "1.5.2",
                    }
                ],
                "SupportedContentTypes": ["application/json", "text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        }
    ]
    assert calls.of("UpdateModelPackage") == []


def test_create_package_leaves_out_empty_optional_fields(
    registry: SageMakerRegistry, group: str, calls: RecordedCalls
) -> None:
    spec = package_spec(
        lifecycle=None,
        customer_metadata={},
        description="",
        metadata_properties={"GeneratedBy": ""},
        quality_statistics=None,
        approval=ApprovalStatus.PENDING,
        model_card=None,
    )
    container = Container(image="image:1", model_data_url="s3://bucket/model.tar.gz")
    registry.create_package(spec, replace(SERVED, container=container))

    assert calls.of("CreateModelPackage") == [
        {
            "ModelPackageGroupName": group,
            "ClientToken": spec.client_token,
            "ModelApprovalStatus": "PendingManualApproval",
            "InferenceSpecification": {
                "Containers": [{"Image": "image:1", "ModelDataUrl": "s3://bucket/model.tar.gz"}],
                "SupportedContentTypes": ["application/json", "text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        }
    ]


def test_create_is_one_call_and_sends_no_approval_description(
    registry: SageMakerRegistry, group: str, calls: RecordedCalls
) -> None:
    registry.create_package(package_spec(approval_reason="approved by rule: accuracy >= 0.9"), SERVED)

    assert "ApprovalDescription" not in calls.of("CreateModelPackage")[0]
    assert calls.operations[-1] == "CreateModelPackage"
    assert calls.of("UpdateModelPackage") == []


def test_created_package_is_observed(registry: SageMakerRegistry, group: str) -> None:
    arn = registry.create_package(package_spec(), SERVED)

    listing = registry.list_group(group)

    assert listing is not None
    (summary,) = listing.summaries
    package = registry.describe_package(summary.arn)
    # lifecycle is left out: moto drops ModelLifeCycle (its parsing is tested with a Stubber below).
    assert replace(package, lifecycle=None) == ObservedPackage(
        arn=arn,
        group_name=group,
        package_version=1,
        approval=ApprovalStatus.APPROVED,
        lifecycle=None,
        customer_metadata={"mlflow.model": "churn", "mlflow.version": "3"},
        description="Gradient boosting, 0.91 accuracy",
        metadata_properties={"GeneratedBy": "mlsync", "Repository": "git@example.com:ml/churn.git"},
        quality_statistics_digest=DIGEST,
        model_data_url=CONTAINER.model_data_url,
        status="Completed",
        quality_statistics_uri="s3://bucket/mlsync/quality/q1.json",
    )


def test_observe_reads_every_field_of_a_real_describe_answer(
    registry: SageMakerRegistry, clients: AwsClients
) -> None:
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/{GROUP}/2"
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    with Stubber(clients.sagemaker) as stub:
        stub.add_response(
            "describe_model_package_group",
            {
                "ModelPackageGroupName": GROUP,
                "ModelPackageGroupArn": GROUP_ARN,
                "ModelPackageGroupDescription": "Churn model",
                "CreationTime": now,
                "CreatedBy": {},
                "ModelPackageGroupStatus": "Completed",
            },
            {"ModelPackageGroupName": GROUP},
        )
        stub.add_response(
            "list_model_packages",
            {
                "ModelPackageSummaryList": [
                    {
                        "ModelPackageArn": arn,
                        "ModelPackageGroupName": GROUP,
                        "ModelPackageVersion": 2,
                        "CreationTime": now,
                        "ModelPackageStatus": "Completed",
                        "ModelApprovalStatus": "Rejected",
                        "ModelLifeCycle": {"Stage": "Archived", "StageStatus": "Retired"},
                    }
                ]
            },
            {"ModelPackageGroupName": GROUP, "MaxResults": 100},
        )
        described = {
            "ModelPackageName": GROUP,
            "ModelPackageGroupName": GROUP,
            "ModelPackageVersion": 2,
            "ModelPackageArn": arn,
            "CreationTime": now,
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "ModelApprovalStatus": "Rejected",
            "ModelLifeCycle": {"Stage": "Archived", "StageStatus": "Retired"},
            "CustomerMetadataProperties": {"mlflow.version": "2"},
            "ModelCard": SENT_CARD,
        }
        listing = registry.list_group(GROUP)
        stub.assert_no_pending_responses()
        stub.add_response("describe_model_package", described, {"ModelPackageName": arn})
        observed = (
            ObservedGroup(
                GROUP, "Churn model", tuple(registry.describe_package(s.arn) for s in listing.summaries)
            )
            if listing
            else None
        )
        stub.assert_no_pending_responses()

    assert listing == GroupListing(
        GROUP,
        "Churn model",
        (PackageSummary(arn, 2, ApprovalStatus.REJECTED, Lifecycle("Archived", "Retired")),),
    )

    assert observed == ObservedGroup(
        GROUP,
        "Churn model",
        (
            ObservedPackage(
                arn=arn,
                group_name=GROUP,
                package_version=2,
                approval=ApprovalStatus.REJECTED,
                lifecycle=Lifecycle("Archived", "Retired"),
                customer_metadata={"mlflow.version": "2"},
                model_card=CARD,
            ),
        ),
    )


def test_listing_pages_through_more_than_100_packages_sorted_by_version(
    registry: SageMakerRegistry, clients: AwsClients, group: str, calls: RecordedCalls
) -> None:
    for number in range(1, 106):
        clients.sagemaker.create_model_package(
            ModelPackageGroupName=group,
            InferenceSpecification={"Containers": [{"Image": "image:1", "ModelDataUrl": f"s3://b/{number}"}]},
        )

    listing = registry.list_group(group)

    assert listing is not None
    assert [summary.package_version for summary in listing.summaries] == list(range(1, 106))
    assert registry.describe_package(listing.summaries[104].arn).model_data_url == "s3://b/105"
    pages = calls.of("ListModelPackages")
    assert len(pages) == 2
    assert all(page["ModelPackageGroupName"] == group for page in pages)
    assert len(calls.of("DescribeModelPackage")) == 1  # summaries need no describe


def test_update_with_nothing_given_sends_nothing(registry: SageMakerRegistry, calls: RecordedCalls) -> None:
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/{GROUP}/1"

    registry.update_package(arn, PackageUpdate())
    registry.update_package(arn, PackageUpdate(approval_reason="", metadata_set={}, metadata_remove=()))

    assert calls.calls == []


@pytest.mark.parametrize(
    ("changes", "sent"),
    [
        ({"approval": ApprovalStatus.REJECTED}, {"ModelApprovalStatus": "Rejected"}),
        (
            {"approval": ApprovalStatus.APPROVED, "approval_reason": "alias champion"},
            {"ModelApprovalStatus": "Approved", "ApprovalDescription": "alias champion"},
        ),
        (
            {"lifecycle": Lifecycle("QA", "InProgress")},
            {"ModelLifeCycle": {"Stage": "QA", "StageStatus": "InProgress"}},
        ),
        (
            {
                "metadata_set": {"mlflow.stage": "Staging"},
                "metadata_remove": ("mlflow.alias", "mlflow.alias", "b"),
            },
            {
                "CustomerMetadataProperties": {"mlflow.stage": "Staging"},
                "CustomerMetadataPropertiesToRemove": ["b", "mlflow.alias"],
            },
        ),
        # Both members, always: an update replaces the whole card.
        ({"model_card": CARD}, {"ModelCard": SENT_CARD}),
    ],
)
def test_update_sends_only_the_fields_given(
    registry: SageMakerRegistry,
    group: str,
    calls: RecordedCalls,
    changes: dict[str, Any],
    sent: dict[str, Any],
) -> None:
    arn = registry.create_package(
        package_spec(customer_metadata={"mlflow.alias": "champion", "b": "1"}), SERVED
    )

    registry.update_package(arn, PackageUpdate(**changes))

    assert calls.of("UpdateModelPackage") == [{"ModelPackageArn": arn, **sent}]


def test_update_of_a_missing_package_is_not_found(registry: SageMakerRegistry, group: str) -> None:
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/{group}/9"
    with pytest.raises(NotFoundError, match=f"UpdateModelPackage {arn}"):
        registry.update_package(arn, PackageUpdate(approval=ApprovalStatus.APPROVED))


def test_create_package_in_a_missing_group_names_the_group_and_the_version(
    registry: SageMakerRegistry,
) -> None:
    with pytest.raises(NotFoundError) as raised:
        registry.create_package(package_spec(), SERVED)

    message = str(raised.value)
    assert "CreateModelPackage" in message
    assert f"{GROUP} (model 'churn' version 3)" in message
    assert "does not exist" in message


@pytest.mark.parametrize(
    ("region", "registry_host"),
    [
        ("us-east-1", f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"),
        ("cn-north-1", f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn"),
    ],
)
def test_default_image_is_the_account_mlflow_pyfunc_image_with_one_sts_call(
    region: str, registry_host: str
) -> None:
    with mock_aws():
        clients = aws_clients(region)
        sts_calls = record_calls(clients.sts)
        registry = SageMakerRegistry(clients.sagemaker, clients.sts)

        first = registry.default_image("3.17.2")
        second = registry.default_image("2.21.0")

    assert first == f"{registry_host}/mlflow-pyfunc:3.17.2"
    assert second == f"{registry_host}/mlflow-pyfunc:2.21.0"
    assert sts_calls.operations == ["GetCallerIdentity"]
