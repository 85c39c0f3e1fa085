"""End to end: a real SQLite MLflow registry with real sklearn models, `mlsync` against the emulator process.

The emulator (`python -m mlflow_sagemaker_registry.emulator` on 127.0.0.1) is stricter than moto and
honours `ClientToken`, so what passes here passes the real API's validation.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import mlflow
import pytest
from click.testing import CliRunner, Result
from e2e_support import building_registry, calls_since, mlsync, packages, use_registry, writes
from mlflow_models import AWKWARD_PARAMS, log_version

from mlflow_sagemaker_registry.emulator import EmulatorProcess
from mlflow_sagemaker_registry.mapping.identity import group_name
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN, TAG_SYNC_STATUS
from mlflow_sagemaker_registry.triggers.cli import cli

pytestmark = pytest.mark.e2e

BUCKET = "mlsync-e2e"
CLASSIFIER = "iris classifier"
REGRESSOR = "house_prices.regressor"
METRICS = {"accuracy": 0.93, "f1_score": 0.91, "training_log_loss": float("nan"), "val_loss": 0.25}


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two registered models, five versions, built once for the module."""
    root = tmp_path_factory.mktemp("e2e")
    with building_registry(root, "e2e"):
        for seed in range(3):
            log_version(
                CLASSIFIER, params=AWKWARD_PARAMS, metrics=METRICS, seed=seed, description=f"seed {seed}"
            )
        for seed in range(2):
            log_version(
                REGRESSOR, kind="regressor", params={"alpha": seed}, metrics={"rmse": 0.5 + seed}, seed=seed
            )
        client = mlflow.MlflowClient()
        client.transition_model_version_stage(CLASSIFIER, "1", "Production")
        client.transition_model_version_stage(CLASSIFIER, "2", "Archived")
        yield root


