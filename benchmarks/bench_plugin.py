"""The registry-store plugin's overhead on `mlflow.register_model`, as a ratio to plain MLflow.

One process, one SQLite database, one logged model: `--registrations` calls of `mlflow.register_model`
with the registry `sqlite:///...` and as many with `mlsync+sqlite:///...`, interleaved so that drift
(disk cache, a busy machine) hits both alike, against the in-process SageMaker emulator (no network).
Prints figures; asserts nothing.

For the plugin it prints three times, each as a ratio to plain MLflow's call:
- the call, with the previous mirror finished: what the user's code waits for;
- the call plus its mirror to the end (SageMaker package created, MLflow tagged): what a script that
  exits right after registering waits for in total;
- the call back to back, while the mirrors of earlier calls still run on the worker thread and share
  the CPU (and the GIL) with it.

Then "register and exit", end to end: `--exits` pairs of fresh Python processes, each registering one
version and exiting at once, one with the plain registry and one with the plugin, interleaved, against
the emulator as a loopback process. A process with the plugin waits at exit for its mirror, and builds
the engine (boto3 clients, an MLflow client) for it first, so this is what a training script pays.

    .venv/bin/python benchmarks/bench_plugin.py [--registrations N] [--exits N]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow: nothing leaves 127.0.0.1

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import mlflow
from sklearn.linear_model import LogisticRegression

from mlflow_sagemaker_registry.emulator import EmulatorProcess, emulated_aws
from mlflow_sagemaker_registry.triggers.plugin import wait_for_mirrors

WARM_UP = 3

EXITING_SCRIPT = """
import sys, time
import mlflow
start = time.perf_counter()
mlflow.register_model(sys.argv[1], sys.argv[2])
print(time.perf_counter() - start)
"""
"""Registers one version and exits at once; prints how long the call took."""


def log_model() -> str:
    """A tiny logged model; registration, not logging, is what is measured."""
    with mlflow.start_run():
        model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    return str(info.model_uri)


def timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def line(label: str, seconds: list[float], baseline: float) -> None:
    median = statistics.median(seconds)
    print(
        f"{label:<46} median {median * 1000:8.1f} ms   mean {statistics.mean(seconds) * 1000:8.1f} ms   "
        f"x{median / baseline:5.2f}"
    )


def register_and_exit(count: int) -> None:
    """Time `count` interleaved pairs of fresh processes that register one version and exit."""
    with tempfile.TemporaryDirectory() as tmp, EmulatorProcess() as emulator:
        environment = {
            **os.environ,
            "AWS_ENDPOINT_URL": emulator.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=emulator.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="bench")
        plain = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        mlflow.set_tracking_uri(plain)
        model_uri = log_model()
        environment["MLFLOW_TRACKING_URI"] = plain
        totals: dict[str, list[float]] = {plain: [], f"mlsync+{plain}": []}
        calls: dict[str, list[float]] = {registry: [] for registry in totals}
        for index in range(count + 1):  # the first pair warms the disk cache and is not counted
            for registry in totals:
                name = "plugin model" if registry.startswith("mlsync+") else "plain model"
                start = time.perf_counter()
                child = subprocess.run(
                    [sys.executable, "-c", EXITING_SCRIPT, model_uri, name],
                    env={**environment, "MLFLOW_REGISTRY_URI": registry},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                if index:
                    totals[registry].append(time.perf_counter() - start)
                    calls[registry].append(float(child.stdout.split()[-1]))
        created = emulator.call_counts()["CreateModelPackage"]
    (plain_total, plugin_total), (plain_call, plugin_call) = totals.values(), calls.values()
    baseline = statistics.median(plain_total)
    print(f"register and exit: {count} fresh processes each (one version, then exit; emulator process)")
    line("plain MLflow, whole process", plain_total, baseline)
    line("plugin, whole process (waits for its mirror)", plugin_total, baseline)
    call_baseline = statistics.median(plain_call)
    line("  plain MLflow, the call in it", plain_call, call_baseline)
    line("  plugin, the call in it", plugin_call, call_baseline)
    added = statistics.median(plugin_total) - baseline
    print(f"{'  what the plugin adds to the process':<46} {added * 1000:8.1f} ms")
    print(f"{'  SageMaker packages created':<46} {created} of {count + 1}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registrations", type=int, default=30)
    parser.add_argument("--exits", type=int, default=10)
    arguments = parser.parse_args()
    count = arguments.registrations
    os.environ["MLSYNC_S3_PREFIX"] = "s3://bench/mlsync"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with tempfile.TemporaryDirectory() as tmp, emulated_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bench")
        plain = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        plugin = f"mlsync+{plain}"
        mlflow.set_tracking_uri(plain)
        model_uri = log_model()

        def register(registry: str, name: str) -> Callable[[], object]:
            def step() -> object:
                mlflow.set_registry_uri(registry)
                return mlflow.register_model(model_uri, name)

            return step

        plain_calls, plugin_calls, with_mirror = [], [], []
        for _ in range(WARM_UP + count):
            plain_calls.append(timed(register(plain, "plain model")))
            assert wait_for_mirrors(120)
            started = time.perf_counter()
            plugin_calls.append(timed(register(plugin, "plugin model")))
            assert wait_for_mirrors(120)
            with_mirror.append(time.perf_counter() - started)
        back_to_back = [timed(register(plugin, "burst model")) for _ in range(WARM_UP + count)]
        drain = timed(lambda: wait_for_mirrors(600))

        baseline = statistics.median(plain_calls[WARM_UP:])
        print(f"mlflow.register_model, {count} calls each after {WARM_UP} warm-up calls (SQLite, emulator)")
        line("plain MLflow (sqlite:///...)", plain_calls[WARM_UP:], baseline)
        line("plugin, call only (mlsync+sqlite:///...)", plugin_calls[WARM_UP:], baseline)
        line("plugin, call + mirror into SageMaker", with_mirror[WARM_UP:], baseline)
        line("plugin, back to back (mirrors in background)", back_to_back[WARM_UP:], baseline)
        print(f"{'  then waiting for the queued mirrors':<46} {drain:8.2f} s")
    if arguments.exits:
        register_and_exit(arguments.exits)


if __name__ == "__main__":
    main()
