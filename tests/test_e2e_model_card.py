"""End to end: the model card a push writes, as DescribeModelPackage answers it, kept current and never
written over a reviewer's edit. A real SQLite MLflow registry, `mlsync` against the emulator process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from e2e_support import building_registry, calls_since, mlsync, packages, reviewer, use_registry, writes
from mlflow_models import log_version
from model_card_schema import valid_card

from mlflow_sagemaker_registry.domain import ModelCard
from mlflow_sagemaker_registry.emulator import EmulatorProcess
from mlflow_sagemaker_registry.mapping.identity import group_name
from mlflow_sagemaker_registry.mapping.model_card import KEY_MODEL_CARD, card_digest
from mlflow_sagemaker_registry.mapping.tags import TAG_SYNC_STATUS

pytestmark = pytest.mark.e2e

BUCKET = "mlsync-cards"
NAME = "ml-pipeline-model-group"
PURPOSE = "Model group for ML pipeline workshop"
PARAMS = {"learning_rate": "0.1", "max_depth": "5", "n_estimators": "100"}


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The workshop's model: its description, two versions, v1 in Production with an intended use."""
    root = tmp_path_factory.mktemp("cards")
    with building_registry(root, "cards"):
        for seed in range(2):
            log_version(
                NAME,
                params=PARAMS,
                metrics={"accuracy": 0.912 - seed / 100},
                seed=seed,
                description=f"v{seed + 1}",
            )
        client = mlflow.MlflowClient()
        client.update_registered_model(NAME, description=PURPOSE)
        client.set_model_version_tag(NAME, "1", "intended_use", "Score churn risk for the retention team")
        client.transition_model_version_stage(NAME, "1", "Production")
        yield root


@pytest.fixture
def env(emulator: EmulatorProcess, registry_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return use_registry(monkeypatch, emulator.url, registry_dir, BUCKET)


def cards() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each package's card as SageMaker describes it (checked against the schema), with its metadata."""
    described = packages(group_name(NAME))
    return [
        (
            {**p["ModelCard"], "content": valid_card(p["ModelCard"]["ModelCardContent"])},
            p["CustomerMetadataProperties"],
        )
        for p in described
    ]


@pytest.mark.usefixtures("env")
def test_a_push_writes_each_versions_card_and_a_second_push_writes_nothing(emulator: EmulatorProcess) -> None:
    result = mlsync("push", NAME)
    assert result.exit_code == 0, result.output

    (first, first_metadata), (second, _) = cards()
    assert (first["ModelCardStatus"], second["ModelCardStatus"]) == ("Approved", "PendingReview")
    content = first["content"]
    assert content["intended_uses"] == {
        "purpose_of_model": PURPOSE,
        "intended_uses": "Score churn risk for the retention team",
    }
    job = content["training_details"]["training_job_details"]
    assert job["hyper_parameters"] == [{"name": k, "value": v} for k, v in sorted(PARAMS.items())]
    assert job["training_datasets"][0].startswith("train-0 (digest ")
    version = mlflow.MlflowClient().get_model_version(NAME, "1")
    assert content["training_details"]["training_observations"].startswith(f"MLflow run {version.run_id}")
    metrics = content["evaluation_details"][0]["metric_groups"][0]["metric_data"]
    assert metrics == [{"name": "accuracy", "type": "number", "value": 0.912}]
    assert content["additional_information"]["custom_details"]["mlflow_version_description"] == "v1"
    assert "model_creator" in content["model_overview"]  # the run's user
    card = ModelCard(first["ModelCardContent"], first["ModelCardStatus"])
    assert first_metadata[KEY_MODEL_CARD] == card_digest(card)

    mark = len(emulator.calls())
    again = mlsync("push", NAME)
    assert again.exit_code == 0, again.output
    assert writes(calls_since(emulator, mark)) == []
    assert "DescribeModelPackage" not in {call.operation for call in calls_since(emulator, mark)}


@pytest.mark.usefixtures("env")
def test_a_change_in_mlflow_updates_the_card_but_never_over_a_reviewers_edit(
    emulator: EmulatorProcess,
) -> None:
    assert mlsync("push", NAME).exit_code == 0
    client = mlflow.MlflowClient()
    client.set_model_version_tag(NAME, "2", "intended_use", "Shadow scoring only")

    mark = len(emulator.calls())
    result = mlsync("push", NAME)

    assert result.exit_code == 0, result.output
    assert "model card PendingReview -> PendingReview (intended_uses changed)" in result.output
    assert writes(calls_since(emulator, mark)) == ["UpdateModelPackage"]
    (_, _), (second, _) = cards()
    assert second["content"]["intended_uses"]["intended_uses"] == "Shadow scoring only"

    # A reviewer edits v2's card in Studio; MLflow then changes too.
    arn = packages(group_name(NAME))[1]["ModelPackageArn"]
    edited = {**second["content"], "intended_uses": {"intended_uses": "Not for EU customers"}}
    reviewer(emulator.url).update_model_package(
        ModelPackageArn=arn,
        ModelCard={"ModelCardContent": json.dumps(edited), "ModelCardStatus": "Approved"},
    )
    client.set_model_version_tag(NAME, "2", "intended_use", "Batch scoring")

    plan = json.loads(mlsync("plan", NAME, "--output", "json").output)
    assert [(d["version"], d["field"]) for d in plan["drift"]] == [("2", "ModelCard")]
    mark = len(emulator.calls())
    result = mlsync("push", NAME)

    assert result.exit_code == 0, result.output
    sent = [call.params for call in calls_since(emulator, mark) if call.operation == "UpdateModelPackage"]
    assert all("ModelCard" not in params for params in sent)  # the run's other changes may be sent
    (_, _), (kept, _) = cards()
    assert (kept["content"]["intended_uses"], kept["ModelCardStatus"]) == (
        {"intended_uses": "Not for EU customers"},
        "Approved",
    )
    assert client.get_model_version(NAME, "2").tags[TAG_SYNC_STATUS] == "synced with drift in ModelCard"
