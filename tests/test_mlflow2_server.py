"""mlsync on MLflow 3 against a tracking server of the oldest supported MLflow (2.x), over REST.

Tracking servers are upgraded long after clients, so an MLflow 3 mlsync meets MLflow 2 servers. The
server here is a real `mlflow server` from the environment scripts/bootstrap_mlflow2 makes, whose Python
is given in OLDEST_MLFLOW_PYTHON (scripts/test sets it); without it the module is skipped. Its versions
are registered by that environment's own MLflow client, as the server's users would register them (run
artifact sources, files behind the server's artifact proxy); this process's mlsync then pushes them to
the emulator and pulls a review back, every MLflow call going over REST to the old server.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import mlflow
import pytest
from e2e_support import calls_since, mlsync, packages, reviewer, writes
from mlflow_server import mlflow_server

from mlflow_sagemaker_registry.emulator import EmulatorProcess
from mlflow_sagemaker_registry.mapping.identity import group_name
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN, TAG_SYNC_STATUS

pytestmark = pytest.mark.e2e

PYTHON_VARIABLE = "OLDEST_MLFLOW_PYTHON"
BUCKET = "mlsync-old-server"
MODEL = "churn model"

# Run by the old environment's Python: two versions logged and registered as MLflow 2 does, the second
# one the champion; prints that MLflow's version.
REGISTER = f"""
import sys
sys.path.insert(0, sys.argv[1])
import mlflow
from mlflow_models import log_version
mlflow.set_experiment("old server")
for seed in range(2):
    log_version({MODEL!r}, metrics={{"accuracy": 0.9 + seed / 100}}, seed=seed)
mlflow.MlflowClient().set_registered_model_alias({MODEL!r}, "champion", "2")
print(mlflow.__version__)
"""


@dataclass(frozen=True)
class OldServer:
    url: str
    mlflow_version: str


@pytest.fixture(scope="module")
def old_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OldServer]:
    """The old MLflow's server over a fresh SQLite registry, with versions its own client registered."""
    python = os.environ.get(PYTHON_VARIABLE)
    if not python:
        pytest.skip(f"{PYTHON_VARIABLE} is not set: scripts/test sets it after scripts/bootstrap_mlflow2")
    root = tmp_path_factory.mktemp("old-server")
    with mlflow_server(root, python=python) as url:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        registered = subprocess.run(
            [python, "-c", REGISTER, str(Path(__file__).parent)],
            env={**environment, "MLFLOW_TRACKING_URI": url},
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert registered.returncode == 0, registered.stderr
        version = registered.stdout.split()[-1]
        assert version.startswith("2."), f"{python} has MLflow {version}, not the oldest supported 2.x"
        yield OldServer(url, version)


@pytest.fixture
def env(old_server: OldServer, emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user of this process's MLflow 3 client whose tracking server is the old one."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", old_server.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.url)
    monkeypatch.setenv("MLSYNC_S3_PREFIX", f"s3://{BUCKET}/mlsync")
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(old_server.url)
    s3 = boto3.client("s3")
    if BUCKET not in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    yield
    mlflow.set_tracking_uri(previous)


def test_push_mirrors_the_old_servers_versions_once(
    env: None, old_server: OldServer, emulator: EmulatorProcess
) -> None:
    result = mlsync("push", "--all")

    assert result.exit_code == 0, result.output
    described = packages(group_name(MODEL))
    assert [p["ModelApprovalStatus"] for p in described] == ["PendingManualApproval", "Approved"]
    client = mlflow.MlflowClient()
    for number, package in enumerate(described, start=1):
        assert package["CustomerMetadataProperties"]["mlflow.flavor"] == "sklearn"  # from the MLmodel file
        container = package["InferenceSpecification"]["Containers"][0]
        assert container["Image"].endswith(f"/mlflow-pyfunc:{old_server.mlflow_version}")  # saved with it
        bucket, key = container["ModelDataUrl"].removeprefix("s3://").split("/", 1)
        assert boto3.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
        tags = client.get_model_version(MODEL, str(number)).tags
        assert tags[TAG_PACKAGE_ARN] == package["ModelPackageArn"]
        assert tags[TAG_SYNC_STATUS].startswith("synced ")

    mark = len(emulator.calls())
    again = mlsync("push", "--all")
    assert again.exit_code == 0 and "In sync" in again.output, again.output
    assert writes(calls_since(emulator, mark)) == []


def test_a_review_made_in_sagemaker_reaches_the_old_server(env: None, emulator: EmulatorProcess) -> None:
    assert mlsync("push", "--all").exit_code == 0
    client = mlflow.MlflowClient()
    arn = client.get_model_version(MODEL, "1").tags[TAG_PACKAGE_ARN]
    reviewer(emulator.url).update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Rejected", ApprovalDescription="drifted"
    )

    result = mlsync("pull", "--all")

    assert result.exit_code == 0, result.output
    assert client.get_model_version(MODEL, "1").tags["sagemaker.approval"] == "Rejected"
