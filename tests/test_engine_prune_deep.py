"""`push --prune` retires the packages of deleted MLflow versions; `push --deep` sees hand edits in SageMaker.

A real SQLite MLflow and the in-process SageMaker emulator.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import mlflow
import pytest
from e2e_support import mlsync, writes
from mlflow_models import log_version

from mlflow_sagemaker_registry.domain import ApprovalStatus, ObservedPackage, SourceModel, SourceVersion
from mlflow_sagemaker_registry.emulator import RegistryBackend, emulated_aws
from mlflow_sagemaker_registry.mapping.identity import KEY_MODEL, KEY_SERVER, KEY_VERSION
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN
from mlflow_sagemaker_registry.planner import RETIRED_REASON, retire_actions

MODEL = "pruned model"


@pytest.fixture
def backend(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RegistryBackend]:
    with emulated_aws() as emulated:
        boto3.client("s3").create_bucket(Bucket="prune")
        monkeypatch.setenv("MLSYNC_S3_PREFIX", "s3://prune/mlsync")
        for seed in range(3):
            log_version(MODEL, seed=seed, params={"alpha": str(seed)})
        assert mlsync("push", MODEL).exit_code == 0
        emulated.clear_calls()
        yield emulated


def approval_of(arn: str) -> str:
    return str(boto3.client("sagemaker").describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"])


def test_prune_rejects_the_package_of_a_deleted_version_once(backend: RegistryBackend) -> None:
    client = mlflow.MlflowClient()
    arn = client.get_model_version(MODEL, "1").tags[TAG_PACKAGE_ARN]
    client.delete_model_version(MODEL, "1")

    assert "In sync" in mlsync("push", MODEL).output  # a push that does not prune cannot see it
    result = mlsync("push", MODEL, "--prune")

    assert result.exit_code == 0, result.output
    assert "~ package pruned model v1: approval PendingManualApproval -> Rejected" in result.output
    assert approval_of(arn) == "Rejected"
    backend.clear_calls()
    again = mlsync("push", MODEL, "--prune")
    assert "In sync" in again.output and writes(backend.calls()) == []


def test_prune_follows_on_delete_and_the_setting(
    backend: RegistryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = mlflow.MlflowClient()
    arn = client.get_model_version(MODEL, "2").tags[TAG_PACKAGE_ARN]
    client.delete_model_version(MODEL, "2")
    monkeypatch.setenv("MLSYNC_ON_DELETE", "delete")
    monkeypatch.setenv("MLSYNC_PRUNE", "true")  # every push prunes, the periodic reconcile of `serve` too

    result = mlsync("push", MODEL)

    assert result.exit_code == 0, result.output
    assert [c.params["ModelPackageName"] for c in backend.calls_to("DeleteModelPackage")] == [arn]


def test_deep_sees_a_hand_edit_that_the_sync_digest_vouches_for(backend: RegistryBackend) -> None:
    arn = mlflow.MlflowClient().get_model_version(MODEL, "3").tags[TAG_PACKAGE_ARN]
    boto3.client("sagemaker").update_model_package(
        ModelPackageArn=arn, CustomerMetadataProperties={"param.alpha": "edited by hand"}
    )

    assert "In sync" in mlsync("push", MODEL).output  # trusted from its summary: not described
    backend.clear_calls()
    result = mlsync("push", MODEL, "--deep")

    assert result.exit_code == 0, result.output
    (update,) = [c.params for c in backend.calls_to("UpdateModelPackage")]
    assert update == {"ModelPackageArn": arn, "CustomerMetadataProperties": {"param.alpha": "2"}}
    assert len(backend.calls_to("DescribeModelPackage")) == 3  # every package, once


def test_retire_actions_never_take_a_registering_version_or_another_registry_for_deleted() -> None:
    def package(version: str, source: str = "src") -> ObservedPackage:
        metadata = {KEY_SERVER: source, KEY_MODEL: MODEL, KEY_VERSION: version}
        return ObservedPackage(
            f"arn/{version}{source}", "g", int(version), ApprovalStatus.APPROVED, None, metadata
        )

    model = SourceModel(MODEL, versions=(SourceVersion(MODEL, "1"),), registering=("2",))
    existing = {v.version for v in model.versions} | set(model.registering)
    packages = [package("1"), package("2"), package("3"), package("3", source="elsewhere")]
    (retired,) = retire_actions(MODEL, packages, "src", lambda v: v not in existing, delete=False)
    assert (retired.version, retired.describe()["approval_reason"]) == ("3", RETIRED_REASON)
    assert retired.changes_approval  # counted by the safety threshold
