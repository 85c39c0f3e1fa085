"""What a whole-registry reconcile costs when nothing changed, and when 10 versions among N changed.

A real SQLite MLflow registry of N / 10 models x 10 versions, every version registered through MLflow's
SQL registry store with one logged scikit-learn model as its source, mirrored by `push` (all models)
against the in-process SageMaker emulator (no network). The sizes are built one on another (100, then
900 more versions for 1,000, then 4,000 more for 5,000), so each version is mirrored once. At each N:

- a no-op `push` of every model;
- a `push` after 10 changes: 5 versions given the approval tag (`sagemaker.approval = Approved`) in
  MLflow and 5 other packages approved by a reviewer (another AWS identity) in SageMaker;
- the `push` again, which should find nothing to do.

For each, the SageMaker calls by operation (the emulator's call log), the MLflow client calls by method
(each one request to a tracking server; SQLite here) and the wall time. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_noop.py [--sizes 100 1000 5000] [--concurrency N]

MLflow writes to SQLite: on a disk that syncs slowly, run with TMPDIR on a tmpfs so that the registry's
own writes do not dominate what is measured.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow: nothing leaves 127.0.0.1

import argparse
import dataclasses
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import mlflow
import numpy as np
import sklearn
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
from sklearn.linear_model import LogisticRegression

from mlflow_sagemaker_registry.config import load_settings
from mlflow_sagemaker_registry.emulator import WRITE_OPERATIONS, RegistryBackend, emulated_aws
from mlflow_sagemaker_registry.engine import Engine
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN
from mlflow_sagemaker_registry.wiring import connect

VERSIONS_PER_MODEL = 10
REGION = "us-east-1"


class CountingClient:
    """An `MlflowClient` stand-in that counts the calls of each method, then delegates them."""

    def __init__(self, client: mlflow.MlflowClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.counts[name] += 1
            return attribute(*args, **kwargs)

        return counted


@dataclass
class Measured:
    seconds: float
    sagemaker: Counter[str]
    mlflow: Counter[str]
    done: str


class Registry:
    """The MLflow registry the benchmark grows, and the one logged model every version points at."""

    def __init__(self, uri: str, artifacts: Path) -> None:
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.create_experiment("noop", artifact_location=artifacts.as_uri())
        features = np.arange(20, dtype=float).reshape(10, 2)
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_params({f"param_{i}": i for i in range(10)})
            mlflow.log_metric("accuracy", 0.9)
            info = mlflow.sklearn.log_model(
                LogisticRegression().fit(features, [0, 1] * 5),
                name="model",
                input_example=features[:2],
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],  # inferring them costs seconds
            )
        self.run_id = run.info.run_id
        self.model_id = info.model_id
        self.source = mlflow.get_logged_model(info.model_id).artifact_location
        self.store = SqlAlchemyStore(uri)  # type: ignore[no-untyped-call]
        self.models = 0

    def grow_to(self, models: int) -> None:
        """Register models up to `models`, each with VERSIONS_PER_MODEL versions."""
        for index in range(self.models, models):
            name = model_name(index)
            self.store.create_registered_model(name)  # type: ignore[no-untyped-call]
            for _ in range(VERSIONS_PER_MODEL):
                self.store.create_model_version(name, self.source, run_id=self.run_id, model_id=self.model_id)
        self.models = max(self.models, models)


def model_name(index: int) -> str:
    return f"noop-model-{index:04d}"


def measure(backend: RegistryBackend, counting: CountingClient, step: Callable[[], str]) -> Measured:
    """Time one step and count what it asked of SageMaker and MLflow; `step` says what it did."""
    backend.clear_calls()
    counting.counts.clear()
    started = time.perf_counter()
    done = step()
    return Measured(time.perf_counter() - started, backend.call_counts(), Counter(counting.counts), done)


def push(engine: Engine) -> str:
    """`push` of every model; what its report says it did (raises if anything failed)."""
    _, report = engine.push(None)
    if report.failures:
        raise SystemExit(f"the push failed: {report.failures[:3]}")
    done = {
        "groups created": len(report.groups_created),
        "packages created": len(report.packages_created),
        "packages updated": len(report.packages_updated),
        "versions linked": len(report.versions_linked),
        "approvals pulled": len(report.approvals_pulled),
    }
    return ", ".join(f"{n} {what}" for what, n in done.items() if n) or "nothing"


def change_ten(first_model: int, approval_tag: str) -> None:
    """Approve 5 versions in MLflow (the approval tag) and 5 other packages in SageMaker (a reviewer),
    one per model, in models `first_model` to `first_model + 9`."""
    client = mlflow.MlflowClient()
    reviewer = boto3.client(
        "sagemaker", aws_access_key_id="AKIAREVIEWER", aws_secret_access_key="x", region_name=REGION
    )
    for offset in range(5):
        client.set_model_version_tag(model_name(first_model + offset), "3", approval_tag, "Approved")
    for offset in range(5, 10):
        arn = client.get_model_version(model_name(first_model + offset), "4").tags[TAG_PACKAGE_ARN]
        reviewer.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")


def line(label: str, measured: Measured) -> str:
    sagemaker = sum(measured.sagemaker.values())
    writes = sum(n for op, n in measured.sagemaker.items() if op in WRITE_OPERATIONS)
    mlflow_calls = sum(measured.mlflow.values())
    sm_detail = ", ".join(f"{op} {n}" for op, n in sorted(measured.sagemaker.items()))
    mlflow_detail = ", ".join(f"{op} {n}" for op, n in sorted(measured.mlflow.items()))
    return (
        f"  {label:<26} {measured.seconds:7.2f} s  SageMaker {sagemaker:>5} ({sagemaker - writes} reads, "
        f"{writes} writes)  MLflow {mlflow_calls:>5}  did: {measured.done}\n"
        f"  {'':<26} [SageMaker: {sm_detail}]\n  {'':<26} [MLflow: {mlflow_detail}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000], help="versions, ascending")
    parser.add_argument("--concurrency", type=int, help="the concurrency setting (default: mlsync's)")
    arguments = parser.parse_args()
    sizes = sorted(arguments.sizes)
    if any(n % VERSIONS_PER_MODEL or n < 10 * VERSIONS_PER_MODEL for n in sizes):
        parser.error(f"each size must be a multiple of {VERSIONS_PER_MODEL} and at least 100 (10 changes)")
    with tempfile.TemporaryDirectory(prefix="bench-noop-") as tmp, emulated_aws() as backend:
        root = Path(tmp)
        registry = Registry(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts")
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="bench")
        values: dict[str, object] = {"s3_prefix": "s3://bench/mlsync", "region": REGION}
        values["tracking_uri"] = mlflow.get_tracking_uri()
        if arguments.concurrency is not None:
            values["concurrency"] = arguments.concurrency
        settings = load_settings(values, env={})
        engine = connect(settings)
        # The setup mirrors one request at a time: every version here shares one run, so its documents
        # have the same content-addressed keys, and in-process moto can fail concurrent PUTs of one key
        # with a ValueError that no retry covers.
        mirror = connect(dataclasses.replace(settings, concurrency=1))
        counting = CountingClient(engine.source._client)  # type: ignore[attr-defined]
        engine.source._client = counting  # type: ignore[attr-defined]
        print(f"concurrency {settings.concurrency}; {VERSIONS_PER_MODEL} versions per model")
        for n in sizes:
            before = registry.models
            started = time.perf_counter()
            registry.grow_to(n // VERSIONS_PER_MODEL)
            registered = time.perf_counter() - started
            mirrored = measure(backend, counting, lambda: push(mirror))
            print(
                f"\nN = {n} versions ({registry.models} models): setup registered "
                f"{(registry.models - before) * VERSIONS_PER_MODEL} versions in {registered:.1f} s and "
                f"mirrored them (concurrency 1) in {mirrored.seconds:.1f} s "
                f"({sum(mirrored.sagemaker.values())} SageMaker calls)"
            )
            print(line("no-op push", measure(backend, counting, lambda: push(engine))))
            change_ten(before, settings.approval.tag)
            print(line("push after 10 changes", measure(backend, counting, lambda: push(engine))))
            print(line("push again (no-op)", measure(backend, counting, lambda: push(engine))))


if __name__ == "__main__":
    main()
