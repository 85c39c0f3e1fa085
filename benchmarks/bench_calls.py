"""How many SageMaker API calls a push makes: per new version, per approval change, per no-op reconcile.

Runs a real SQLite MLflow registry against the in-process SageMaker emulator (no network) and counts
the requests the emulator receives, by operation. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_calls.py [--versions N]
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow: nothing leaves 127.0.0.1

import argparse
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import boto3
import mlflow
import numpy as np
from sklearn.linear_model import LogisticRegression

from mlflow_sagemaker_registry.config import load_settings
from mlflow_sagemaker_registry.emulator import WRITE_OPERATIONS, RegistryBackend, emulated_aws
from mlflow_sagemaker_registry.wiring import connect

MODEL = "bench model"


def register_versions(count: int) -> None:
    """One logged sklearn model registered `count` times (registration, not training, is measured)."""
    features = np.arange(20, dtype=float).reshape(10, 2)
    model = LogisticRegression().fit(features, [0, 1] * 5)
    with mlflow.start_run():
        mlflow.log_params({f"param_{i}": i for i in range(10)})
        mlflow.log_metric("accuracy", 0.9)
        info = mlflow.sklearn.log_model(model, name="model")
    for _ in range(count):
        mlflow.register_model(info.model_uri, MODEL)


def measure(backend: RegistryBackend, step: Callable[[], object]) -> Counter[str]:
    """The calls one step makes, by operation."""
    backend.clear_calls()
    step()
    return backend.call_counts()


def report(label: str, counts: Counter[str], per: int) -> None:
    total = sum(counts.values())
    writes = sum(n for op, n in counts.items() if op in WRITE_OPERATIONS)
    detail = ", ".join(f"{op} {n}" for op, n in sorted(counts.items()))
    print(f"{label:<34} {total:>5} calls ({writes} writes) = {total / per:.2f} per item   [{detail}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--versions", type=int, default=20)
    n = parser.parse_args().versions
    with tempfile.TemporaryDirectory() as tmp, emulated_aws() as backend:
        mlflow.set_tracking_uri(f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        register_versions(n)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bench")
        settings = load_settings({"s3_prefix": "s3://bench/mlsync", "region": "us-east-1"}, env={})
        engine = connect(settings)
        client = mlflow.MlflowClient()

        print(f"SageMaker calls for one model with {n} versions (emulator call log):")
        report(f"first push ({n} new versions)", measure(backend, lambda: engine.push([MODEL])), n)
        report(f"no-op reconcile of {n} versions", measure(backend, lambda: engine.push([MODEL])), n)
        client.set_registered_model_alias(MODEL, "champion", "1")
        report("approval change (alias set)", measure(backend, lambda: engine.push([MODEL])), 1)
        client.set_registered_model_alias(MODEL, "champion", "2")
        report("alias moved (2 approvals change)", measure(backend, lambda: engine.push([MODEL])), 2)
        register_versions(1)
        report("one more new version", measure(backend, lambda: engine.push([MODEL])), 1)


if __name__ == "__main__":
    main()
