"""The emulator, in process: each rule that makes it stricter than moto, through plain boto3 clients."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError

from mlflow_sagemaker_registry.emulator import Event, RegistryBackend, emulated_aws
from mlflow_sagemaker_registry.emulator.validation import service_model

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

REGION = "us-east-1"
ACCOUNT = "123456789012"
GROUP_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/churn"
CREATOR = "testing"  # the access key id of the module's session
REVIEWER = "reviewer-key"


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[RegistryBackend]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with emulated_aws() as emulated:
        yield emulated


@pytest.fixture(scope="module")
def session() -> boto3.session.Session:
    """One session for the module: a new one loads the large SageMaker model again (0.2 s a client)."""
    return boto3.session.Session(
        aws_access_key_id=CREATOR, aws_secret_access_key="testing", region_name=REGION
    )


@pytest.fixture(scope="module")
def reviewer_session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=REVIEWER, aws_secret_access_key="testing", region_name=REGION
    )


@pytest.fixture
def sm(backend: RegistryBackend, session: boto3.session.Session) -> SageMakerClient:
    return session.client("sagemaker")


@pytest.fixture
def raw_sm(backend: RegistryBackend, session: boto3.session.Session) -> SageMakerClient:
    """A client that skips botocore's own checks, so the emulator alone decides."""
    return session.client("sagemaker", config=Config(parameter_validation=False))


@pytest.fixture
def reviewer(backend: RegistryBackend, reviewer_session: boto3.session.Session) -> SageMakerClient:
    """Someone else in the same account: a client signed with another access key."""
    return reviewer_session.client("sagemaker")


@pytest.fixture
def group(sm: SageMakerClient) -> str:
    sm.create_model_package_group(ModelPackageGroupName="churn")
    return "churn"


def _error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = excinfo.value.response["Error"]
    return error["Code"], error["Message"]


def _create(sm: SageMakerClient, **extra: Any) -> str:
    return sm.create_model_package(ModelPackageGroupName="churn", **extra)["ModelPackageArn"]


def _identity(access_key_id: str) -> dict[str, Any]:
    return {
        "IamIdentity": {"Arn": f"arn:aws:iam::{ACCOUNT}:user/{access_key_id}", "PrincipalId": access_key_id}
    }


def _event_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- validation from the service model -------------------------------------------------------------


