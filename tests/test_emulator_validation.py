"""The generic validator and the Java-regex translation, without boto3 in between."""

from __future__ import annotations

import json
from typing import Any

import botocore.loaders
import pytest

from mlflow_sagemaker_registry.emulator import RegistryBackend
from mlflow_sagemaker_registry.emulator.errors import (
    EmulatorError,
    SerializationError,
    UnknownOperationError,
    ValidationError,
)
from mlflow_sagemaker_registry.emulator.java_regex import compile_java
from mlflow_sagemaker_registry.emulator.validation import validate_request
from mlflow_sagemaker_registry.emulator.wire import answer, region_of

GROUP = {"ModelPackageGroupName": "churn"}


def _refusal(operation: str, params: Any) -> EmulatorError:
    with pytest.raises(EmulatorError) as excinfo:
        validate_request(operation, params)
    return excinfo.value


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        (".*", "one line", True),
        (".*", "two\nlines", False),  # Java's . stops at line terminators
        (".*", "two\u2028lines", False),
        (".*(?:[ \\r\\n\\t].*)*", "two\nlines", True),
        ("[\\w]+", "abc_1", True),
        ("[\\w]+", "é", False),  # Java's \w is ASCII
        ("\\d+", "٣", False),
        ("[\\p{L}\\p{N}]+", "éü日本3", True),  # ... but \p{L} is Unicode
        ("[\\p{Alnum}]+", "é", False),
        ("[\\S]+", "no-space", True),
        ("[\\S]+", "a space", False),
        ("[\\uD800\\uDC00-\\uDBFF\\uDFFF]", "😀", True),  # a UTF-16 surrogate-pair range
        ("([\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@]*)${1,128}", "a b:c/d=e+f-g@h", True),
        ("([\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@]*)${1,128}", "[1, 2]", False),
        ("[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", "bad name_x", False),
        ("[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", "churn-v2", True),
    ],
)
def test_java_patterns_match_as_in_java(pattern: str, value: str, matches: bool) -> None:
    assert bool(compile_java(pattern).fullmatch(value)) is matches


def test_every_pattern_of_the_sagemaker_model_compiles() -> None:
    shapes = botocore.loaders.create_loader().load_service_model("sagemaker", "service-2")["shapes"]
    patterns = {shape["pattern"] for shape in shapes.values() if "pattern" in shape}
    assert len(patterns) > 100
    for pattern in patterns:
        compile_java(pattern)


def test_lengths_count_utf16_units_as_java_does() -> None:
    error = _refusal("CreateModelPackage", {**GROUP, "CustomerMetadataProperties": {"k": "😀" * 129}})
    assert "less than or equal to 256" in error.message


def test_nested_members_are_named_by_path() -> None:
    params = {**GROUP, "InferenceSpecification": {"Containers": [{"Image": "ok"}, {"Image": "not ok"}]}}
    error = _refusal("CreateModelPackage", params)
    assert "Value 'not ok' at 'inferenceSpecification.containers.2.member.image'" in error.message


def test_missing_required_members_are_null() -> None:
    error = _refusal("CreateModelPackage", {**GROUP, "ModelLifeCycle": {"Stage": "QA"}})
    assert error.message == (
        "1 validation error detected: Value null at 'modelLifeCycle.stageStatus' failed to satisfy "
        "constraint: Member must not be null"
    )


def test_enum_and_range_messages() -> None:
    error = _refusal("ListModelPackages", {"MaxResults": 0, "SortBy": "Version"})
    assert error.message == (
        "2 validation errors detected: Value '0' at 'maxResults' failed to satisfy constraint: Member must "
        "have value greater than or equal to 1; Value 'Version' at 'sortBy' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Name, CreationTime]"
    )


def test_scalar_list_items_are_reported_once_for_the_list() -> None:
    error = _refusal(
        "DeleteTags", {"ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:x/y", "TagKeys": ["a,"]}
    )
    assert (
        "Value '[a,]' at 'tagKeys' failed to satisfy constraint: Member must satisfy constraint: ["
        in error.message
    )


