"""What a reconcile spends to find K approval changes made in SageMaker among N mirrored versions.

A real SQLite MLflow registry (one model, N versions) against the in-process SageMaker emulator. After a
first push, a reviewer (another AWS identity) approves or rejects K packages in SageMaker; then `pull`
and `push` each reconcile, and the emulator's call log counts what they asked of SageMaker. The baseline,
measured in the same run, is a reconcile that describes every package (what finding reviews costs
without the synced-approval record: `ListModelPackages` summaries carry the approval, but not who
reviewed it or why). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_reviews.py [--versions N] [--changes K ...]
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow: nothing leaves 127.0.0.1

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import boto3
import mlflow
from bench_calls import MODEL, measure, register_versions

from mlflow_sagemaker_registry.config import load_settings
from mlflow_sagemaker_registry.emulator import WRITE_OPERATIONS, RegistryBackend, emulated_aws
from mlflow_sagemaker_registry.engine import Engine
from mlflow_sagemaker_registry.mapping.identity import group_name
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN
from mlflow_sagemaker_registry.wiring import connect


def review(count: int, offset: int) -> None:
    """A reviewer approves `count` packages, starting at version `offset + 1`."""
    reviewer = boto3.client(
        "sagemaker", aws_access_key_id="AKIAREVIEWER", aws_secret_access_key="x", region_name="us-east-1"
    )
    client = mlflow.MlflowClient()
    for number in range(offset + 1, offset + count + 1):
        arn = client.get_model_version(MODEL, str(number)).tags[TAG_PACKAGE_ARN]
        reviewer.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")


def describe_everything(engine: Engine) -> None:
    """The baseline: list the group, describe every package in it."""
    listing = engine.registry.list_group(group_name(MODEL))
    assert listing is not None
    for summary in listing.summaries:
        engine.registry.describe_package(summary.arn)


def line(label: str, counts: Counter[str]) -> str:
    reads = sum(n for op, n in counts.items() if op not in WRITE_OPERATIONS)
    writes = sum(counts.values()) - reads
    detail = ", ".join(f"{op} {n}" for op, n in sorted(counts.items()))
    return f"  {label:<40} {reads:>5} reads {writes:>3} writes   [{detail}]"


def run(backend: RegistryBackend, engine: Engine, n: int, changes: list[int]) -> None:
    offset = 0
    print(f"One model, {n} versions; K packages approved by a reviewer in SageMaker before each reconcile:")
    for k in changes:
        review(k, offset)
        baseline = measure(backend, lambda: describe_everything(engine))
        pulled = measure(backend, lambda: engine.pull([MODEL]))
        print(f"K = {k}")
        print(line("baseline: describe every package", baseline))
        print(line("mlsync pull (finds and records them)", pulled))
        print(line("mlsync push right after (lifecycle)", measure(backend, lambda: engine.push([MODEL]))))
        print(line("mlsync push again (no-op)", measure(backend, lambda: engine.push([MODEL]))))
        offset += k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--changes", type=int, nargs="+", default=[0, 1, 10])
    arguments = parser.parse_args()
    n, changes = arguments.versions, arguments.changes
    if sum(changes) > n:
        parser.error("the changes add up to more than the versions")
    with tempfile.TemporaryDirectory() as tmp, emulated_aws() as backend:
        mlflow.set_tracking_uri(f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        register_versions(n)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bench")
        engine = connect(load_settings({"s3_prefix": "s3://bench/mlsync", "region": "us-east-1"}, env={}))
        engine.push([MODEL])
        run(backend, engine, n, changes)


if __name__ == "__main__":
    main()
