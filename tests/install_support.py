"""Helpers for the tests that install mlsync as users do: a copy of the sources, commands that must pass,
and the AWS emulator plus a real `mlflow server` that the installed mlsync is pointed at."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import mlflow
import pytest
from mlflow_models import log_version
from mlflow_server import mlflow_server

from mlflow_sagemaker_registry.emulator import EmulatorProcess

ROOT = Path(__file__).resolve().parents[1]


def copy_sources(dest: Path) -> Path:
    """What a wheel is built from, copied to `dest`: building in the shared tree would leave build/ behind."""
    dest.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "mlflow_sagemaker_registry",
        dest / "mlflow_sagemaker_registry",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return dest


def run(
    *command: str | Path, cwd: Path, env: Mapping[str, str] | None = None, stdin: str | None = None
) -> str:
    """Run `command`; its stdout, or the test fails with both of its outputs."""
    done = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=None if env is None else dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@dataclass(frozen=True)
class Estate:
    """The emulator and an MLflow server, and the environment that points a child mlsync at both.

    `env` holds nothing of this process's `MLFLOW_*`, `MLSYNC_*`, `AWS_*` or virtual environment.
    """

    root: Path
    emulator: EmulatorProcess
    mlflow_url: str
    env: Mapping[str, str]

    def client(self, service: str, **credentials: str) -> Any:
        """A boto3 client of the emulator (the suite's fixtures drop `AWS_ENDPOINT_URL` for each test)."""
        keys = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        return boto3.client(service, endpoint_url=self.emulator.url, region_name="us-east-1", **keys)


BUCKET = "mlsync-installs"


@contextmanager
def estate(root: Path) -> Iterator[Estate]:
    """The emulator process and `mlflow server` (both run from this environment) on 127.0.0.1, a bucket,
    and this process's MLflow client pointed at the server while the context lasts."""
    dropped = ("MLFLOW_", "MLSYNC_", "AWS_", "VIRTUAL_ENV", "PYTHON")
    base = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    previous = mlflow.get_tracking_uri()
    with EmulatorProcess() as emulator, mlflow_server(root) as url, pytest.MonkeyPatch.context() as patch:
        env = base | {
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_TRACKING_URI": url,
            "MLSYNC_S3_PREFIX": f"s3://{BUCKET}/mlsync",
            "AWS_ENDPOINT_URL": emulator.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
        }
        patch.setenv("MLFLOW_TRACKING_URI", url)  # set_tracking_uri exports it; restored after
        mlflow.set_tracking_uri(url)
        found = Estate(root, emulator, url, env)
        found.client("s3").create_bucket(Bucket=BUCKET)
        try:
            yield found
        finally:
            mlflow.set_tracking_uri(previous)


def register(estate: Estate, model: str) -> None:
    """One version of `model`, logged and registered through the server from this process."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(estate.root)
        patch.setenv("MLFLOW_TRACKING_URI", estate.mlflow_url)
        log_version(model)