def test_map_keys_are_checked() -> None:
    error = _refusal("CreateModelPackage", {**GROUP, "CustomerMetadataProperties": {"a,b": "v"}})
    assert (
        "Map keys must satisfy constraint: [Member must satisfy regular expression pattern" in error.message
    )


def test_sensitive_values_are_not_echoed() -> None:
    error = _refusal("CreateModelPackage", {**GROUP, "ModelCard": {"ModelCardContent": "secret\n"}})
    assert "Value at 'modelCard.modelCardContent'" in error.message and "secret" not in error.message


@pytest.mark.parametrize(
    "params",
    [
        {**GROUP, "Colour": "blue"},
        {**GROUP, "CustomerMetadataProperties": {"k": [1, 2]}},
        {**GROUP, "CertifyForMarketplace": "yes"},
        {"ModelPackageGroupName": 7},
        ["not", "an", "object"],
    ],
)
def test_unreadable_requests_are_serialization_errors(params: Any) -> None:
    assert isinstance(_refusal("CreateModelPackage", params), SerializationError)


def test_a_valid_request_is_returned() -> None:
    params = {**GROUP, "CustomerMetadataProperties": {"mlflow.source": "models:/churn/1"}}
    assert validate_request("CreateModelPackage", params) is params


def test_unknown_operations() -> None:
    assert isinstance(_refusal("DescribeUnicorn", {}), UnknownOperationError)
    assert isinstance(_refusal("CreateModelPackage", {**GROUP, "ModelPackageGroupName": ""}), ValidationError)


# -- the wire protocol -----------------------------------------------------------------------------


def _wire(target: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
    reply = answer(RegistryBackend(), target, body, None)
    assert reply.headers["Content-Type"] == "application/x-amz-json-1.1"
    payload: dict[str, Any] = json.loads(reply.body)
    return reply.status, payload


def test_wire_errors_have_the_json_protocol_shape() -> None:
    assert _wire("SageMaker.CreateModelPackageGroup", b'{"ModelPackageGroupName": "a_b"}')[1]["__type"] == (
        "ValidationException"
    )
    assert _wire("SageMaker.CreateModelPackageGroup", b"not json") == (
        400,
        {
            "__type": "SerializationException",
            "message": "The request body is not valid JSON: Expecting value: line 1 column 1 (char 0)",
        },
    )
    assert _wire("S3.ListBuckets", b"{}")[1]["__type"] == "UnknownOperationException"
    assert _wire("SageMaker.ListModelPackageGroups", b"")[0] == 200


def test_timestamps_go_out_as_epoch_seconds() -> None:
    backend = RegistryBackend()
    answer(backend, "SageMaker.CreateModelPackageGroup", b'{"ModelPackageGroupName": "churn"}', None)
    reply = answer(
        backend, "SageMaker.DescribeModelPackageGroup", b'{"ModelPackageGroupName": "churn"}', None
    )
    assert isinstance(json.loads(reply.body)["CreationTime"], float)


def test_the_region_comes_from_the_credential_scope() -> None:
    header = "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-central-1/sagemaker/aws4_request, Signature=x"
    assert region_of(header) == "eu-central-1"
    assert region_of(None) == "us-east-1"


def test_structures_inside_maps_are_checked_member_by_member() -> None:
    params = {"TrialComponentName": "t", "InputArtifacts": {"data": {"MediaType": "text/csv"}}}
    error = _refusal("CreateTrialComponent", params)
    assert "Value null at 'inputArtifacts.data.value' failed" in error.message


def test_a_union_needs_exactly_one_member() -> None:
    error = _refusal("CreateAutoMLJobV2", {"AutoMLProblemTypeConfig": {}})
    assert (
        "Value '{}' at 'autoMLProblemTypeConfig' failed to satisfy constraint: Member must have exactly one"
        in (error.message)
    )
