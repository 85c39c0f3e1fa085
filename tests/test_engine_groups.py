"""Groups are case-safe and owner-checked: `Churn` and `churn` never share one, and a group that is not
the model's (made by hand, or by another tool) is never merged into.

A real SQLite MLflow and the in-process SageMaker emulator, which, like SageMaker, refuses a group whose
name differs from an existing one only in case.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import mlflow
import pytest
from e2e_support import mlsync
from mlflow_models import log_version

from mlflow_sagemaker_registry.emulator import RegistryBackend, emulated_aws
from mlflow_sagemaker_registry.mapping.identity import KEY_MODEL, group_name
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN, TAG_SYNC_STATUS


@pytest.fixture
def backend(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RegistryBackend]:
    with emulated_aws() as emulated:
        boto3.client("s3").create_bucket(Bucket="groups")
        monkeypatch.setenv("MLSYNC_S3_PREFIX", "s3://groups/mlsync")
        yield emulated


def groups() -> dict[str, list[str]]:
    """Each group and the MLflow models of the packages in it."""
    sagemaker = boto3.client("sagemaker")
    found: dict[str, list[str]] = {}
    for group in sagemaker.list_model_package_groups(MaxResults=100)["ModelPackageGroupSummaryList"]:
        name = group["ModelPackageGroupName"]
        listed = sagemaker.list_model_packages(ModelPackageGroupName=name)["ModelPackageSummaryList"]
        found[name] = [
            sagemaker.describe_model_package(ModelPackageName=p["ModelPackageArn"])[
                "CustomerMetadataProperties"
            ][KEY_MODEL]
            for p in listed
        ]
    return found


def test_names_that_differ_only_in_case_get_groups_of_their_own(backend: RegistryBackend) -> None:
    log_version("Churn", seed=1)
    log_version("churn", seed=2)

    result = mlsync("push", "--all")

    assert result.exit_code == 0, result.output
    assert groups() == {group_name("Churn"): ["Churn"], "churn": ["churn"]}


def test_a_group_that_is_not_the_models_is_refused_and_the_other_models_go_on(
    backend: RegistryBackend,
) -> None:
    log_version("churn", seed=1)
    log_version("fraud", seed=2)
    boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName="churn")  # by hand, no owner

    result = mlsync("push", "--all")

    assert result.exit_code == 1, result.output
    assert (
        "belongs to no MLflow model" in result.output
        and "tag it mlflow.registered_model=churn" in result.output
    )
    assert groups() == {"churn": [], "fraud": ["fraud"]}
    status = mlflow.MlflowClient().get_model_version("churn", "1").tags[TAG_SYNC_STATUS]
    assert status.startswith("failed: ") and "already exists and belongs to" in status

    # Tagging the group as the message says lets mlsync use it.
    arn = boto3.client("sagemaker").describe_model_package_group(ModelPackageGroupName="churn")[
        "ModelPackageGroupArn"
    ]
    boto3.client("sagemaker").add_tags(ResourceArn=arn, Tags=[{"Key": KEY_MODEL, "Value": "churn"}])
    assert mlsync("push", "--all").exit_code == 0
    assert groups()["churn"] == ["churn"]


def test_a_model_with_capitals_keeps_the_group_an_older_mlsync_made(backend: RegistryBackend) -> None:
    """Before 0.2 `Churn` was mirrored to a group named `Churn`: the upgrade keeps using it, no new group."""
    log_version("Churn", seed=1)
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(
        ModelPackageGroupName="Churn", Tags=[{"Key": KEY_MODEL, "Value": "Churn"}]
    )  # as mlsync < 0.2 made it

    first = mlsync("push", "Churn")
    log_version("Churn", seed=2)
    second = mlsync("push", "Churn")

    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    assert groups() == {"Churn": ["Churn", "Churn"]}
    arn = mlflow.MlflowClient().get_model_version("Churn", "2").tags[TAG_PACKAGE_ARN]
    assert ":model-package/Churn/2" in arn
    backend.clear_calls()
    assert "In sync" in mlsync("push", "Churn").output
    assert "ListTags" not in backend.call_counts()  # the linked versions vouch for the group


def test_a_prompt_is_never_mirrored(backend: RegistryBackend) -> None:
    """MLflow keeps prompts as registered models; `push` of one, or of everything, leaves it alone."""
    mlflow.genai.register_prompt(name="greeting", template="Hello {{name}}")
    log_version("fraud", seed=1)

    named, everything = mlsync("push", "greeting"), mlsync("push", "--all")

    assert (named.exit_code, everything.exit_code) == (0, 0), named.output + everything.output
    assert "In sync" in named.output
    assert groups() == {"fraud": ["fraud"]}
