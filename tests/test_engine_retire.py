"""Engine.retire: what happens in SageMaker to the packages of MLflow versions that were deleted."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import mlflow
import pytest
from mlflow_models import log_version

from mlflow_sagemaker_registry.config import load_settings
from mlflow_sagemaker_registry.emulator import RegistryBackend, emulated_aws
from mlflow_sagemaker_registry.engine import Engine
from mlflow_sagemaker_registry.errors import ConfigError
from mlflow_sagemaker_registry.mapping.identity import group_name
from mlflow_sagemaker_registry.wiring import connect

MODEL = "retired model"


@pytest.fixture
def backend(mlflow_uri: str) -> Iterator[RegistryBackend]:
    with emulated_aws() as emulated:
        boto3.client("s3").create_bucket(Bucket="retire")
        log_version(MODEL, seed=1)
        log_version(MODEL, seed=2)
        yield emulated


def engine(on_delete: str) -> Engine:
    flags = {"s3_prefix": "s3://retire/mlsync", "on_delete": on_delete}
    return connect(load_settings(flags, env={}))


def approvals() -> dict[str, str]:
    sagemaker = boto3.client("sagemaker")
    listed = sagemaker.list_model_packages(ModelPackageGroupName=group_name(MODEL))["ModelPackageSummaryList"]
    return {s["ModelPackageArn"].rsplit("/", 1)[1]: s["ModelApprovalStatus"] for s in listed}


def test_by_default_a_deleted_versions_package_is_rejected_and_kept(backend: RegistryBackend) -> None:
    mirror = engine("reject")
    mirror.push([MODEL])
    mlflow.MlflowClient().delete_model_version(MODEL, "1")

    report = mirror.retire(MODEL, ["1"])

    assert approvals() == {"1": "Rejected", "2": "PendingManualApproval"}
    assert len(report.packages_updated) == 1 and report.packages_deleted == []
    backend.clear_calls()
    assert mirror.retire(MODEL, ["1"]).packages_updated == []  # already Rejected: nothing to do
    assert "UpdateModelPackage" not in backend.call_counts()


def test_with_on_delete_delete_the_package_is_deleted(backend: RegistryBackend) -> None:
    mirror = engine("delete")
    mirror.push([MODEL])
    mlflow.MlflowClient().delete_model_version(MODEL, "1")

    report = mirror.retire(MODEL, ["1"])

    assert approvals() == {"2": "PendingManualApproval"}
    assert [arn.rsplit("/", 1)[1] for arn in report.packages_deleted] == ["1"]
    assert report.ok


def test_a_package_deleted_meanwhile_counts_as_deleted(backend: RegistryBackend) -> None:
    mirror = engine("delete")
    mirror.push([MODEL])
    arn = boto3.client("sagemaker").list_model_packages(ModelPackageGroupName=group_name(MODEL))[
        "ModelPackageSummaryList"
    ][0]["ModelPackageArn"]
    boto3.client("sagemaker").delete_model_package(ModelPackageName=arn)

    mirror.registry.delete_package(arn)  # a retried or concurrent delete: no error

    assert backend.calls_to("DeleteModelPackage")[-1].error is not None


def test_on_delete_takes_only_reject_or_delete() -> None:
    with pytest.raises(ConfigError, match="on_delete 'purge': use reject"):
        load_settings({"on_delete": "purge"}, env={})
