"""triggers/eventbridge.py: SageMaker's EventBridge events -> the versioned package, or why not (pure)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from mlflow_sagemaker_registry.triggers.eventbridge import Ignored, PackageEvent, parse_event

# AWS's example "SageMaker Model Package State Change" event (developer guide, "Events that Amazon
# SageMaker sends to Amazon EventBridge"), as JSON text, its long S3 paths shortened. The page's example
# also repeats `"source"` as `["aws.sagemaker"]` after `"resources"`, a slip of the page: EventBridge
# sends `source` once, a string.
AWS_EXAMPLE: dict[str, Any] = json.loads(
    """
{
  "version": "0",
  "id": "844e2571-85d4-695f-b930-0153b71dcb42",
  "detail-type": "SageMaker Model Package State Change",
  "source": "aws.sagemaker",
  "account": "123456789012",
  "time": "2021-02-24T17:00:14Z",
  "region": "us-east-2",
  "resources": [
    "arn:aws:sagemaker:us-east-2:123456789012:model-package/versionedmp-p-idy6c3e1fiqj/2"
  ],
  "detail": {
    "ModelPackageGroupName": "versionedmp-p-idy6c3e1fiqj",
    "ModelPackageVersion": 2,
    "ModelPackageArn": "arn:aws:sagemaker:us-east-2:123456789012:model-package/versionedmp-p-idy6c3e1fiqj/2",
    "CreationTime": "2021-02-24T17:00:14Z",
    "InferenceSpecification": {
      "Containers": [
        {
          "Image": "257758044811.dkr.ecr.us-east-2.amazonaws.com/sagemaker-xgboost:1.0-1-cpu-py3",
          "ImageDigest": "sha256:4dc8a7e4a010a19bb9e0a6b063f355393f6e623603361bd8b105f554d4f0c004",
          "ModelDataUrl": "s3://sagemaker-project-p-idy6c3e1fiqj/versionedmp-p-idy6c3e1fiqj/model.tar.gz"
        }
      ],
      "SupportedContentTypes": ["text/csv"],
      "SupportedResponseMIMETypes": ["text/csv"]
    },
    "ModelPackageStatus": "Completed",
    "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
    "CertifyForMarketplace": false,
    "ModelApprovalStatus": "Rejected",
    "MetadataProperties": {
      "GeneratedBy": "arn:aws:sagemaker:us-east-2:123456789012:pipeline/versionedmp-p-idy6c3e1fiqj/execution/4r83jejmhorv"
    },
    "ModelMetrics": {
      "ModelQuality": {
        "Statistics": {
          "ContentType": "application/json",
          "S3Uri": "s3://sagemaker-project-p-idy6c3e1fiqj/evaluation/evaluation.json"
        }
      }
    },
    "LastModifiedTime": "2021-02-24T17:00:14Z"
  }
}
"""  # noqa: E501 (AWS's pipeline ARN)
)
ARN = "arn:aws:sagemaker:us-east-2:123456789012:model-package/versionedmp-p-idy6c3e1fiqj/2"


def example(**changes: Any) -> dict[str, Any]:
    """AWS's example with top-level members replaced (a value of None removes the member)."""
    event = copy.deepcopy(AWS_EXAMPLE)
    for key, value in changes.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def with_detail(**changes: Any) -> dict[str, Any]:
    """AWS's example with `detail` members replaced (a value of None removes the member)."""
    detail = copy.deepcopy(AWS_EXAMPLE["detail"])
    for key, value in changes.items():
        if value is None:
            detail.pop(key, None)
        else:
            detail[key] = value
    return example(detail=detail)


def ignored(event: object) -> Ignored:
    parsed = parse_event(event)
    assert isinstance(parsed, Ignored), parsed
    return parsed


def test_awss_documented_example_names_its_versioned_package() -> None:
    assert parse_event(AWS_EXAMPLE) == PackageEvent(ARN, "versionedmp-p-idy6c3e1fiqj", 2, None)


def test_the_current_pages_fields_are_kept_for_the_log() -> None:
    event = with_detail(
        ModelLifeCycle={"Stage": "Production", "StageStatus": "Approved"},
        UpdatedModelPackageFields=["ModelApprovalStatus", "ApprovalDescription"],
    )
    assert parse_event(event) == PackageEvent(
        ARN, "versionedmp-p-idy6c3e1fiqj", 2, ("ModelApprovalStatus", "ApprovalDescription")
    )


@pytest.mark.parametrize("fields", [None, [], "ModelApprovalStatus", {"a": 1}])
def test_updated_fields_absent_empty_or_odd_do_not_matter(fields: object) -> None:
    parsed = parse_event(with_detail(UpdatedModelPackageFields=fields))
    assert isinstance(parsed, PackageEvent)
    assert parsed.arn == ARN
    assert parsed.updated_fields in (None, ())


