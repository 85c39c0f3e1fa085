"""End to end: deployable packages from a real MLflow registry, proven by `mlsync verify`.

A scikit-learn model and a custom pyfunc model are mirrored into the emulator process (SageMaker) and
its moto S3; `mlsync verify --all` loads each package's model data with mlflow.pyfunc and compares its
predictions with MLflow's. Tampering with a tarball or a metrics document makes it fail, by name. A
model whose artifacts MLflow keeps in S3 is referenced there, uncompressed, when configured so.
(XGBoost models, with SageMaker's built-in image too, are in test_builtin_xgboost.py.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import mlflow
import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest
from click.testing import CliRunner
from e2e_support import mlsync
from mlflow.pyfunc.model import PythonModel
from recorded_calls import RecordedCalls
from sklearn.linear_model import LogisticRegression

from mlflow_sagemaker_registry.emulator import EmulatorProcess
from mlflow_sagemaker_registry.gateways.aws import AwsClients, aws_clients
from mlflow_sagemaker_registry.mapping.identity import group_name
from mlflow_sagemaker_registry.triggers.cli import cli

pytestmark = pytest.mark.e2e

BUCKET = "mlsync-verify"
ARTIFACT_BUCKET = "mlflow-artifacts"
SKLEARN = "churn classifier"
CUSTOM = "price adder"
IN_S3 = "forecaster in s3"
UPLOADS = {"PutObject", "CreateMultipartUpload", "UploadPart"}


class AddColumns(PythonModel):
    """A custom pyfunc model: the sum of each row, plus a constant."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return model_input.assign(total=model_input.sum(axis=1) + 0.5)


def register(
    name: str, flavor: str = "sklearn", metrics: dict[str, float] | None = None, seed: int = 0
) -> None:
    """Log and register one version. Requirements are given, not inferred: inferring them costs MLflow
    a subprocess and about 8 s per model."""
    features = np.random.default_rng(seed).normal(size=(30, 3))
    with mlflow.start_run():
        mlflow.log_metrics(metrics or {})
        if flavor == "sklearn":
            classifier = LogisticRegression().fit(features, features[:, 0] > 0)
            mlflow.sklearn.log_model(
                classifier,
                name="model",
                registered_model_name=name,
                input_example=features[:3],
                pip_requirements=["scikit-learn"],
            )
        else:
            mlflow.pyfunc.log_model(
                name="model",
                python_model=AddColumns(),
                registered_model_name=name,
                input_example=pd.DataFrame({"price": [1.0, 2.5], "tax": [0.25, 0.5]}),
                pip_requirements=["pandas"],
            )


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorProcess) -> Iterator[Path]:
    """Three registered models: sklearn and custom pyfunc with local artifacts, one with S3 artifacts."""
    root = tmp_path_factory.mktemp("verify")
    previous_uri = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        # Module-scoped, so before conftest's per-test dummy credentials: MLflow writes to the moto S3.
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
            patch.setenv(name, value)
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.setenv("MLFLOW_S3_ENDPOINT_URL", emulator.url)
        patch.setenv("AWS_ENDPOINT_URL", emulator.url)
        patch.chdir(root)
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in (BUCKET, ARTIFACT_BUCKET):
            s3.create_bucket(Bucket=bucket)
        mlflow.set_experiment("verify")
        register(SKLEARN, metrics={"accuracy": 0.9}, seed=1)
        register(CUSTOM, flavor="pyfunc")
        in_s3 = mlflow.create_experiment("in-s3", artifact_location=f"s3://{ARTIFACT_BUCKET}/experiments")
        mlflow.set_experiment(experiment_id=in_s3)
        register(IN_S3, metrics={"rmse": 0.3}, seed=2)
        mlflow.set_tracking_uri(previous_uri)
    yield root


