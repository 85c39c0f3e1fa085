"""End to end: SageMaker's events cross a process boundary as JSON and the Lambda handler pulls the review.

The emulator runs as a process on 127.0.0.1 (`AWS_ENDPOINT_URL`), `mlsync push` mirrors a real SQLite
MLflow model into it, a reviewer of another AWS identity approves a package, and the events the emulator
process recorded (`GET /_emulator/events`, JSON) are handed to the handler, configured only by the
environment, as a Lambda function is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import mlflow
import pytest
from e2e_support import calls_since, mlsync, writes
from mlflow_models import log_version

from mlflow_sagemaker_registry.config import ApprovalRules
from mlflow_sagemaker_registry.emulator import EmulatorProcess
from mlflow_sagemaker_registry.lambda_handler import forget_engine, handler
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN, TAG_REVIEW_BY, TAG_REVIEW_DESCRIPTION

pytestmark = pytest.mark.e2e

MODEL = "lambda e2e model"
BUCKET = "mlsync-lambda-e2e"
REVIEWER_KEY = "AKIAREVIEWER0000003"


@pytest.fixture
def emulator(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorProcess]:
    with EmulatorProcess() as process:
        monkeypatch.setenv("AWS_ENDPOINT_URL", process.url)
        monkeypatch.setenv("MLSYNC_S3_PREFIX", f"s3://{BUCKET}/mlsync")
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        forget_engine()
        yield process
        forget_engine()


def test_a_review_crosses_the_process_boundary_and_reaches_mlflow(emulator: EmulatorProcess) -> None:
    for seed in range(2):
        log_version(MODEL, seed=seed)
    assert mlsync("push", MODEL).exit_code == 0
    arn = mlflow.MlflowClient().get_model_version(MODEL, "2").tags[TAG_PACKAGE_ARN]
    reviewer = boto3.client(
        "sagemaker", aws_access_key_id=REVIEWER_KEY, aws_secret_access_key="reviewer-secret"
    )
    before = len(emulator.events())
    reviewer.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="signed off by risk"
    )
    events = emulator.events()
    (review,) = events[before:]
    assert json.loads(json.dumps(review)) == review  # plain JSON, as EventBridge delivers it
    mark = len(emulator.calls())

    answers = [handler(event, None) for event in [*events, review]]  # every event, and a duplicate

    assert answers[-2:] == [{"status": "pulled", "model": MODEL, "package": arn}] * 2
    assert writes(calls_since(emulator, mark)) == []
    assert len(emulator.events()) == len(events)  # the handler changed nothing in SageMaker
    tags = mlflow.MlflowClient().get_model_version(MODEL, "2").tags
    assert tags[ApprovalRules().tag] == "Approved"
    assert tags[TAG_REVIEW_DESCRIPTION] == "signed off by risk"
    assert tags[TAG_REVIEW_BY].endswith(f":user/{REVIEWER_KEY}")
    assert ApprovalRules().tag not in mlflow.MlflowClient().get_model_version(MODEL, "1").tags