def test_the_arn_comes_from_resources_when_detail_has_none() -> None:
    expected = PackageEvent(ARN, "versionedmp-p-idy6c3e1fiqj", 2)
    assert parse_event(with_detail(ModelPackageArn=None)) == expected
    assert parse_event(with_detail(ModelPackageArn="")) == expected
    assert parse_event(example(detail=None)) == expected  # no detail at all


def test_detail_wins_over_resources() -> None:
    other = "arn:aws:sagemaker:us-east-2:123456789012:model-package/Churn-Model/7"
    assert parse_event(with_detail(ModelPackageArn=other)) == PackageEvent(other, "Churn-Model", 7)


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws-cn:sagemaker:cn-north-1:123456789012:model-package/churn/1",
        "arn:aws-us-gov:sagemaker:us-gov-west-1:123456789012:model-package/churn/12",
        "arn:aws:sagemaker:ap-southeast-2:123456789012:model-package/a--b-9/3",
    ],
)
def test_other_partitions_and_group_names_parse(arn: str) -> None:
    parsed = parse_event(with_detail(ModelPackageArn=arn))
    assert isinstance(parsed, PackageEvent)
    assert (parsed.arn, str(parsed.version)) == (arn, arn.rsplit("/", 1)[1])


@pytest.mark.parametrize("event", [None, [], "{}", 42, [AWS_EXAMPLE]])
def test_what_is_not_a_json_object_is_malformed(event: object) -> None:
    assert ignored(event).malformed
    assert "not a JSON object" in ignored(event).reason


@pytest.mark.parametrize(
    "event", [{}, example(source=None), example(**{"detail-type": None}), {"detail": AWS_EXAMPLE["detail"]}]
)
def test_an_event_without_source_or_detail_type_is_malformed(event: object) -> None:
    assert ignored(event) == Ignored(
        "not an EventBridge event: it has no 'source' or no 'detail-type'", malformed=True
    )


@pytest.mark.parametrize(
    "event",
    [
        example(source="aws.s3"),
        example(source=["aws.sagemaker"]),  # the page's slip, were it sent as such
        example(**{"detail-type": "SageMaker Model State Change"}),
        example(**{"detail-type": "SageMaker Endpoint State Change"}),
    ],
)
def test_other_sources_and_detail_types_are_unrelated(event: object) -> None:
    result = ignored(event)
    assert not result.malformed
    assert "not a 'SageMaker Model Package State Change' event from aws.sagemaker" in result.reason


@pytest.mark.parametrize("detail", ["x", ["ModelPackageArn"]])
def test_a_detail_that_is_not_an_object_is_malformed(detail: object) -> None:
    assert ignored(example(detail=detail)).malformed


@pytest.mark.parametrize("resources", [None, [], "arn", [""], {}])
def test_no_arn_anywhere_is_malformed(resources: object) -> None:
    event = with_detail(ModelPackageArn=None)
    event["resources"] = resources
    result = ignored(event)
    assert result == Ignored(
        "the event names no package: no detail.ModelPackageArn and no resources", malformed=True
    )


def test_an_arn_that_is_not_a_string_is_malformed() -> None:
    assert ignored(with_detail(ModelPackageArn=["arn"])).malformed
    event = with_detail(ModelPackageArn=None)
    event["resources"] = [{"arn": ARN}]
    assert "not a string but dict" in ignored(event).reason


SAGEMAKER = "arn:aws:sagemaker:us-east-2:123456789012:"


@pytest.mark.parametrize(
    ("resource", "says", "malformed"),
    [
        ("model-package-group/churn", "is a model package group, not a package version", True),
        ("model-package/marketplace-model", "is an unversioned model package (in no group)", False),
        ("model/churn", "is a SageMaker model ARN", True),
        ("endpoint/churn", "is a SageMaker endpoint ARN", True),
        ("model-package/churn/0", "not a valid model package", True),
        ("model-package/churn/x", "not a valid model package", True),
        ("model-package/churn/1/2", "not a valid model package", True),
        ("model-package/bad_name/1", "not a valid model package", True),
        ("model-package/", "not a valid model package", True),
        ("model-package/churn/1 ", "not a valid model package", True),
    ],
)
def test_sagemaker_arns_of_other_kinds_are_ignored_with_what_they_are(
    resource: str, says: str, malformed: bool
) -> None:
    result = ignored(with_detail(ModelPackageArn=SAGEMAKER + resource))
    assert says in result.reason
    assert result.malformed is malformed


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:s3:::bucket/model-package/churn/1",
        "arn:aws:sagemaker:us-east-2:1234:model-package/churn/1",
        "model-package/churn/1",
        " " + ARN,
    ],
)
def test_what_is_not_a_sagemaker_arn_is_malformed(arn: str) -> None:
    assert ignored(with_detail(ModelPackageArn=arn)) == Ignored(
        f"{arn!r} is not a SageMaker ARN", malformed=True
    )