@pytest.fixture
def s3_calls(monkeypatch: pytest.MonkeyPatch) -> RecordedCalls:
    """Every S3 request mlsync's own client sends during the test."""
    recorded = RecordedCalls()

    def recording_clients(*args: Any, **kwargs: Any) -> AwsClients:
        clients = aws_clients(*args, **kwargs)
        clients.s3.meta.events.register("provide-client-params", recorded)
        return clients

    monkeypatch.setattr("mlflow_sagemaker_registry.wiring.aws_clients", recording_clients)
    return recorded


@pytest.fixture
def env(emulator: EmulatorProcess, registry_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.url)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", emulator.url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{registry_dir / 'mlflow.db'}")
    monkeypatch.setenv("MLSYNC_S3_PREFIX", f"s3://{BUCKET}/mlsync")
    monkeypatch.chdir(registry_dir)
    mlflow.set_tracking_uri(f"sqlite:///{registry_dir / 'mlflow.db'}")


def package_of(model: str, version: str = "1") -> dict[str, Any]:
    sagemaker = boto3.client("sagemaker")
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=group_name(model))[
        "ModelPackageSummaryList"
    ]
    arn = next(s["ModelPackageArn"] for s in summaries if s["ModelPackageArn"].endswith(f"/{version}"))
    return dict(sagemaker.describe_model_package(ModelPackageName=arn))


def s3_object(uri: str) -> tuple[str, str]:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return bucket, key


def test_every_mirrored_package_verifies(env: None) -> None:
    assert mlsync("push", SKLEARN, CUSTOM).exit_code == 0

    text = mlsync("verify", "--all")
    report = json.loads(mlsync("--output", "json", "verify", SKLEARN, CUSTOM).output)

    assert text.exit_code == 0, text.output
    assert "Verified" in text.output and "0 failed" in text.output
    assert report["ok"] is True
    checks = {(p["model"], c["name"]): c["status"] for p in report["packages"] for c in p["checks"]}
    for model in (SKLEARN, CUSTOM):
        assert checks[(model, "run document")] == "ok"
        assert checks[(model, "model data")] == "ok"
        assert checks[(model, "sample payload")] == "ok"
        assert checks[(model, "prediction")] == "ok"
    assert checks[(SKLEARN, "model quality")] == "ok"
    assert checks[(CUSTOM, "model quality")] == "skipped"  # the custom model's run logged no metric


def test_packages_carry_the_inference_metadata_of_their_model(env: None) -> None:
    assert mlsync("push", SKLEARN, CUSTOM).exit_code == 0
    sklearn, custom = package_of(SKLEARN), package_of(CUSTOM)

    (container,) = sklearn["InferenceSpecification"]["Containers"]
    assert container["Image"].endswith(f"/mlflow-pyfunc:{mlflow.__version__}")
    assert container["Environment"] == {
        "MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function",
        "SERVING_ENVIRONMENT": "SageMaker",
    }
    # A tensor signature (numpy input) can only be sent as JSON; a table of scalars also as CSV, Parquet.
    assert sklearn["InferenceSpecification"]["SupportedContentTypes"] == ["application/json"]
    assert custom["InferenceSpecification"]["SupportedContentTypes"] == [
        "application/json",
        "text/csv",
        "application/vnd.apache.parquet",
    ]
    assert sklearn["Domain"] == "MACHINE_LEARNING" and "Domain" not in custom
    _bucket, key = s3_object(custom["SamplePayloadUrl"])
    assert key.startswith("mlsync/payloads/") and key.endswith("/payload.tar.gz")


def test_a_tampered_tarball_fails_verify_by_name(env: None) -> None:
    assert mlsync("push", SKLEARN).exit_code == 0
    url = package_of(SKLEARN)["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    bucket, key = s3_object(url)
    s3 = boto3.client("s3")
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=original[:-64] + b"\0" * 64)
    try:
        result = mlsync("verify", SKLEARN)
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original)

    assert result.exit_code == 1
    assert f"failed  model data      {url} has sha256:" in result.output
    assert "but its content-addressed key says sha256:" in result.output
    assert "it was changed after mlsync wrote it" in result.output
    assert "Verified 1 package: 0 passed, 1 failed." in result.output
    assert mlsync("verify", SKLEARN).exit_code == 0


