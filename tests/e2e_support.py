"""Helpers shared by the end-to-end tests: run `mlsync` in process and read what SageMaker received."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
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