def test_group_name_outside_the_pattern_is_refused(sm: SageMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_model_package_group(ModelPackageGroupName="bad name_x")
    assert _error(excinfo) == (
        "ValidationException",
        "1 validation error detected: Value 'bad name_x' at 'modelPackageGroupName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
    )


def test_every_broken_rule_is_counted(sm: SageMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_model_package_group(ModelPackageGroupName="x_" * 40)
    message = _error(excinfo)[1]
    assert message.startswith("2 validation errors detected: ")
    assert "Member must have length less than or equal to 63; Value " in message


@pytest.mark.usefixtures("group")
def test_metadata_value_longer_than_256_is_refused(sm: SageMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        _create(sm, CustomerMetadataProperties={"params": "x" * 300})
    code, message = _error(excinfo)
    assert code == "ValidationException"
    assert f"Value '{{params={'x' * 300}}}' at 'customerMetadataProperties' failed" in message
    assert "Map value must satisfy constraint: [Member must have length less than or equal to 256]" in message


@pytest.mark.usefixtures("group")
@pytest.mark.parametrize("value", ["[1, 2]", "a,b", "{'a': 1}", "50%", 'say "hi"'])
def test_metadata_value_with_forbidden_characters_is_refused(sm: SageMakerClient, value: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        _create(sm, CustomerMetadataProperties={"k": value})
    assert (
        "Map value must satisfy constraint: [Member must satisfy regular expression pattern"
        in _error(excinfo)[1]
    )


@pytest.mark.usefixtures("group")
def test_metadata_value_that_is_a_list_is_refused_by_botocore_and_by_the_emulator(
    sm: SageMakerClient, raw_sm: SageMakerClient
) -> None:
    with pytest.raises(ParamValidationError):
        _create(sm, CustomerMetadataProperties={"k": [1, 2]})
    with pytest.raises(ClientError) as excinfo:
        _create(raw_sm, CustomerMetadataProperties={"k": [1, 2]})
    assert _error(excinfo)[0] == "SerializationException"


@pytest.mark.usefixtures("group")
def test_empty_metadata_value_is_refused(raw_sm: SageMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        _create(raw_sm, CustomerMetadataProperties={"k": ""})
    assert "[Member must have length greater than or equal to 1]" in _error(excinfo)[1]


@pytest.mark.usefixtures("group")
def test_more_than_50_metadata_entries_are_refused(sm: SageMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        _create(sm, CustomerMetadataProperties={f"k{i}": "v" for i in range(51)})
    assert "Member must have length less than or equal to 50" in _error(excinfo)[1]


@pytest.mark.usefixtures("group")
def test_unicode_letters_are_fine_in_metadata(sm: SageMakerClient) -> None:
    arn = _create(sm, CustomerMetadataProperties={"auteur": "Zoé Müller 日本"})
    assert sm.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"] == {
        "auteur": "Zoé Müller 日本"
    }


@pytest.mark.usefixtures("group")
def test_life_cycle_stage_with_a_space_is_refused(sm: SageMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        _create(sm, ModelLifeCycle={"Stage": "Pre Production", "StageStatus": "Approved"})
    assert "at 'modelLifeCycle.stage'" in _error(excinfo)[1]


# -- groups ----------------------------------------------------------------------------------------


@pytest.mark.usefixtures("group")
@pytest.mark.parametrize("name", ["churn", "CHURN"])
def test_a_second_group_of_the_same_name_is_refused(sm: SageMakerClient, name: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_model_package_group(ModelPackageGroupName=name, ModelPackageGroupDescription="other")
    assert _error(excinfo) == ("ValidationException", f"Model Package Group already exists: {GROUP_ARN}")
    assert "ModelPackageGroupDescription" not in sm.describe_model_package_group(
        ModelPackageGroupName="churn"
    )


@pytest.mark.usefixtures("group")
def test_group_lookups_are_exact_about_case(sm: SageMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.describe_model_package_group(ModelPackageGroupName="Churn")
    assert _error(excinfo) == ("ValidationException", "ModelPackageGroup Churn does not exist.")


def test_describe_group_by_name_or_arn(sm: SageMakerClient) -> None:
    sm.create_model_package_group(ModelPackageGroupName="churn", ModelPackageGroupDescription="churn model")
    by_name = sm.describe_model_package_group(ModelPackageGroupName="churn")
    by_arn = sm.describe_model_package_group(ModelPackageGroupName=GROUP_ARN)
    assert by_name["ModelPackageGroupArn"] == by_arn["ModelPackageGroupArn"] == GROUP_ARN
    assert (by_name["ModelPackageGroupStatus"], by_name["ModelPackageGroupDescription"]) == (
        "Completed",
        "churn model",
    )


def test_group_list_is_paginated_and_filtered(sm: SageMakerClient) -> None:
    for index in range(23):
        sm.create_model_package_group(ModelPackageGroupName=f"{'odd' if index % 2 else 'even'}-{index}")
    first = sm.list_model_package_groups()
    assert len(first["ModelPackageGroupSummaryList"]) == 10 and "NextToken" in first
    pages = sm.get_paginator("list_model_package_groups").paginate(PaginationConfig={"PageSize": 4})
    names = [summary["ModelPackageGroupName"] for p in pages for summary in p["ModelPackageGroupSummaryList"]]
    assert names == [f"{'odd' if index % 2 else 'even'}-{index}" for index in range(23)]
    odd = sm.list_model_package_groups(
        NameContains="odd", SortBy="Name", SortOrder="Descending", MaxResults=100
    )
    assert [s["ModelPackageGroupName"] for s in odd["ModelPackageGroupSummaryList"]][:2] == ["odd-9", "odd-7"]


def test_a_page_token_is_only_good_for_its_sort(sm: SageMakerClient) -> None:
    for index in range(3):
        sm.create_model_package_group(ModelPackageGroupName=f"g{index}")
    token = sm.list_model_package_groups(MaxResults=2)["NextToken"]
    with pytest.raises(ClientError) as excinfo:
        sm.list_model_package_groups(MaxResults=2, NextToken=token, SortBy="Name")
    assert "does not belong to this sort order" in _error(excinfo)[1]
    with pytest.raises(ClientError) as excinfo:
        sm.list_model_package_groups(NextToken="made-up")
    assert _error(excinfo) == ("ValidationException", "Invalid pagination token: made-up")


def test_deleting_between_pages_skips_nothing(sm: SageMakerClient) -> None:
    for index in range(6):
        sm.create_model_package_group(ModelPackageGroupName=f"g{index}")
    first = sm.list_model_package_groups(MaxResults=3)
    for summary in first["ModelPackageGroupSummaryList"]:
        sm.delete_model_package_group(ModelPackageGroupName=summary["ModelPackageGroupName"])
    second = sm.list_model_package_groups(MaxResults=3, NextToken=first["NextToken"])
    assert [s["ModelPackageGroupName"] for s in second["ModelPackageGroupSummaryList"]] == ["g3", "g4", "g5"]


def test_a_group_with_packages_cannot_be_deleted(sm: SageMakerClient, group: str) -> None:
    arn = _create(sm)
    with pytest.raises(ClientError) as excinfo:
        sm.delete_model_package_group(ModelPackageGroupName=group)
    assert _error(excinfo)[0] == "ConflictException"
    sm.delete_model_package(ModelPackageName=arn)
    sm.delete_model_package_group(ModelPackageGroupName=GROUP_ARN)
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


# -- creating packages -----------------------------------------------------------------------------


@pytest.mark.usefixtures("group")
def test_versions_count_per_group_and_keep_the_group_case(sm: SageMakerClient) -> None:
    sm.create_model_package_group(ModelPackageGroupName="Fraud-Model")
    assert _create(sm).endswith(":model-package/churn/1")
    assert _create(sm).endswith(":model-package/churn/2")
    fraud = sm.create_model_package(ModelPackageGroupName="Fraud-Model")["ModelPackageArn"]
    assert fraud == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/Fraud-Model/1"


@pytest.mark.usefixtures("group")
def test_the_group_may_be_given_by_arn(sm: SageMakerClient) -> None:
    arn = sm.create_model_package(ModelPackageGroupName=GROUP_ARN)["ModelPackageArn"]
    assert sm.describe_model_package(ModelPackageName=arn)["ModelPackageGroupName"] == "churn"


@pytest.mark.usefixtures("group")
def test_a_group_arn_of_another_region_is_refused(sm: SageMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_model_package(ModelPackageGroupName=GROUP_ARN.replace(REGION, "eu-west-1"))
    assert _error(excinfo) == ("ValidationException", f"ARN should be scoped to correct region: {REGION}")


@pytest.mark.usefixtures("group")
@pytest.mark.parametrize(
    ("names", "code", "message"),
    [
        (
            {"ModelPackageGroupName": "churn", "ModelPackageName": "churn"},
            "ValidationException",
            "Both ModelPackageName and ModelPackageGroupName are provided in the input. "
            "Cannot determine which one to use.",
        ),
        ({}, "ValidationException", "Missing ARN."),
        (
            {"ModelPackageName": "churn"},
            "NotEmulatedException",
            "Unversioned model packages (ModelPackageName) are not emulated.",
        ),
    ],
)
def test_a_package_is_versioned_by_its_group(
    sm: SageMakerClient, names: dict[str, str], code: str, message: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_model_package(**names)  # type: ignore[arg-type]
    assert _error(excinfo) == (code, message)


@pytest.mark.usefixtures("group")
@pytest.mark.parametrize(
    ("arn", "message"),
    [
        (f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/churn", "is not the ARN of a model-package-group."),
        (GROUP_ARN.replace(ACCOUNT, "210987654321"), "Cross-account access"),
    ],
)
def test_foreign_group_arns_are_refused(sm: SageMakerClient, arn: str, message: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.create_model_package(ModelPackageGroupName=arn)
    assert message in _error(excinfo)[1]


def test_a_package_needs_an_existing_group(sm: SageMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        _create(sm)
    assert _error(excinfo) == ("ValidationException", "ModelPackageGroup churn does not exist.")


@pytest.mark.usefixtures("group")
def test_tags_are_refused_on_a_versioned_package(sm: SageMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        _create(sm, Tags=[{"Key": "team", "Value": "risk"}])
    code, message = _error(excinfo)
    assert code == "ValidationException" and "Tag the group instead" in message


@pytest.mark.usefixtures("group")
def test_the_same_client_token_creates_one_package(sm: SageMakerClient) -> None:
    first = _create(sm, ClientToken="sync-churn-7", ModelPackageDescription="v7")
    again = _create(sm, ClientToken="sync-churn-7", ModelPackageDescription="v7")
    assert first == again
    listed = sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    assert [summary["ModelPackageArn"] for summary in listed] == [first]
    with pytest.raises(ClientError) as excinfo:
        _create(sm, ClientToken="sync-churn-7", ModelPackageDescription="v8")
    assert _error(excinfo)[0] == "ValidationException"


@pytest.mark.usefixtures("group")
def test_a_retried_create_is_not_duplicated(sm: SageMakerClient, backend: RegistryBackend) -> None:
    backend.inject_fault("CreateModelPackage", "ThrottlingException", after_apply=True)
    answer = sm.create_model_package(ModelPackageGroupName="churn")
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    assert answer["ModelPackageArn"].endswith("/churn/1")
    assert len(sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]) == 1
    assert [call.error for call in backend.calls_to("CreateModelPackage")] == ["ThrottlingException", None]


@pytest.mark.usefixtures("group")
def test_every_field_sent_is_kept(sm: SageMakerClient, backend: RegistryBackend) -> None:
    sent: dict[str, Any] = {
        "ModelPackageDescription": "gradient boosting",
        "ModelApprovalStatus": "Approved",
        "ModelLifeCycle": {"Stage": "Production", "StageStatus": "Approved", "StageDescription": "v7"},
        "SourceUri": "models:/churn/7",
        "ModelCard": {"ModelCardContent": '{"model_overview": {}}', "ModelCardStatus": "Draft"},
        "CustomerMetadataProperties": {"mlflow.run_id": "abc123"},
        "MetadataProperties": {"CommitId": "0123abc", "GeneratedBy": "mlsync"},
        "ModelMetrics": {
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "s3://b/k.json"}}
        },
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:3.1",
                    "ModelDataSource": {
                        "S3DataSource": {
                            "S3Uri": "s3://b/m/",
                            "S3DataType": "S3Prefix",
                            "CompressionType": "None",
                        }
                    },
                    "Framework": "SKLEARN",
                    "FrameworkVersion": "1.5",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        "Domain": "MACHINE_LEARNING",
        "Task": "CLASSIFICATION",
        "SamplePayloadUrl": "s3://b/sample.csv",
    }
    arn = _create(sm, **sent)
    described = sm.describe_model_package(ModelPackageName=arn)
    assert {name: described[name] for name in sent} == sent  # type: ignore[literal-required]
    assert described["ModelPackageStatus"] == "Completed"
    assert described["CreationTime"] == described["LastModifiedTime"]
    (call,) = backend.calls_to("CreateModelPackage")
    assert call.params["ModelLifeCycle"] == sent["ModelLifeCycle"]


@pytest.mark.usefixtures("group")
def test_describe_answers_only_members_of_the_output_shape(sm: SageMakerClient) -> None:
    arn = _create(sm, ClientToken="t-1", SourceUri="models:/churn/1")
    output = service_model().operation_model("DescribeModelPackage").output_shape
    assert output is not None
    described = dict(sm.describe_model_package(ModelPackageName=arn))
    described.pop("ResponseMetadata")
    assert set(described) <= set(output.members)
    assert set(output.required_members) <= set(described)
    assert described["ModelApprovalStatus"] == "PendingManualApproval"


@pytest.mark.usefixtures("group")
def test_describe_by_group_and_version(sm: SageMakerClient) -> None:
    arn = _create(sm)
    assert sm.describe_model_package(ModelPackageName="churn/1")["ModelPackageArn"] == arn
    with pytest.raises(ClientError) as excinfo:
        sm.describe_model_package(ModelPackageName="churn")
    assert _error(excinfo) == ("ValidationException", "ModelPackage churn does not exist.")


# -- updating packages -----------------------------------------------------------------------------


@pytest.mark.usefixtures("group")
def test_update_merges_metadata_and_leaves_the_rest_alone(sm: SageMakerClient) -> None:
    arn = _create(
        sm,
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"a": "1", "b": "2"},
        SourceUri="models:/churn/1",
    )
    sm.update_model_package(ModelPackageArn=arn, ApprovalDescription="looks good")
    sm.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"b": "3", "c": "4"})
    described = sm.describe_model_package(ModelPackageName=arn)
    assert described["CustomerMetadataProperties"] == {"a": "1", "b": "3", "c": "4"}
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "looks good"
    assert described["SourceUri"] == "models:/churn/1"
    assert described["LastModifiedTime"] > described["CreationTime"]


@pytest.mark.usefixtures("group")
def test_update_removes_metadata_keys(sm: SageMakerClient) -> None:
    arn = _create(sm, CustomerMetadataProperties={"a": "1", "b": "2"})
    sm.update_model_package(ModelPackageArn=arn, CustomerMetadataPropertiesToRemove=["a", "missing"])
    assert sm.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"] == {"b": "2"}
    sm.update_model_package(ModelPackageArn=arn, CustomerMetadataPropertiesToRemove=["b"])
    assert "CustomerMetadataProperties" not in sm.describe_model_package(ModelPackageName=arn)
    with pytest.raises(ClientError):
        sm.update_model_package(
            ModelPackageArn=arn,
            CustomerMetadataProperties={"x": "1"},
            CustomerMetadataPropertiesToRemove=["x"],
        )


@pytest.mark.usefixtures("group")
def test_update_cannot_grow_metadata_past_50(sm: SageMakerClient) -> None:
    arn = _create(sm, CustomerMetadataProperties={f"k{i}": "v" for i in range(30)})
    with pytest.raises(ClientError) as excinfo:
        sm.update_model_package(
            ModelPackageArn=arn, CustomerMetadataProperties={f"n{i}": "v" for i in range(21)}
        )
    assert "would leave 51" in _error(excinfo)[1]
    assert len(sm.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]) == 30


@pytest.mark.usefixtures("group")
def test_update_replaces_life_cycle_source_and_card(sm: SageMakerClient) -> None:
    arn = _create(sm, ModelLifeCycle={"Stage": "Development", "StageStatus": "InProgress"})
    sm.update_model_package(
        ModelPackageArn=arn,
        ModelLifeCycle={"Stage": "Production", "StageStatus": "Approved"},
        SourceUri="models:/churn/2",
        ModelCard={"ModelCardStatus": "Approved"},
    )
    described = sm.describe_model_package(ModelPackageName=arn)
    assert described["ModelLifeCycle"] == {"Stage": "Production", "StageStatus": "Approved"}
    assert (described["SourceUri"], described["ModelCard"]) == (
        "models:/churn/2",
        {"ModelCardStatus": "Approved"},
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "ModelCardContent is not valid JSON"),
        ("", "ModelCardContent is not valid JSON"),
        ('["a list"]', "must be JSON objects"),
        ('{"model_overview": "text"}', "must be JSON objects"),
        ('{"model_package_details": {}}', "ModelCardContent has model_package_details"),
        ('{"model_overview": {"model_name": "churn"}}', "ModelCardContent has model_overview.model_name"),
    ],
)
@pytest.mark.usefixtures("group")
def test_a_model_card_must_be_a_model_package_card(sm: SageMakerClient, content: str, message: str) -> None:
    card: Any = {"ModelCardContent": content, "ModelCardStatus": "Draft"}
    with pytest.raises(ClientError) as refused:
        _create(sm, ModelCard=card)
    assert _error(refused)[0] == "ValidationException" and message in _error(refused)[1]
    arn = _create(sm)
    with pytest.raises(ClientError) as refused:
        sm.update_model_package(ModelPackageArn=arn, ModelCard=card)
    assert message in _error(refused)[1]
    assert "ModelCard" not in sm.describe_model_package(ModelPackageName=arn)


@pytest.mark.usefixtures("group")
def test_an_archived_model_cards_content_cannot_change(sm: SageMakerClient) -> None:
    content = '{"model_overview": {"model_creator": "ml-team"}, "intended_uses": {"intended_uses": "churn"}}'
    arn = _create(sm, ModelCard={"ModelCardContent": content, "ModelCardStatus": "Archived"})
    with pytest.raises(ClientError) as refused:
        sm.update_model_package(
            ModelPackageArn=arn, ModelCard={"ModelCardContent": "{}", "ModelCardStatus": "Archived"}
        )
    assert _error(refused) == ("ValidationException", "Model Card is in Archived state")
    with pytest.raises(ClientError):  # an update replaces the whole card: this one would drop the content
        sm.update_model_package(ModelPackageArn=arn, ModelCard={"ModelCardStatus": "Approved"})
    # The same content with another status is no change of content.
    sm.update_model_package(
        ModelPackageArn=arn, ModelCard={"ModelCardContent": content, "ModelCardStatus": "Approved"}
    )
    assert sm.describe_model_package(ModelPackageName=arn)["ModelCard"] == {
        "ModelCardContent": content,
        "ModelCardStatus": "Approved",
    }


@pytest.mark.usefixtures("group")
def test_update_appends_additional_inference_specifications(sm: SageMakerClient) -> None:
    arn = _create(sm)
    specification: Any = {"Name": "neo", "Containers": [{"Image": "neo:1"}]}
    sm.update_model_package(ModelPackageArn=arn, AdditionalInferenceSpecificationsToAdd=[specification])
    sm.update_model_package(ModelPackageArn=arn, AdditionalInferenceSpecificationsToAdd=[specification] * 14)
    described = sm.describe_model_package(ModelPackageName=arn)
    assert len(described["AdditionalInferenceSpecifications"]) == 15
    with pytest.raises(ClientError) as excinfo:
        sm.update_model_package(ModelPackageArn=arn, AdditionalInferenceSpecificationsToAdd=[specification])
    assert "this update would leave 16" in _error(excinfo)[1]


@pytest.mark.usefixtures("group")
def test_documented_approval_transitions_only(sm: SageMakerClient) -> None:
    arn = _create(sm)
    for status in ("Approved", "Rejected", "Approved", "Approved"):
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
    with pytest.raises(ClientError) as excinfo:
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="PendingManualApproval")
    assert "from Approved to PendingManualApproval" in _error(excinfo)[1]


def test_updating_a_missing_package_is_refused(sm: SageMakerClient, group: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.update_model_package(ModelPackageArn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/churn/9")
    assert _error(excinfo)[1].endswith("model-package/churn/9 does not exist.")


# -- listing and deleting packages -----------------------------------------------------------------


@pytest.mark.usefixtures("group")
def test_list_without_a_group_lists_only_unversioned_packages(sm: SageMakerClient) -> None:
    _create(sm)
    assert sm.list_model_packages()["ModelPackageSummaryList"] == []
    assert len(sm.list_model_packages(ModelPackageType="Versioned")["ModelPackageSummaryList"]) == 1


@pytest.mark.usefixtures("group")
def test_list_summaries_carry_status_and_life_cycle_but_no_metadata(sm: SageMakerClient) -> None:
    _create(
        sm,
        CustomerMetadataProperties={"a": "1"},
        ModelLifeCycle={"Stage": "QA", "StageStatus": "InProgress"},
    )
    (summary,) = sm.list_model_packages(ModelPackageGroupName=GROUP_ARN)["ModelPackageSummaryList"]
    assert summary["ModelApprovalStatus"] == "PendingManualApproval"
    assert summary["ModelLifeCycle"] == {"Stage": "QA", "StageStatus": "InProgress"}
    assert "CustomerMetadataProperties" not in summary


@pytest.mark.usefixtures("group")
def test_list_packages_pages_filters_and_sorts(sm: SageMakerClient) -> None:
    arns = [_create(sm, ModelApprovalStatus="Approved" if i % 3 == 0 else "Rejected") for i in range(12)]
    pages = sm.get_paginator("list_model_packages").paginate(ModelPackageGroupName="churn")
    assert [s["ModelPackageArn"] for p in pages for s in p["ModelPackageSummaryList"]] == arns
    newest = sm.list_model_packages(
        ModelPackageGroupName="churn", ModelApprovalStatus="Approved", SortOrder="Descending"
    )["ModelPackageSummaryList"]
    assert [s["ModelPackageVersion"] for s in newest] == [10, 7, 4, 1]
    with pytest.raises(ClientError):
        sm.list_model_packages(ModelPackageGroupName="churn", MaxResults=101)


@pytest.mark.usefixtures("group")
def test_batch_describe_reports_found_and_missing(sm: SageMakerClient) -> None:
    arn = _create(sm, CustomerMetadataProperties={"a": "1"})
    missing = arn.replace("/churn/1", "/churn/2")
    answer = sm.batch_describe_model_package(ModelPackageArnList=[arn, missing])
    assert answer["ModelPackageSummaries"][arn]["ModelApprovalStatus"] == "PendingManualApproval"
    assert "CustomerMetadataProperties" not in answer["ModelPackageSummaries"][arn]
    assert answer["BatchDescribeModelPackageErrorMap"][missing]["ErrorCode"] == "ValidationException"


@pytest.mark.usefixtures("group")
def test_deleted_packages_are_gone_and_their_versions_never_reused(sm: SageMakerClient) -> None:
    first = _create(sm)
    sm.delete_model_package(ModelPackageName=first)
    with pytest.raises(ClientError):
        sm.describe_model_package(ModelPackageName=first)
    with pytest.raises(ClientError):
        sm.delete_model_package(ModelPackageName=first)
    assert _create(sm).endswith("/churn/2")


# -- who and when ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("group")
def test_describe_tells_the_creator_from_the_reviewer(sm: SageMakerClient, reviewer: SageMakerClient) -> None:
    arn = _create(sm)
    created = sm.describe_model_package(ModelPackageName=arn)
    assert created["CreatedBy"] == _identity(CREATOR)
    assert "LastModifiedBy" not in created
    reviewer.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="ok by risk"
    )
    reviewed = sm.describe_model_package(ModelPackageName=arn)
    assert (reviewed["CreatedBy"], reviewed["LastModifiedBy"]) == (_identity(CREATOR), _identity(REVIEWER))
    assert (reviewed["ModelApprovalStatus"], reviewed["ApprovalDescription"]) == ("Approved", "ok by risk")
    assert reviewed["LastModifiedTime"] > created["LastModifiedTime"]
    group = sm.describe_model_package_group(ModelPackageGroupName="churn")
    assert group["CreatedBy"] == _identity(CREATOR)


@pytest.mark.usefixtures("group")
def test_summaries_do_not_tell_who_or_why(sm: SageMakerClient, reviewer: SageMakerClient) -> None:
    arn = _create(sm)
    reviewer.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Rejected", ApprovalDescription="no"
    )
    (summary,) = sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    batch = sm.batch_describe_model_package(ModelPackageArnList=[arn])["ModelPackageSummaries"][arn]
    for answer in summary, batch:
        assert answer["ModelApprovalStatus"] == "Rejected"
        assert not {"CreatedBy", "LastModifiedBy", "ApprovalDescription"} & set(answer)


def test_an_unsigned_request_has_no_caller() -> None:
    backend = RegistryBackend()
    backend.handle("CreateModelPackageGroup", {"ModelPackageGroupName": "churn"}, REGION)
    described = backend.handle("DescribeModelPackageGroup", {"ModelPackageGroupName": "churn"}, REGION)
    assert described["CreatedBy"] == {}


# -- EventBridge events ----------------------------------------------------------------------------


@pytest.mark.usefixtures("group")
def test_a_create_emits_a_state_change_event(sm: SageMakerClient, backend: RegistryBackend) -> None:
    life_cycle = {"Stage": "Development", "StageStatus": "InProgress"}
    arn = _create(sm, ModelLifeCycle=life_cycle, CustomerMetadataProperties={"mlflow.run_id": "abc"})
    described = sm.describe_model_package(ModelPackageName=arn)
    (event,) = backend.events()  # the group's creation and the reads emit nothing
    assert uuid.UUID(event.pop("id"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event.pop("time"))
    detail = event.pop("detail")
    assert event == {
        "version": "0",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "region": REGION,
        "resources": [arn],
    }
    assert detail == {
        "ModelPackageGroupName": "churn",
        "ModelPackageVersion": 1,
        "ModelPackageArn": arn,
        "ModelPackageName": "churn",
        "CreationTime": _event_time(described["CreationTime"]),
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "CertifyForMarketplace": False,
        "ModelApprovalStatus": "PendingManualApproval",
        "LastModifiedTime": _event_time(described["LastModifiedTime"]),
        "ModelLifeCycle": life_cycle,
        "CustomerMetadataProperties": {"mlflow.run_id": "abc"},
        "CreatedBy": _identity(CREATOR),
    }  # no UpdatedModelPackageFields on a create


@pytest.mark.usefixtures("group")
def test_an_approval_emits_an_event_naming_the_reviewer_and_the_fields(
    sm: SageMakerClient, reviewer: SageMakerClient, backend: RegistryBackend
) -> None:
    arn = _create(sm)
    reviewer.update_model_package(
        ModelPackageArn=arn, ApprovalDescription="ok by risk", ModelApprovalStatus="Approved"
    )
    created, approved = backend.events()
    assert approved["id"] != created["id"]
    assert (approved["resources"], approved["region"], approved["account"]) == ([arn], REGION, ACCOUNT)
    assert approved["time"] == approved["detail"]["LastModifiedTime"]
    assert {name: approved["detail"][name] for name in ("ModelApprovalStatus", "ApprovalDescription")} == {
        "ModelApprovalStatus": "Approved",
        "ApprovalDescription": "ok by risk",
    }
    assert approved["detail"]["UpdatedModelPackageFields"] == ["ModelApprovalStatus", "ApprovalDescription"]
    assert approved["detail"]["LastModifiedBy"] == _identity(REVIEWER)
    assert approved["detail"]["CreatedBy"] == _identity(CREATOR)
    assert created["detail"]["ModelApprovalStatus"] == "PendingManualApproval"  # each event is a snapshot


@pytest.mark.usefixtures("group")
@pytest.mark.parametrize(
    ("update", "fields"),
    [
        ({"ModelLifeCycle": {"Stage": "Production", "StageStatus": "Approved"}}, ["ModelLifeCycle"]),
        ({"CustomerMetadataProperties": {"b": "2"}}, ["CustomerMetadataProperties"]),
        ({"CustomerMetadataPropertiesToRemove": ["a"]}, ["CustomerMetadataProperties"]),
        (
            {"SourceUri": "models:/churn/2", "ModelApprovalStatus": "Rejected"},
            ["ModelApprovalStatus", "SourceUri"],
        ),
        ({}, []),
    ],
)
def test_an_update_event_names_the_members_it_set(
    sm: SageMakerClient, backend: RegistryBackend, update: dict[str, Any], fields: list[str]
) -> None:
    arn = _create(sm, CustomerMetadataProperties={"a": "1"})
    sm.update_model_package(ModelPackageArn=arn, **update)
    assert backend.events()[-1]["detail"]["UpdatedModelPackageFields"] == fields


def test_events_carry_the_region_of_the_request(
    backend: RegistryBackend, session: boto3.session.Session
) -> None:
    ireland = session.client("sagemaker", region_name="eu-west-1")
    ireland.create_model_package_group(ModelPackageGroupName="churn")
    arn = _create(ireland)
    (event,) = backend.events()
    assert (event["region"], event["resources"]) == ("eu-west-1", [arn])
    assert arn.startswith("arn:aws:sagemaker:eu-west-1:")


@pytest.mark.usefixtures("group")
def test_a_refused_request_emits_nothing(sm: SageMakerClient, backend: RegistryBackend) -> None:
    arn = _create(sm, ModelApprovalStatus="Approved", ClientToken="t-1")
    backend.clear_events()
    with pytest.raises(ClientError) as excinfo:  # undocumented, so refused
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="PendingManualApproval")
    assert "from Approved to PendingManualApproval" in _error(excinfo)[1]
    with pytest.raises(ClientError):  # the service model's pattern
        sm.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"k": "a,b"})
    with pytest.raises(ClientError):  # no such package
        sm.update_model_package(ModelPackageArn=arn.replace("/churn/1", "/churn/9"))
    with pytest.raises(ClientError):  # Tags on a versioned package
        _create(sm, Tags=[{"Key": "k", "Value": "v"}])
    backend.inject_fault("UpdateModelPackage", "ValidationException", message="refused before applying")
    with pytest.raises(ClientError):
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    assert _create(sm, ModelApprovalStatus="Approved", ClientToken="t-1") == arn  # a replay creates nothing
    assert backend.events() == []
    assert "LastModifiedBy" not in sm.describe_model_package(ModelPackageName=arn)


@pytest.mark.usefixtures("group")
def test_a_fault_after_apply_still_emits_the_event(sm: SageMakerClient, backend: RegistryBackend) -> None:
    arn = _create(sm)
    backend.inject_fault("UpdateModelPackage", "ThrottlingException", after_apply=True)
    assert sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    # The update took effect, then botocore retried it: two events for one change, as AWS warns may happen.
    fields = [event["detail"].get("UpdatedModelPackageFields") for event in backend.events()]
    assert fields == [None, ["ModelApprovalStatus"], ["ModelApprovalStatus"]]


@pytest.mark.usefixtures("group")
def test_subscribers_hear_each_event_and_may_read_sagemaker(
    sm: SageMakerClient, backend: RegistryBackend
) -> None:
    heard: list[tuple[Any, str]] = []

    def handler(event: Event) -> None:  # as a Lambda handler would: read the package again
        package = sm.describe_model_package(ModelPackageName=event["detail"]["ModelPackageArn"])
        heard.append((event["detail"].get("UpdatedModelPackageFields"), package["ModelApprovalStatus"]))

    unsubscribe = backend.subscribe(handler)
    arn = _create(sm)
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    unsubscribe()
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    assert heard == [(None, "PendingManualApproval"), (["ModelApprovalStatus"], "Approved")]
    assert len(backend.events()) == 3


@pytest.mark.usefixtures("group")
@pytest.mark.parametrize("from_a_thread", [False, True])
def test_a_subscriber_that_updates_hears_its_own_event_afterwards(
    sm: SageMakerClient, backend: RegistryBackend, from_a_thread: bool
) -> None:
    heard: list[tuple[int, Any]] = []
    depth = 0
    pool = ThreadPoolExecutor(max_workers=1)

    def stamp(event: Event) -> None:  # writes back to SageMaker, as a sync handler may
        nonlocal depth
        depth += 1
        heard.append((depth, event["detail"].get("UpdatedModelPackageFields")))
        if "UpdatedModelPackageFields" not in event["detail"]:
            arn = event["detail"]["ModelPackageArn"]

            def write_back() -> object:
                return sm.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"seen": "1"})

            if from_a_thread:  # would deadlock if the worker waited for this thread's delivery
                pool.submit(write_back).result(timeout=10)
            else:
                write_back()
        depth -= 1

    backend.subscribe(stamp)
    try:
        _create(sm)
    finally:
        pool.shutdown(wait=False)
    assert heard == [(1, None), (1, ["CustomerMetadataProperties"])]  # in order, never re-entrantly


