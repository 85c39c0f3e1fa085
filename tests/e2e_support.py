"""Helpers shared by the end-to-end tests: run `mlsync` in process and read what SageMaker received."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import mlflow
import pytest
from click.testing import CliRunner, Result

from mlflow_sagemaker_registry.emulator import WRITE_OPERATIONS, Call, CallLog
from mlflow_sagemaker_registry.triggers.cli import cli


def mlsync(*args: str, env: Mapping[str, str] | None = None) -> Result:
    """`mlsync ARGS` in this process (click's CliRunner, `env` overlaid on os.environ); errors propagate."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def packages(group: str) -> list[dict[str, Any]]:
    """Every package of the group, as `DescribeModelPackage` answers, in list order."""
    sagemaker = boto3.client("sagemaker")
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    return [sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries]


def calls_since(emulator: CallLog, mark: int) -> list[Call]:
    """The SageMaker requests the emulator received after `mark` (a former `len(emulator.calls())`)."""
    return emulator.calls()[mark:]


def writes(calls: list[Call]) -> list[str]:
    """The operations among `calls` that change the registry, in order."""
    return [call.operation for call in calls if call.operation in WRITE_OPERATIONS]


def use_registry(
    monkeypatch: pytest.MonkeyPatch, emulator_url: str, registry_dir: Path, bucket: str
) -> dict[str, str]:
    """Be a user running mlsync against the SQLite registry in `registry_dir` and the emulator: the
    environment (returned), the working directory, MLflow's tracking URI, and the S3 bucket (made once)."""
    values = {
        "AWS_ENDPOINT_URL": emulator_url,
        "MLFLOW_TRACKING_URI": f"sqlite:///{registry_dir / 'mlflow.db'}",
        "MLSYNC_S3_PREFIX": f"s3://{bucket}/mlsync",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(registry_dir)
    mlflow.set_tracking_uri(values["MLFLOW_TRACKING_URI"])
    s3 = boto3.client("s3")
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=bucket)
    return values


REVIEWER_KEY = "AKIAREVIEWER0000001"


def reviewer(endpoint_url: str | None) -> Any:
    """A SageMaker client of another AWS identity: the person approving packages in Studio or the CLI.

    `endpoint_url` is the emulator process's; None in process (`emulated_aws`), where the credentials of
    clients made from the environment are moto's own.
    """
    return boto3.client(
        "sagemaker",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=REVIEWER_KEY,
        aws_secret_access_key="reviewer-secret",
    )
