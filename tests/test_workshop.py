"""End to end: AWS's Model Registry workshop (examples/workshop), and every fact it shows in SageMaker.

The example runs as a user runs it (`python examples/workshop/workshop.py`, each step an `mlsync` command),
against this module's emulator process, so what it left in SageMaker can be read afterwards: the group
and its description, the algorithm and the workshop's metadata keys, the dataset version, the
model-quality section, the model card, the built-in XGBoost image and its archive, the review and the
rollback, and `mlsync verify` passing for both images.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import boto3
import mlflow
import pytest
from e2e_support import packages

from mlflow_sagemaker_registry.emulator import EmulatorProcess

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "workshop" / "workshop.py"
sys.path.insert(0, str(EXAMPLE.parent))
import workshop  # noqa: E402  (the example itself: its names are what is checked)

WORK: list[Path] = []


@pytest.fixture(scope="module")
def run(emulator: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The workshop, run once for the module; its output (its MLflow registry is in WORK[0])."""
    work = tmp_path_factory.mktemp("workshop") / "work"
    env = {**os.environ, "AWS_ENDPOINT_URL": emulator.url, "WORKSHOP_DIR": str(work)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    WORK.append(work)
    return done.stdout


@pytest.fixture
def aws(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.url)


def read(s3_uri: str) -> bytes:
    bucket, key = s3_uri.removeprefix("s3://").split("/", 1)
    body: bytes = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def test_the_workshop_prints_its_versions_table_at_each_step(run: str) -> None:
    tables = [block for block in run.split("$ mlsync status ")[1:]]
    assert len(tables) == 3
    header = "Version | Model package             | accuracy | Status    | Approval"
    assert all(header in table for table in tables)
    # After the review of v1 and the push of v2: the workshop's table, v1 Approved and v2 Pending.
    assert "| Completed | Approved              |" in tables[1]
    assert "| Completed | PendingManualApproval |" in tables[1]
    # After the rollback: v2 Rejected, v1 Approved again.
    lines = {line.split("|")[0].strip(): line for line in tables[2].splitlines() if "|" in line}
    assert "| Approved |" in lines["1"] and "| Rejected |" in lines["2"]
    assert "Verified 3 packages: 3 passed, 0 failed." in run
    last_push = run.rsplit("$ mlsync push --all", 1)[1]
    assert "In sync: nothing to do (3 packages checked, 0 problems)." in last_push


def test_the_group_and_every_fact_of_a_version_come_from_mlflow(run: str, aws: None) -> None:
    sagemaker = boto3.client("sagemaker")
    group = sagemaker.describe_model_package_group(ModelPackageGroupName=workshop.GROUP)
    assert group["ModelPackageGroupDescription"] == workshop.GROUP_DESCRIPTION

    v1, v2 = packages(workshop.GROUP)
    assert v1["ModelPackageDescription"] == "ML pipeline v1 model"
    assert v2["ModelPackageDescription"] == "ML pipeline v2 model"
    metadata = v1["CustomerMetadataProperties"]
    document = json.loads(read(metadata["mlsync.run_document"]))
    accuracy = document["metrics"]["accuracy"]
    assert {k: metadata[k] for k in ("Algorithm", "Training dataset version", "Accuracy", "Created by")} == {
        "Algorithm": "XGBoost",
        "Training dataset version": "v1.0",
        "Accuracy": repr(accuracy),
        "Created by": workshop.CREATED_BY,
    }
    assert v2["CustomerMetadataProperties"]["Training dataset version"] == "v1.1"
    hyperparameters = {k: metadata[f"param.{k}"] for k in ("learning_rate", "max_depth", "n_estimators")}
    assert hyperparameters == {"learning_rate": "0.1", "max_depth": "5", "n_estimators": "100"}
    assert (metadata["mlflow.flavor"], metadata["mlflow.model_class"]) == (
        "xgboost",
        "xgboost.sklearn.XGBClassifier",
    )
    (training,) = [d for d in document["datasets"] if d["context"] == "training"]
    assert training["tags"] == {"version": "v1.0"}

    statistics = v1["ModelMetrics"]["ModelQuality"]["Statistics"]
    quality = json.loads(read(statistics["S3Uri"]))
    assert quality["binary_classification_metrics"]["accuracy"]["value"] == accuracy


def test_the_builtin_xgboost_image_serves_the_group_and_the_pyfunc_image_the_copy(
    run: str, aws: None, tmp_path: Path
) -> None:
    v1, _ = packages(workshop.GROUP)
    (container,) = v1["InferenceSpecification"]["Containers"]
    assert (container["Image"], container["Framework"]) == (workshop.XGBOOST_IMAGE, "XGBOOST")
    assert v1["InferenceSpecification"]["SupportedContentTypes"] == ["text/csv", "text/libsvm"]
    (tmp_path / "model.tar.gz").write_bytes(read(container["ModelDataUrl"]))
    with tarfile.open(tmp_path / "model.tar.gz") as archive:
        assert archive.getnames() == ["xgboost-model"]
    (pyfunc,) = packages(workshop.PYFUNC_MODEL)
    (served,) = pyfunc["InferenceSpecification"]["Containers"]
    assert served["Image"] == workshop.PYFUNC_IMAGE and "Framework" not in served


def test_the_review_and_the_rollback_are_in_sagemaker_and_in_mlflow(run: str, aws: None) -> None:
    v1, v2 = packages(workshop.GROUP)
    assert (v1["ModelApprovalStatus"], v2["ModelApprovalStatus"]) == ("Approved", "Rejected")
    assert "v2 misclassifies the new intake batch" in v2["ApprovalDescription"]
    # The model card's status follows approval (a rejected version's card is a draft again).
    assert [p["ModelCard"]["ModelCardStatus"] for p in (v1, v2)] == ["Approved", "Draft"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{WORK[0] / 'mlflow.db'}")
    tags = [client.get_model_version(workshop.GROUP, v).tags for v in ("1", "2")]
    assert [t["sagemaker.approval"] for t in tags] == ["Approved", "Rejected"]
    # v1's last review is now the rollback's re-approval, recorded on both sides.
    assert tags[0]["sagemaker.approval_description"] == (
        "mlsync rollback from version 2: v2 misclassifies the new intake batch"
    )


def test_the_model_card_is_filled_from_mlflow(run: str, aws: None) -> None:
    v1, _ = packages(workshop.GROUP)
    card = json.loads(v1["ModelCard"]["ModelCardContent"])
    assert card["model_overview"]["model_creator"] == workshop.CREATED_BY
    assert card["intended_uses"] == {
        "purpose_of_model": workshop.GROUP_DESCRIPTION,
        "intended_uses": workshop.INTENDED_USE,
    }
    job = card["training_details"]["training_job_details"]
    assert {p["name"]: p["value"] for p in job["hyper_parameters"]} == {
        "learning_rate": "0.1",
        "max_depth": "5",
        "n_estimators": "100",
    }
    assert any("v1.0" in dataset for dataset in job["training_datasets"])
    (evaluation,) = card["evaluation_details"]
    (metrics,) = evaluation["metric_groups"]
    accuracy = v1["CustomerMetadataProperties"]["metric.accuracy"]
    assert [(m["name"], m["value"]) for m in metrics["metric_data"]] == [("accuracy", float(accuracy))]
    assert card["additional_information"]["custom_details"]["mlflow_version_description"] == (
        "ML pipeline v1 model"
    )
