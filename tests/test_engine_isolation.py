"""One failing model never blocks the others: planning isolates failures per model, as applying does.

A real SQLite MLflow and the in-process SageMaker emulator; the first model's group read is refused (as
an IAM policy denying that one group would), the second model is mirrored all the same.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import mlflow
import pytest
from e2e_support import mlsync
from mlflow_models import log_version

from mlflow_sagemaker_registry.emulator import RegistryBackend, emulated_aws
from mlflow_sagemaker_registry.mapping.identity import group_name
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN, TAG_SYNC_STATUS

DENIED, FINE = "a denied model", "b fine model"


@pytest.fixture
def backend(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RegistryBackend]:
    with emulated_aws() as emulated:
        boto3.client("s3").create_bucket(Bucket="isolation")
        monkeypatch.setenv("MLSYNC_S3_PREFIX", "s3://isolation/mlsync")
        log_version(DENIED, seed=1)
        log_version(FINE, seed=2)
        yield emulated


def test_a_model_that_cannot_be_planned_does_not_stop_the_others(backend: RegistryBackend) -> None:
    # Named models are read one group at a time (a whole-registry push lists every group at once).
    backend.deny_group(group_name(DENIED))

    result = mlsync("push", DENIED, FINE)

    assert result.exit_code == 1, result.output
    assert f"! cannot plan model '{DENIED}'" in result.output
    client = mlflow.MlflowClient()
    assert TAG_PACKAGE_ARN in client.get_model_version(FINE, "1").tags
    denied = client.get_model_version(DENIED, "1").tags
    assert TAG_PACKAGE_ARN not in denied
    assert denied[TAG_SYNC_STATUS].startswith("failed: ") and "not authorized" in denied[TAG_SYNC_STATUS]

    backend.clear_faults()
    repaired = mlsync("push", "--all")  # the denial is gone: the next push mirrors it

    assert repaired.exit_code == 0, repaired.output
    assert client.get_model_version(DENIED, "1").tags[TAG_SYNC_STATUS].startswith("synced ")


def test_plan_and_json_name_the_model_that_could_not_be_planned(backend: RegistryBackend) -> None:
    backend.deny_group(group_name(DENIED))

    result = mlsync("--output", "json", "plan", DENIED, FINE)

    assert result.exit_code == 1
    assert '"unplanned": [\n    {\n      "model": "a denied model"' in result.output
