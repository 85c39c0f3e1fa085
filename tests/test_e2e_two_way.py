"""End to end, two-way approval: reviews made in SageMaker survive `push`, reach MLflow, and roll back.

A real SQLite MLflow with real sklearn models and the emulator process on 127.0.0.1. The reviewer is
another AWS identity (its own access key) calling `UpdateModelPackage`, as `aws sagemaker
update-model-package --model-approval-status Approved` would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import mlflow
import pytest
from e2e_support import REVIEWER_KEY, building_registry, calls_since, mlsync, reviewer, use_registry, writes
from mlflow_models import log_version

from mlflow_sagemaker_registry.domain import ModelCard
from mlflow_sagemaker_registry.emulator import EmulatorProcess
from mlflow_sagemaker_registry.mapping.identity import group_name
from mlflow_sagemaker_registry.mapping.model_card import KEY_MODEL_CARD, card_digest
from mlflow_sagemaker_registry.mapping.tags import (
    TAG_APPROVAL_CONFLICT,
    TAG_PACKAGE_ARN,
    TAG_REVIEW_BY,
    TAG_REVIEW_DESCRIPTION,
    TAG_REVIEW_TIME,
    TAG_SYNCED_APPROVAL,
)

pytestmark = pytest.mark.e2e

BUCKET = "mlsync-two-way"
REVIEWED = "reviewed model"
ROLLED = "rolled back model"


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two models: four versions to review, three to promote and roll back."""
    root = tmp_path_factory.mktemp("two-way")
    with building_registry(root, "two-way"):
        for seed in range(4):
            log_version(REVIEWED, metrics={"accuracy": 0.8 + seed / 100}, seed=seed)
        for seed in range(3):
            log_version(ROLLED, metrics={"accuracy": 0.9 + seed / 100}, seed=seed)
        yield root


