"""Helpers shared by the end-to-end tests: run `mlsync` in process and read what SageMaker received."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import mlflow
import pytest
from click.testing import CliRunner, Result
from mlflow.exceptions import MlflowException

from mlflow_sagemaker_registry.emulator import WRITE_OPERATIONS, Call, CallLog
from mlflow_sagemaker_registry.mapping.tags import OWN_TAGS
from mlflow_sagemaker_registry.triggers.cli import cli

DOCS = Path(__file__).resolve().parents[1] / "docs"


@contextmanager
def building_registry(root: Path, experiment: str) -> Iterator[None]:
    """Work in a SQLite registry in `root` (its working directory, so ./mlruns is made there) with
    `experiment` active, then give back the working directory and tracking URI: a module's registry is
    built once inside this."""
    previous_cwd, previous_uri = Path.cwd(), mlflow.get_tracking_uri()
    os.chdir(root)
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    try:
        mlflow.set_experiment(experiment)
        yield
    finally:
        mlflow.set_tracking_uri(previous_uri)
        os.chdir(previous_cwd)


def json_blocks(page: str) -> list[Any]:
    """The ```json blocks of docs/`page`, parsed: the documents the docs show, checked by tests."""
    text = (DOCS / page).read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)]


def mlsync(*args: str, env: Mapping[str, str] | None = None) -> Result:
    """`mlsync ARGS` in this process (click's CliRunner, `env` overlaid on os.environ); errors propagate."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def mlsync_child(*args: str) -> subprocess.Popen[str]:
    """`mlsync ARGS` as a child process (`python -m mlflow_sagemaker_registry`), in this process's
    environment and working directory, its stdout and stderr on one pipe: a push that can be killed, or
    run beside others."""
    command = [sys.executable, "-m", "mlflow_sagemaker_registry", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def packages(group: str) -> list[dict[str, Any]]:
    """Every package of the group, as `DescribeModelPackage` answers, in list order."""
    sagemaker = boto3.client("sagemaker")
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    return [sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries]


def every_package() -> list[dict[str, Any]]:
    """Every versioned package of every group, as `DescribeModelPackage` answers, following every page."""
    sagemaker = boto3.client("sagemaker")
    groups = [
        group["ModelPackageGroupName"]
        for page in sagemaker.get_paginator("list_model_package_groups").paginate()
        for group in page["ModelPackageGroupSummaryList"]
    ]
    listing = sagemaker.get_paginator("list_model_packages")
    return [
        dict(sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"]))
        for group in groups
        for page in listing.paginate(ModelPackageGroupName=group)
        for summary in page["ModelPackageSummaryList"]
    ]


def mlflow_snapshot(*, own_tags: bool = True) -> dict[str, Any]:
    """What MLflow holds about every registered model: the model, each version (with its tags, aliases,
    stage, description and timestamps) and each version's run (params, metrics, tags), for comparing
    before and after. With `own_tags=False` the version tags mlsync writes (`OWN_TAGS`) are left out, so
    two snapshots are equal exactly when mlsync changed nothing else."""
    client = mlflow.MlflowClient()
    versions: dict[str, dict[str, Any]] = {}
    for found in client.search_model_versions():  # every version: no filter to quote a name into
        version = client.get_model_version(found.name, found.version)
        run = _run(client, version.run_id)
        versions.setdefault(version.name, {})[str(version.version)] = {
            "tags": {k: v for k, v in version.tags.items() if own_tags or k not in OWN_TAGS},
            "fields": (version.description, version.current_stage, version.status, version.source),
            "updated": version.last_updated_timestamp,
            # repr, so that a NaN metric equals itself
            "run": None
            if run is None
            else (run.info.lifecycle_stage, run.data.params, repr(sorted(run.data.metrics.items()))),
            "run_tags": None if run is None else run.data.tags,
        }
    return {
        model.name: {
            "fields": (model.description, model.tags, model.aliases, model.last_updated_timestamp),
            "versions": versions.get(model.name, {}),
        }
        for model in client.search_registered_models()
    }


def _run(client: mlflow.MlflowClient, run_id: str | None) -> Any:
    """The run, or None when the version has none or it was garbage-collected (`mlflow gc`)."""
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return None


def read_s3_json(s3_uri: str) -> Any:
    """The JSON document at `s3_uri`, read strictly: `NaN` or `Infinity` tokens, which are not JSON and
    which other readers (JavaScript, Java, Studio) refuse, fail the read."""
    bucket, key = s3_uri.removeprefix("s3://").split("/", 1)
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(body, parse_constant=_not_json)


def _not_json(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


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