@pytest.mark.usefixtures("group")
def test_events_are_json_copies_forgotten_on_clear_and_reset(
    sm: SageMakerClient, backend: RegistryBackend
) -> None:
    heard: list[Event] = []
    backend.subscribe(heard.append)
    _create(sm, ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "a/b", "S3Uri": "s3://b/k"}}})
    events = backend.events()
    assert json.loads(json.dumps(events)) == events == heard
    events[0]["detail"].clear()
    heard[0]["detail"].clear()
    assert backend.events()[0]["detail"]["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == "s3://b/k"
    backend.clear_events()
    assert backend.events() == []
    _create(sm)
    backend.reset()
    assert backend.events() == []
    sm.create_model_package_group(ModelPackageGroupName="churn")
    _create(sm)
    assert len(heard) == 3  # reset keeps the subscribers


# -- tags ------------------------------------------------------------------------------------------


def test_group_tags_are_added_listed_and_deleted(sm: SageMakerClient) -> None:
    sm.create_model_package_group(ModelPackageGroupName="churn", Tags=[{"Key": "team", "Value": "risk"}])
    sm.add_tags(ResourceArn=GROUP_ARN, Tags=[{"Key": "mlflow:model", "Value": "churn"}])
    sm.delete_tags(ResourceArn=GROUP_ARN, TagKeys=["team"])
    assert sm.list_tags(ResourceArn=GROUP_ARN)["Tags"] == [{"Key": "mlflow:model", "Value": "churn"}]
    with pytest.raises(ClientError) as excinfo:
        sm.add_tags(ResourceArn=GROUP_ARN, Tags=[{"Key": "bad", "Value": "a,b"}])
    assert "at 'tags.1.member.value'" in _error(excinfo)[1]


@pytest.mark.usefixtures("group")
def test_tags_stay_within_50_and_on_groups(sm: SageMakerClient) -> None:
    sm.add_tags(ResourceArn=GROUP_ARN, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    with pytest.raises(ClientError) as excinfo:
        sm.add_tags(ResourceArn=GROUP_ARN, Tags=[{"Key": "one-more", "Value": "v"}])
    assert _error(excinfo)[1] == "A resource can have at most 50 tags, not 51."
    with pytest.raises(ClientError) as excinfo:
        sm.add_tags(ResourceArn=_create(sm), Tags=[{"Key": "k", "Value": "v"}])
    assert _error(excinfo)[0] == "NotEmulatedException"


def test_tags_of_a_missing_group_are_refused(sm: SageMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.list_tags(ResourceArn=GROUP_ARN)
    assert _error(excinfo) == ("ValidationException", "ModelPackageGroup churn does not exist.")


# -- the emulation itself --------------------------------------------------------------------------


def test_the_call_log_keeps_refused_calls_too(sm: SageMakerClient, backend: RegistryBackend) -> None:
    sm.create_model_package_group(ModelPackageGroupName="churn")
    with pytest.raises(ClientError):
        sm.create_model_package_group(ModelPackageGroupName="churn")
    assert backend.call_counts() == {"CreateModelPackageGroup": 2}
    assert [(call.region, call.error) for call in backend.calls()] == [
        (REGION, None),
        (REGION, "ValidationException"),
    ]
    backend.clear_calls()
    assert backend.calls() == []


def test_regions_are_separate(sm: SageMakerClient, session: boto3.session.Session) -> None:
    sm.create_model_package_group(ModelPackageGroupName="churn")
    ireland = session.client("sagemaker", region_name="eu-west-1")
    assert ireland.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    arn = ireland.create_model_package_group(ModelPackageGroupName="churn")["ModelPackageGroupArn"]
    assert arn == f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:model-package-group/churn"


def test_other_sagemaker_operations_are_not_silently_emulated(sm: SageMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        sm.list_models()
    assert _error(excinfo)[0] == "NotEmulatedException"


def test_moto_still_serves_s3_and_sts(backend: RegistryBackend) -> None:
    s3 = boto3.client("s3", region_name=REGION)  # boto3's default session, which mock_aws resets
    s3.create_bucket(Bucket="mlsync-artifacts")
    s3.put_object(Bucket="mlsync-artifacts", Key="model.tar.gz", Body=b"weights")
    assert s3.get_object(Bucket="mlsync-artifacts", Key="model.tar.gz")["Body"].read() == b"weights"
    assert boto3.client("sts", region_name=REGION).get_caller_identity()["Account"] == ACCOUNT
    assert backend.calls() == []


def test_clients_of_any_session_are_routed(backend: RegistryBackend) -> None:
    boto3.session.Session(region_name=REGION).client("sagemaker").create_model_package_group(
        ModelPackageGroupName="churn"
    )
    assert backend.call_counts()["CreateModelPackageGroup"] == 1


def test_emulations_do_not_nest(backend: RegistryBackend) -> None:
    with pytest.raises(RuntimeError), emulated_aws():
        pass  # pragma: no cover - never entered


def test_a_given_backend_outlives_the_emulation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    kept = RegistryBackend()
    with emulated_aws(kept):
        boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName="churn")
    with emulated_aws(kept):
        assert boto3.client("sagemaker").describe_model_package_group(ModelPackageGroupName="churn")
    kept.reset()
    assert kept.calls() == []


@pytest.mark.usefixtures("group")
def test_concurrent_creates_get_distinct_versions(sm: SageMakerClient) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        arns = list(pool.map(lambda _: _create(sm), range(24)))
    assert sorted(int(arn.rsplit("/", 1)[1]) for arn in arns) == list(range(1, 25))


@pytest.mark.usefixtures("group")
def test_a_fault_before_apply_changes_nothing(
    backend: RegistryBackend, session: boto3.session.Session
) -> None:
    no_retries = session.client("sagemaker", config=Config(retries={"total_max_attempts": 1}))
    backend.inject_fault("CreateModelPackage", "InternalFailure", status=500, message="boom")
    with pytest.raises(ClientError) as excinfo:
        no_retries.create_model_package(ModelPackageGroupName="churn")
    assert _error(excinfo) == ("InternalFailure", "boom")
    assert no_retries.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"] == []


# -- fault knobs -------------------------------------------------------------------------------------


def _once(session: boto3.session.Session) -> SageMakerClient:
    """A client that never retries, so each injected fault reaches the test."""
    return session.client("sagemaker", config=Config(retries={"total_max_attempts": 1}))


def _outcomes(client: SageMakerClient, calls: int) -> list[str | None]:
    """The error code (None: success) of each of `calls` DescribeModelPackageGroup calls."""
    outcomes: list[str | None] = []
    for _ in range(calls):
        try:
            client.describe_model_package_group(ModelPackageGroupName="churn")
            outcomes.append(None)
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    return outcomes


@pytest.mark.usefixtures("group")
def test_a_seeded_fault_rate_fails_the_same_calls_every_time(
    backend: RegistryBackend, session: boto3.session.Session
) -> None:
    client = _once(session)
    backend.fault_rate("DescribeModelPackageGroup", 0.3, seed=7)
    first = _outcomes(client, 200)
    backend.clear_faults()
    backend.fault_rate("*", 0.3, seed=7)
    assert _outcomes(client, 200) == first
    failed = sum(code is not None for code in first)
    assert 40 <= failed <= 80
    assert {code for code in first if code} == {"ThrottlingException", "InternalFailure"}
    described = backend.calls_to("DescribeModelPackageGroup")
    assert [call.faults for call in described if call.error] == [("error",)] * (2 * failed)


@pytest.mark.usefixtures("group")
def test_a_fault_rate_spares_other_operations_and_answers_5xx_with_500(
    backend: RegistryBackend, session: boto3.session.Session
) -> None:
    client = _once(session)
    backend.fault_rate(["CreateModelPackage"], 1.0, codes=["InternalFailure"])
    assert _outcomes(client, 3) == [None] * 3
    with pytest.raises(ClientError) as excinfo:
        client.create_model_package(ModelPackageGroupName="churn")
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert _error(excinfo)[0] == "InternalFailure"
    assert client.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"] == []


@pytest.mark.usefixtures("group")
def test_lost_answers_apply_the_change_and_a_retry_replays_the_client_token(
    backend: RegistryBackend, session: boto3.session.Session
) -> None:
    retrying = session.client(
        "sagemaker", config=Config(retries={"mode": "standard", "total_max_attempts": 3})
    )
    backend.lose_answers(["CreateModelPackage"], retries_pass=True)
    arns = [
        retrying.create_model_package(ModelPackageGroupName="churn", ClientToken=f"token-{n}")
        for n in range(3)
    ]
    assert [answer["ResponseMetadata"]["RetryAttempts"] for answer in arns] == [1, 1, 1]
    listed = retrying.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    assert sorted(s["ModelPackageArn"] for s in listed) == sorted(a["ModelPackageArn"] for a in arns)
    creates = backend.calls_to("CreateModelPackage")
    assert [(call.error, call.faults) for call in creates] == [("InternalFailure", ("lost",)), (None, ())] * 3


@pytest.mark.usefixtures("group")
def test_a_lost_answer_without_a_retry_leaves_the_change_made(
    backend: RegistryBackend, session: boto3.session.Session
) -> None:
    client = _once(session)
    backend.lose_answers("CreateModelPackage", 1.0)
    with pytest.raises(ClientError):
        client.create_model_package(ModelPackageGroupName="churn", ClientToken="lost-1")
    (listed,) = client.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    assert [event["resources"] for event in backend.events()] == [[listed["ModelPackageArn"]]]


def test_a_denied_group_refuses_every_call_naming_it_as_iam_would(
    backend: RegistryBackend, sm: SageMakerClient
) -> None:
    sm.create_model_package_group(ModelPackageGroupName="churn")
    sm.create_model_package_group(ModelPackageGroupName="fraud")
    arn = sm.create_model_package(ModelPackageGroupName="churn")["ModelPackageArn"]
    backend.deny_group("churn")
    refused: list[Callable[[], object]] = [
        lambda: sm.describe_model_package_group(ModelPackageGroupName="churn"),
        lambda: sm.describe_model_package_group(ModelPackageGroupName=GROUP_ARN),
        lambda: sm.create_model_package(ModelPackageGroupName="churn"),
        lambda: sm.list_model_packages(ModelPackageGroupName="churn"),
        lambda: sm.describe_model_package(ModelPackageName=arn),
        lambda: sm.describe_model_package(ModelPackageName="churn/1"),
        lambda: sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved"),
        lambda: sm.batch_describe_model_package(ModelPackageArnList=[arn]),
        lambda: sm.list_tags(ResourceArn=GROUP_ARN),
    ]
    answers = []
    for call in refused:
        with pytest.raises(ClientError) as excinfo:
            call()
        answers.append(_error(excinfo))
    assert {code for code, _ in answers} == {"AccessDeniedException"}
    assert answers[4][1] == (
        f"User: arn:aws:iam::{ACCOUNT}:user/{CREATOR} is not authorized to perform: "
        f"sagemaker:DescribeModelPackage on resource: {arn} with an explicit deny in an identity-based policy"
    )
    assert f"sagemaker:ListTags on resource: {GROUP_ARN} " in answers[-1][1]
    assert sm.create_model_package(ModelPackageGroupName="fraud")["ModelPackageArn"].endswith("/fraud/1")
    names = [
        g["ModelPackageGroupName"] for g in sm.list_model_package_groups()["ModelPackageGroupSummaryList"]
    ]
    assert names == ["churn", "fraud"]
    denied = [call for call in backend.calls() if call.faults == ("denied",)]
    assert len(denied) == len(refused) and {call.error for call in denied} == {"AccessDeniedException"}
    backend.clear_faults()
    assert sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "PendingManualApproval"


def test_a_denial_is_exact_about_the_group_name(backend: RegistryBackend, sm: SageMakerClient) -> None:
    backend.deny_group("churn")
    sm.create_model_package_group(ModelPackageGroupName="churn-v2")
    with pytest.raises(ClientError) as excinfo:
        sm.create_model_package_group(ModelPackageGroupName="churn")
    assert _error(excinfo)[0] == "AccessDeniedException"
    assert sm.describe_model_package_group(ModelPackageGroupName="churn-v2")


@pytest.mark.usefixtures("group")
def test_a_delay_after_apply_holds_the_answer_of_a_change_already_made(
    backend: RegistryBackend, sm: SageMakerClient, session: boto3.session.Session
) -> None:
    backend.delay("CreateModelPackage", 30, after_apply=True)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_create, session.client("sagemaker"))
        while not backend.calls_to("CreateModelPackage"):
            assert time.monotonic() - started < 10, "the delayed create never arrived"
            time.sleep(0.01)
        (call,) = backend.calls_to("CreateModelPackage")
        assert (call.error, call.faults) == (None, ("delayed",))
        assert not pending.done()
        # Made, and visible to everyone else, while its own client still waits for the answer.
        (listed,) = sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
        backend.clear_faults()
        assert pending.result(timeout=10) == listed["ModelPackageArn"]
    assert time.monotonic() - started < 15


@pytest.mark.usefixtures("group")
def test_a_delay_before_apply_makes_the_change_late_and_counts_its_calls(
    backend: RegistryBackend, sm: SageMakerClient
) -> None:
    backend.delay(["CreateModelPackage"], 0.3, times=1)
    started = time.monotonic()
    _create(sm)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    _create(sm)  # the rule is used up
    assert time.monotonic() - started < 0.3
    assert [call.faults for call in backend.calls_to("CreateModelPackage")] == [("delayed",), ()]


_RATE = {
    "operations": "*",
    "rate": 0.5,
    "codes": ["X"],
    "seed": 0,
    "after_apply": False,
    "retries_pass": False,
}


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("rate", {**_RATE, "rate": 1.5}, "between 0 and 1"),
        ("rate", {**_RATE, "codes": []}, "at least one error code"),
        ("rate", {"operations": ["CreateModelPackages"], "rate": 0.5}, "missing"),
        (
            "delay",
            {"operations": ["CreateModelPackages"], "seconds": 1, "times": 1, "after_apply": False},
            "unknown",
        ),
        ("delay", {"operations": "*", "seconds": -1, "times": 1, "after_apply": False}, "seconds >= 0"),
        ("lightning", {}, "unknown fault kind"),
    ],
)
def test_a_rule_that_cannot_be_meant_is_refused(
    backend: RegistryBackend, kind: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        backend.add_fault(kind, options)


@pytest.mark.usefixtures("group")
def test_reset_forgets_every_fault_rule(backend: RegistryBackend, session: boto3.session.Session) -> None:
    backend.fault_rate("*", 1.0)
    backend.deny_group("churn")
    backend.delay("*", 30)
    backend.inject_fault("CreateModelPackageGroup")
    backend.reset()
    client = _once(session)
    started = time.monotonic()
    client.create_model_package_group(ModelPackageGroupName="churn")
    assert _outcomes(client, 3) == [None] * 3
    assert time.monotonic() - started < 5
    assert all(call.faults == () for call in backend.calls())