@pytest.fixture
def env(emulator: EmulatorProcess, registry_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_registry(monkeypatch, emulator.url, registry_dir, BUCKET)


def package_arn(model: str, version: str) -> str:
    return str(mlflow.MlflowClient().get_model_version(model, version).tags[TAG_PACKAGE_ARN])


def review(emulator: EmulatorProcess, model: str, version: str, status: str, why: str) -> None:
    reviewer(emulator.url).update_model_package(
        ModelPackageArn=package_arn(model, version), ModelApprovalStatus=status, ApprovalDescription=why
    )


def approval(model: str, version: str) -> str:
    answer = boto3.client("sagemaker").describe_model_package(ModelPackageName=package_arn(model, version))
    return str(answer["ModelApprovalStatus"])


def mlflow_state(model: str) -> dict[str, Any]:
    """Every tag and alias of the model's versions: what a reconcile that writes nothing leaves alone."""
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name = '{model}'")
    return {
        "tags": {v.version: dict(v.tags) for v in versions},
        "aliases": dict(client.get_registered_model(model).aliases),
    }


def assert_converged(emulator: EmulatorProcess, model: str) -> None:
    """A further push writes nothing, anywhere."""
    before, mark = mlflow_state(model), len(emulator.calls())
    result = mlsync("push", model)
    assert result.exit_code == 0, result.output
    assert "In sync" in result.output
    assert writes(calls_since(emulator, mark)) == []
    assert mlflow_state(model) == before


@pytest.mark.mlflow_compat
def test_a_review_in_sagemaker_survives_push_and_reaches_mlflow(env: None, emulator: EmulatorProcess) -> None:
    assert mlsync("push", REVIEWED).exit_code == 0
    review(emulator, REVIEWED, "1", "Approved", "fairness review passed")
    mark = len(emulator.calls())

    result = mlsync("push", REVIEWED)

    assert result.exit_code == 0, result.output
    assert (
        "< mlflow  reviewed model v1: approval PendingManualApproval -> Approved from SageMaker"
        in result.output
    )
    assert approval(REVIEWED, "1") == "Approved"
    updates = [c.params for c in calls_since(emulator, mark) if c.operation == "UpdateModelPackage"]
    assert all("ModelApprovalStatus" not in params for params in updates)  # only the lifecycle follows
    tags = mlflow.MlflowClient().get_model_version(REVIEWED, "1").tags
    assert tags["sagemaker.approval"] == "Approved"
    assert tags[TAG_SYNCED_APPROVAL] == "Approved"
    assert tags[TAG_REVIEW_DESCRIPTION] == "fairness review passed"
    assert tags[TAG_REVIEW_BY].endswith(f":user/{REVIEWER_KEY}")
    assert tags[TAG_REVIEW_TIME].startswith("20")
    assert_converged(emulator, REVIEWED)


@pytest.mark.mlflow_compat
def test_a_rejection_is_recorded_by_pull_which_never_writes_to_sagemaker(
    env: None, emulator: EmulatorProcess
) -> None:
    assert mlsync("push", REVIEWED).exit_code == 0
    review(emulator, REVIEWED, "2", "Rejected", "drift on the holdout set")
    before = mlflow_state(REVIEWED)

    dry = mlsync("pull", REVIEWED, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "reviewed model v2: approval PendingManualApproval -> Rejected from SageMaker" in dry.output
    assert mlflow_state(REVIEWED) == before

    mark = len(emulator.calls())
    result = mlsync("--output", "json", "pull", REVIEWED)

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["report"]["approvals_pulled"] == [f"{REVIEWED}/2"]
    assert writes(calls_since(emulator, mark)) == []
    tags = mlflow.MlflowClient().get_model_version(REVIEWED, "2").tags
    assert (tags["sagemaker.approval"], tags[TAG_REVIEW_DESCRIPTION]) == (
        "Rejected",
        "drift on the holdout set",
    )
    mark, before = len(emulator.calls()), mlflow_state(REVIEWED)
    again = mlsync("pull", REVIEWED)
    assert "In sync" in again.output
    assert writes(calls_since(emulator, mark)) == [] and mlflow_state(REVIEWED) == before
    # The next push changes no approval; only the lifecycle's StageStatus and the model card's status follow
    # the review (MLflow owns the lifecycle and the card: docs/mapping.md).
    mark = len(emulator.calls())
    assert mlsync("push", REVIEWED).exit_code == 0
    (update,) = [c.params for c in calls_since(emulator, mark) if c.operation == "UpdateModelPackage"]
    card = update.pop("ModelCard")
    assert card["ModelCardStatus"] == "Draft"
    assert update == {
        "ModelPackageArn": package_arn(REVIEWED, "2"),
        "ModelLifeCycle": {"Stage": "Development", "StageStatus": "Rejected"},
        "CustomerMetadataProperties": {
            KEY_MODEL_CARD: card_digest(ModelCard(card["ModelCardContent"], card["ModelCardStatus"]))
        },
    }
    assert_converged(emulator, REVIEWED)


def test_a_conflict_keeps_the_review_by_default_and_is_shown_and_recorded(
    env: None, emulator: EmulatorProcess
) -> None:
    assert mlsync("push", REVIEWED).exit_code == 0
    mlflow.MlflowClient().set_registered_model_alias(REVIEWED, "champion", "3")  # MLflow: Approved
    review(emulator, REVIEWED, "3", "Rejected", "fails the latency budget")  # SageMaker: Rejected

    planned = mlsync("plan", REVIEWED)
    assert "! conflict reviewed model v3: both sides changed" in planned.output
    status = mlsync("--output", "json", "status", REVIEWED)
    (row,) = [r for r in json.loads(status.output) if r["version"] == "3"]
    assert "approval_conflicts = sagemaker keeps Rejected" in row["conflict"]

    result = mlsync("push", REVIEWED)

    assert result.exit_code == 0, result.output
    assert "1 conflicts" in result.output
    assert approval(REVIEWED, "3") == "Rejected"
    tags = mlflow.MlflowClient().get_model_version(REVIEWED, "3").tags
    assert tags["sagemaker.approval"] == "Rejected"
    assert "keeps Rejected" in tags[TAG_APPROVAL_CONFLICT]
    assert_converged(emulator, REVIEWED)


def test_with_approval_conflicts_mlflow_the_mapping_wins(
    env: None, emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mlsync("push", REVIEWED).exit_code == 0
    mlflow.MlflowClient().set_model_version_tag(REVIEWED, "4", "sagemaker.approval", "Approved")
    review(emulator, REVIEWED, "4", "Rejected", "not yet")
    monkeypatch.setenv("MLSYNC_APPROVAL_CONFLICTS", "mlflow")
    mark = len(emulator.calls())

    result = mlsync("push", REVIEWED)

    assert result.exit_code == 0, result.output
    assert approval(REVIEWED, "4") == "Approved"
    (update,) = [c.params for c in calls_since(emulator, mark) if c.operation == "UpdateModelPackage"]
    assert update["ModelApprovalStatus"] == "Approved"
    assert "(approval_conflicts = mlflow)" in update["ApprovalDescription"]
    tags = mlflow.MlflowClient().get_model_version(REVIEWED, "4").tags
    assert "keeps Approved" in tags[TAG_APPROVAL_CONFLICT]
    assert_converged(emulator, REVIEWED)


def test_rollback_to_version_1_after_version_3_was_promoted(env: None, emulator: EmulatorProcess) -> None:
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(ROLLED, "champion", "1")
    assert mlsync("push", ROLLED).exit_code == 0
    client.set_registered_model_alias(ROLLED, "champion", "3")  # v3 promoted; v1 is rejected by the push
    assert mlsync("push", ROLLED).exit_code == 0
    assert [approval(ROLLED, v) for v in "123"] == ["Rejected", "PendingManualApproval", "Approved"]

    before, mark = mlflow_state(ROLLED), len(emulator.calls())
    dry = mlsync("rollback", ROLLED, "--to", "1", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "~ package rolled back model v3: approval Approved -> Rejected" in dry.output
    assert "~ mlflow  rolled back model @champion: v3 -> v1" in dry.output
    assert writes(calls_since(emulator, mark)) == [] and mlflow_state(ROLLED) == before

    result = mlsync("rollback", ROLLED, "--to", "1", "--reason", "p99 latency doubled")

    assert result.exit_code == 0, result.output
    assert [approval(ROLLED, v) for v in "123"] == ["Approved", "PendingManualApproval", "Rejected"]
    latest = boto3.client("sagemaker").list_model_packages(
        ModelPackageGroupName=group_name(ROLLED),
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
    )["ModelPackageSummaryList"][0]
    assert latest["ModelPackageArn"] == package_arn(ROLLED, "1")
    assert {k: str(v) for k, v in client.get_registered_model(ROLLED).aliases.items()} == {"champion": "1"}
    v3 = client.get_model_version(ROLLED, "3").tags
    assert v3["sagemaker.approval"] == "Rejected"
    assert v3[TAG_REVIEW_DESCRIPTION] == "mlsync rollback to version 1: p99 latency doubled"
    assert_converged(emulator, ROLLED)

    # v3 is rejected by its tag now and v2 was never approved: no earlier version is on record, so going
    # back from v1 needs one named explicitly.
    refused = mlsync("rollback", ROLLED)
    assert refused.exit_code == 2
    assert "--to VERSION" in refused.output