@pytest.fixture
def env(emulator: EmulatorProcess, registry_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a user running mlsync against this registry and the emulator."""
    return use_registry(monkeypatch, emulator.url, registry_dir, BUCKET)


def read_json(s3_uri: str) -> Any:
    bucket, key = s3_uri.removeprefix("s3://").split("/", 1)
    return json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.mark.mlflow_compat
def test_push_all_mirrors_every_version_once(env: dict[str, str], emulator: EmulatorProcess) -> None:
    result = mlsync("push", "--all")
    assert result.exit_code == 0, result.output

    client = mlflow.MlflowClient()
    for model, expected in (
        (CLASSIFIER, ["Approved", "Rejected", "PendingManualApproval"]),
        (REGRESSOR, ["PendingManualApproval"] * 2),
    ):
        described = packages(group_name(model))
        assert len(described) == len(expected)
        for number, package in enumerate(described, start=1):
            metadata = package["CustomerMetadataProperties"]
            assert metadata["mlflow.version"] == str(number)
            assert metadata["mlflow.flavor"] == "sklearn"  # read from the MLmodel file when staged
            assert package["ModelApprovalStatus"] == expected[number - 1]
            assert package["InferenceSpecification"]["Containers"][0]["Image"].endswith(
                f"/mlflow-pyfunc:{mlflow.__version__}"
            )
            tags = client.get_model_version(model, str(number)).tags
            assert tags[TAG_PACKAGE_ARN] == package["ModelPackageArn"]
            assert tags[TAG_SYNC_STATUS].startswith("synced ")
    lifecycles = [c.params.get("ModelLifeCycle") for c in emulator.calls_to("CreateModelPackage")]
    assert {"Stage": "Production", "StageStatus": "Approved"} in lifecycles


@pytest.mark.mlflow_compat
def test_every_param_and_metric_is_recoverable_exactly(
    env: dict[str, str], emulator: EmulatorProcess
) -> None:
    assert mlsync("push", "--all").exit_code == 0
    client = mlflow.MlflowClient()
    for package in packages(group_name(CLASSIFIER)):
        metadata = package["CustomerMetadataProperties"]
        run = client.get_run(metadata["mlflow.run_id"])
        document = read_json(metadata["mlsync.run_document"])
        assert document["params"] == run.data.params
        assert len(document["params"]) == len(AWKWARD_PARAMS)
        for key, value in run.data.params.items():
            assert metadata.get(f"param.{key}", value) == value
        for key, value in run.data.metrics.items():
            recorded = document["metrics"][key]
            assert (recorded == "NaN") if math.isnan(value) else (recorded == value)
        assert len(metadata) <= 50
        statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]
        quality = read_json(statistics["S3Uri"])
        assert quality["binary_classification_metrics"]["accuracy"]["value"] == METRICS["accuracy"]
        assert quality["mlflow_metrics"]["training_log_loss"] == "NaN"


@pytest.mark.mlflow_compat
def test_second_push_plans_nothing_and_writes_nothing(env: dict[str, str], emulator: EmulatorProcess) -> None:
    assert mlsync("push", "--all").exit_code == 0
    before = {v.version: v.last_updated_timestamp for v in mlflow.MlflowClient().search_model_versions()}
    mark = len(emulator.calls())

    plan = mlsync("--output", "json", "plan", "--all")
    push = mlsync("push", "--all")

    assert json.loads(plan.output)["actions"] == []
    assert push.exit_code == 0 and "In sync" in push.output
    assert writes(calls_since(emulator, mark)) == []
    after = {v.version: v.last_updated_timestamp for v in mlflow.MlflowClient().search_model_versions()}
    assert after == before


def test_moving_champion_updates_exactly_the_approvals_needed(
    env: dict[str, str], emulator: EmulatorProcess
) -> None:
    assert mlsync("push", "--all").exit_code == 0
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(REGRESSOR, "champion", "2")
    mark = len(emulator.calls())

    assert mlsync("push", REGRESSOR).exit_code == 0
    calls = calls_since(emulator, mark)
    assert writes(calls) == ["UpdateModelPackage"]
    (update,) = [c for c in calls if c.operation == "UpdateModelPackage"]
    assert update.params["ModelApprovalStatus"] == "Approved"
    assert update.params["ModelPackageArn"].endswith("/2")

    client.set_registered_model_alias(REGRESSOR, "champion", "1")
    mark = len(emulator.calls())
    assert mlsync("push", REGRESSOR).exit_code == 0
    changed = {
        c.params["ModelPackageArn"][-1]: c.params["ModelApprovalStatus"]
        for c in calls_since(emulator, mark)
        if c.operation == "UpdateModelPackage"
    }
    assert changed == {"1": "Approved", "2": "Rejected"}


def test_status_prints_the_table(env: dict[str, str]) -> None:
    assert mlsync("push", "--all").exit_code == 0
    result = mlsync("status", CLASSIFIER)
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[1]
    assert [cell.strip() for cell in header.split("|")] == [
        "Version",
        "Model package",
        "accuracy",
        "Status",
        "Approval",
        "MLflow",
        "Sync",
    ]
    assert "Approved" in result.output and "in sync" in result.output
    assert "| Completed |" in result.output.replace("  ", " ")  # the package's status, as Studio shows it
    # --output works after the subcommand too.
    rows = json.loads(mlsync("status", CLASSIFIER, "--output", "json").output)
    assert {row["package_status"] for row in rows} == {"Completed"}


def test_concurrent_pushes_leave_one_package_per_version(
    env: dict[str, str], emulator: EmulatorProcess
) -> None:
    name = "concurrent model"
    for seed in range(3):
        log_version(name, seed=seed)
    command = [sys.executable, "-m", "mlflow_sagemaker_registry", "push", name]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), "\n".join(outputs)
    described = packages(group_name(name))
    assert sorted(p["CustomerMetadataProperties"]["mlflow.version"] for p in described) == ["1", "2", "3"]


def test_a_push_that_dies_between_create_and_tag_is_adopted_on_rerun(
    env: dict[str, str], emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow_sagemaker_registry.sources.mlflow_registry import MlflowSource

    name = "crashing model"
    log_version(name)

    def die(*_args: object, **_kwargs: object) -> None:
        raise SystemExit("killed between CreateModelPackage and the MLflow tag")

    with monkeypatch.context() as patch:
        patch.setattr(MlflowSource, "set_version_tags", die)
        crashed = mlsync_catching("push", name)
    assert crashed.exit_code != 0
    assert len(packages(group_name(name))) == 1
    assert TAG_PACKAGE_ARN not in mlflow.MlflowClient().get_model_version(name, "1").tags

    mark = len(emulator.calls())
    rerun = mlsync("push", name)
    assert rerun.exit_code == 0, rerun.output
    (package,) = packages(group_name(name))
    assert (
        mlflow.MlflowClient().get_model_version(name, "1").tags[TAG_PACKAGE_ARN] == package["ModelPackageArn"]
    )
    assert writes(calls_since(emulator, mark)) == []


def mlsync_catching(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_bad_input_is_named_with_its_fix_and_only_sync_tags_change(
    env: dict[str, str], emulator: EmulatorProcess
) -> None:
    name = "tagged model"
    log_version(name, seed=1)
    log_version(name, seed=2)
    client = mlflow.MlflowClient()
    client.set_model_version_tag(name, "2", "sagemaker.approval", "ship it")
    before = client.get_model_version(name, "2")

    result = mlsync("push", name)

    assert result.exit_code == 4
    assert f"model '{name}' version 2" in result.output
    assert "Fix: set the tag to one of Approved, Rejected, PendingManualApproval" in result.output
    assert [p["CustomerMetadataProperties"]["mlflow.version"] for p in packages(group_name(name))] == ["1"]
    after = client.get_model_version(name, "2")
    changed = {k for k in {**before.tags, **after.tags} if before.tags.get(k) != after.tags.get(k)}
    assert changed == {TAG_SYNC_STATUS}
    assert after.tags[TAG_SYNC_STATUS].startswith("failed: ")
    assert (after.description, after.current_stage, after.aliases) == (
        before.description,
        before.current_stage,
        before.aliases,
    )
