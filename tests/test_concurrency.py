"""Concurrency keeps what order meant, and a no-op reconcile costs listing pages, not reads per model.

The engine plans models and applies steps `concurrency` at a time (docs/architecture.md, "Concurrency").
These tests pin what that must not change: a group's packages are created in MLflow version order even
when later versions finish staging first; one package per version under throttling; and the SageMaker
reads of a whole-registry reconcile that changes nothing are a few listing pages for any number of
groups. No timings are asserted (benchmarks/bench_backfill.py and bench_noop.py print those).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import mlflow
import pytest
from e2e_support import every_package, mlsync
from mlflow_models import log_version

from mlflow_sagemaker_registry.config import Settings
from mlflow_sagemaker_registry.emulator import RegistryBackend, emulated_aws
from mlflow_sagemaker_registry.engine import Engine
from mlflow_sagemaker_registry.errors import GatewayError
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN
from mlflow_sagemaker_registry.testing import MemoryRegistry, MemorySource, MemoryStorage, memory_gateways

SETTINGS = Settings(s3_prefix="s3://bucket/mlsync", concurrency=8)
READS = frozenset({"DescribeModelPackageGroup", "ListModelPackages", "ListModelPackageGroups", "ListTags"})


class SlowEarlyVersions(MemorySource):
    """Downloads that take longer the older the version, so later versions finish staging first."""

    def __init__(self, versions: int) -> None:
        super().__init__()
        self._versions = versions
        self.concurrent = 0
        self.most_concurrent = 0
        self._lock = threading.Lock()

    def download_model(self, artifact_uri: str, dest: Path) -> Path:
        with self._lock:
            self.concurrent += 1
            self.most_concurrent = max(self.most_concurrent, self.concurrent)
        try:
            version = int(artifact_uri.rsplit("/", 1)[1])
            time.sleep(0.01 * (self._versions - version + 1))
            return super().download_model(artifact_uri, dest)
        finally:
            with self._lock:
                self.concurrent -= 1


def test_a_groups_packages_are_created_in_version_order_while_staging_runs_at_once() -> None:
    versions = 6
    source = SlowEarlyVersions(versions)
    for model in ("alpha", "beta", "gamma"):
        for _ in range(versions):
            source.add_version(model)
    registry = MemoryRegistry()
    engine = Engine(SETTINGS, memory_gateways(source, registry, MemoryStorage()))

    _, report = engine.push()

    assert report.ok, report.failures
    assert source.most_concurrent > 1  # staging overlapped
    for model in ("alpha", "beta", "gamma"):
        for version in range(1, versions + 1):
            arn = source.get_version(model, str(version)).tags[TAG_PACKAGE_ARN]
            # SageMaker numbers a group's packages in creation order: they follow MLflow's.
            assert registry.package(arn).package_version == version
    # The report lists what was done in the plan's order, whatever finished first.
    assert report.packages_created == [
        source.get_version(model, str(version)).tags[TAG_PACKAGE_ARN]
        for model in ("alpha", "beta", "gamma")
        for version in range(1, versions + 1)
    ]


@pytest.mark.parametrize("groups", [1, 99, 250])
def test_a_no_op_whole_registry_reconcile_reads_listing_pages_only(groups: int) -> None:
    source, registry = MemorySource(), MemoryRegistry()
    for index in range(groups):
        for _ in range(2):
            source.add_version(f"model-{index:03}")
    engine = Engine(SETTINGS, memory_gateways(source, registry, MemoryStorage()))
    assert engine.push()[1].ok
    registry.clear_calls()

    plan, report = engine.push()

    assert plan.is_empty and report.to_dict()["failures"] == []
    calls = registry.call_counts()
    assert set(calls) <= READS
    assert calls == {
        "ListModelPackageGroups": math.ceil(groups / 100),
        "ListModelPackages": math.ceil(2 * groups / 100),
    }


def test_named_models_are_read_one_group_at_a_time() -> None:
    source, registry = MemorySource(), MemoryRegistry()
    for model in ("alpha", "beta", "gamma"):
        source.add_version(model)
    engine = Engine(SETTINGS, memory_gateways(source, registry, MemoryStorage()))
    assert engine.push()[1].ok
    registry.clear_calls()

    assert engine.push(["alpha", "beta"])[0].is_empty

    assert registry.call_counts() == {"DescribeModelPackageGroup": 2, "ListModelPackages": 2}


def test_without_the_list_permission_a_whole_registry_reconcile_reads_each_group(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source, registry = MemorySource(), MemoryRegistry()
    for model in ("alpha", "beta"):
        source.add_version(model)
    engine = Engine(SETTINGS, memory_gateways(source, registry, MemoryStorage()))
    assert engine.push()[1].ok
    registry.clear_calls()
    denied = GatewayError("ListModelPackageGroups failed: not authorized (AccessDeniedException)", "Denied")
    registry.fail_next("ListModelPackageGroups", denied)

    plan, _ = engine.push()

    assert plan.is_empty
    assert registry.call_counts()["DescribeModelPackageGroup"] == 2
    assert "reading one group at a time" in caplog.text


def test_concurrency_one_is_the_sequential_push() -> None:
    source = SlowEarlyVersions(3)
    for _ in range(3):
        source.add_version("alpha")
    engine = Engine(replace(SETTINGS, concurrency=1), memory_gateways(source, MemoryRegistry()))

    assert engine.push()[1].ok
    assert source.most_concurrent == 1


# -- against the emulator, throttled -------------------------------------------------------------------

MODELS, VERSIONS = 4, 3


@pytest.fixture
def throttled(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RegistryBackend]:
    for index in range(MODELS):
        for version in range(VERSIONS):
            log_version(f"model {index}", seed=index * VERSIONS + version)
    with emulated_aws() as backend:
        boto3.client("s3").create_bucket(Bucket="throttled")
        monkeypatch.setenv("MLSYNC_S3_PREFIX", "s3://throttled/mlsync")
        yield backend


@pytest.mark.parametrize("retry_mode", ["standard", "adaptive"])
def test_a_throttled_concurrent_push_makes_exactly_one_package_per_version(
    throttled: RegistryBackend, retry_mode: str
) -> None:
    """30 % of every SageMaker call answered ThrottlingException: botocore retries them (either mode),
    the push completes, and each version has one package, linked."""
    throttled.fault_rate("*", 0.3, codes=("ThrottlingException",), seed=7)

    result = mlsync("--concurrency", "8", "push", "--all", env={"MLSYNC_RETRY_MODE": retry_mode})

    assert result.exit_code == 0, result.output
    assert any("error" in call.faults for call in throttled.calls())  # throttling did happen
    throttled.clear_faults()
    made = every_package()
    assert len(made) == MODELS * VERSIONS  # no duplicate, none missing
    client = mlflow.MlflowClient()
    for index in range(MODELS):
        for version in range(1, VERSIONS + 1):
            arn = client.get_model_version(f"model {index}", str(version)).tags[TAG_PACKAGE_ARN]
            assert (
                boto3.client("sagemaker").describe_model_package(ModelPackageName=arn)["ModelPackageVersion"]
                == version
            )
