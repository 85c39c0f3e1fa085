"""Fixtures shared by the whole suite.

Every test runs with dummy AWS credentials and no AWS config files, so nothing can reach real AWS by
accident; tests marked `live_aws` run only with `--live-aws`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# Before mlflow is imported (here and in every child process, which inherit it): MLflow 3 would otherwise
# send usage telemetry, and no test may reach beyond 127.0.0.1.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow
import pytest

from mlflow_sagemaker_registry.emulator import EmulatorProcess


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--live-aws", action="store_true", help="also run tests that call real AWS")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--live-aws"):
        return
    skip = pytest.mark.skip(reason="calls real AWS: opt in with --live-aws")
    for item in items:
        if "live_aws" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Dummy credentials, a fixed region, no profile, no endpoint unless a test sets one."""
    empty = tmp_path_factory.getbasetemp() / "no-aws-config"
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("MLSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite MLflow registry (artifacts beside it) as the process's tracking URI.

    The active experiment another test chose (`mlflow.set_experiment` keeps it in a module global and
    `MLFLOW_EXPERIMENT_ID`) does not exist here, so it is forgotten for the test.
    """
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    """The SageMaker emulator (with S3 and STS) as a loopback child process, one per test module."""
    with EmulatorProcess() as process:
        yield process


@pytest.fixture(autouse=True, scope="module")
def _forget_the_active_experiment() -> Iterator[None]:
    """After each module: a module that chose an experiment (`mlflow.set_experiment` keeps it in a module
    global and exports `MLFLOW_EXPERIMENT_ID`) must not leave it to the next, whose registry lacks it."""
    yield
    mlflow.tracking.fluent._active_experiment_id = None
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        os.environ.pop(name, None)