def test_a_tampered_metrics_document_fails_verify_by_name(env: None) -> None:
    assert mlsync("push", SKLEARN).exit_code == 0
    statistics = package_of(SKLEARN)["ModelMetrics"]["ModelQuality"]["Statistics"]
    bucket, key = s3_object(statistics["S3Uri"])
    s3 = boto3.client("s3")
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=original.replace(b"0.9", b"0.99"))
    try:
        result = mlsync("--output", "json", "verify", SKLEARN, "--version", "1")
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original)

    assert result.exit_code == 1
    (package,) = json.loads(result.output)["packages"]
    failed = [check for check in package["checks"] if check["status"] == "failed"]
    assert [check["name"] for check in failed] == ["model quality"]
    assert f"but the package's ContentDigest says {statistics['ContentDigest']}" in failed[0]["detail"]


def test_re_pushing_uploads_nothing_even_when_the_package_is_recreated(
    env: None, s3_calls: RecordedCalls
) -> None:
    assert mlsync("push", CUSTOM).exit_code == 0
    s3_calls.calls.clear()

    again = mlsync("--output", "json", "push", CUSTOM)

    assert json.loads(again.output)["report"]["artifacts_uploaded"] == 0
    assert UPLOADS.isdisjoint(s3_calls.operations)

    # Even a package that has to be created again (deleted in SageMaker) finds its tarball and payload
    # under their content-addressed keys and uploads neither: only the two JSON documents are rewritten.
    boto3.client("sagemaker").delete_model_package(ModelPackageName=package_of(CUSTOM)["ModelPackageArn"])
    s3_calls.calls.clear()
    recreated = mlsync("--output", "json", "push", CUSTOM)

    assert json.loads(recreated.output)["report"]["packages_created"]
    assert json.loads(recreated.output)["report"]["artifacts_uploaded"] == 0
    assert [op for op in s3_calls.operations if op in UPLOADS] == ["PutObject"]  # the run document only
    assert s3_calls.operations.count("HeadObject") == 2  # model.tar.gz and payload.tar.gz exist
    assert mlsync("verify", CUSTOM).exit_code == 0


def test_artifacts_already_in_s3_are_referenced_uncompressed(
    env: None, s3_calls: RecordedCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSYNC_ARTIFACT_MODE", "reference")

    assert mlsync("push", IN_S3).exit_code == 0

    package = package_of(IN_S3)
    (container,) = package["InferenceSpecification"]["Containers"]
    source = container["ModelDataSource"]["S3DataSource"]
    assert "ModelDataUrl" not in container
    assert source["S3DataType"] == "S3Prefix" and source["CompressionType"] == "None"
    assert source["S3Uri"].startswith(f"s3://{ARTIFACT_BUCKET}/experiments/") and source["S3Uri"].endswith(
        "/"
    )
    # Nothing but the sample payload and the JSON documents was written: the model was not copied.
    written = [params["Key"] for op, params in s3_calls.calls if op in UPLOADS]
    assert all(not key.endswith("model.tar.gz") for key in written)
    verified = mlsync("verify", IN_S3)
    assert verified.exit_code == 0, verified.output
    assert "(uncompressed, served where MLflow keeps them)" in verified.output


def test_verifying_a_version_that_is_not_mirrored_fails(env: None) -> None:
    register("never pushed", seed=3)

    asked = mlsync("verify", "never pushed", "--version", "1")
    listed = mlsync("verify", "never pushed")

    assert asked.exit_code == 1 and "not mirrored: run `mlsync push`" in asked.output
    assert listed.exit_code == 0 and "skipped" in listed.output


def test_version_needs_exactly_one_model(env: None) -> None:
    result = CliRunner().invoke(cli, ["verify", "--all", "--version", "1"])
    assert result.exit_code == 2 and "--version needs exactly one MODEL" in result.output
