"""Backfill of a whole registry: a hand-written sequential script against `mlsync push --all`.

A SQLite MLflow registry of M models x V versions (one tiny logged scikit-learn model, registered V times
under each of M names: every version a real MLflow version). The SageMaker emulator runs as a loopback
process that answers every request a fixed latency late (`--latency-ms`), standing for the round trip
to AWS. For each latency, two contenders mirror the whole registry, each in a fresh child process, from
a pristine copy of the registry, into a reset emulator and a fresh S3 bucket:

- the baseline, `benchmarks/naive_backfill.py`: describe-or-create each group, then per version
  download, tar, upload and `CreateModelPackage`, one request at a time;
- `mlsync push --all`, with `--concurrency N` when given (mlsync's default otherwise).

Printed: the wall time of each child (interpreter start and imports included, the same for both), the
ratio naive / mlsync, the SageMaker calls (the emulator's call log) and the S3 and STS requests (moto's
request recorder in the emulator process) per version, and a model of mlsync's time,
`calls x latency / concurrency + local work`, where the local work is mlsync's push at latency 0.
Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_backfill.py [--models 20] [--versions 10] [--latency-ms 50 20]
        [--concurrency N]

MLflow writes to SQLite: on a disk that syncs slowly, run with TMPDIR on a tmpfs so that the registry's
own writes do not dominate what is measured.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow: nothing leaves 127.0.0.1

import argparse
import contextlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import mlflow
import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

from mlflow_sagemaker_registry.config import DEFAULT_CONCURRENCY
from mlflow_sagemaker_registry.emulator import WRITE_OPERATIONS, EmulatorProcess

REGION = "us-east-1"
NAIVE = Path(__file__).with_name("naive_backfill.py")
# Dummy credentials: the emulator checks none, and nothing may reach real AWS.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIABENCHMARK", "AWS_SECRET_ACCESS_KEY": "x", "AWS_SESSION_TOKEN": "x"}


def build_registry(directory: Path, models: int, versions: int) -> str:
    """`models` registered models of `versions` versions each, all of one logged model; the tracking URI."""
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    features = np.arange(20, dtype=float).reshape(10, 2)
    model = LogisticRegression().fit(features, [0, 1] * 5)
    # The artifacts beside the database, not in the working directory's mlruns/.
    experiment = mlflow.create_experiment("backfill", artifact_location=(directory / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        mlflow.log_params({f"param_{i}": i for i in range(10)})
        mlflow.log_metric("accuracy", 0.9)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=features[:2],
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],  # inferring them costs seconds
        )
    for m in range(models):
        for _ in range(versions):
            mlflow.register_model(info.model_uri, f"backfill-model-{m:03d}")
    return uri


@dataclass
class Run:
    """One contender's backfill at one latency."""

    seconds: float
    sagemaker: Counter[str]
    s3: Counter[str]
    sts: int
    packages: int


def recorded(path: Path, start: int) -> tuple[list[dict[str, object]], int]:
    """The requests moto recorded since line `start` of its recording, and the new line count."""
    if not path.exists():
        return [], start
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines[start:]], len(lines)


def aws_service(request: dict[str, object]) -> str:
    """The service a recorded request was signed for (the SigV4 credential scope)."""
    headers = request.get("headers")
    authorization = str(headers.get("Authorization", "")) if isinstance(headers, dict) else ""
    scope = authorization.partition("Credential=")[2].split(",")[0].split("/")
    return scope[3] if len(scope) > 3 else "unsigned"


def s3_operation(request: dict[str, object]) -> str:
    """A readable name for a recorded S3 request: its method, and the multipart step if any."""
    method, url = str(request["method"]), str(request["url"])
    if method == "POST" and "uploads" in url:
        return "POST (multipart)"
    if method == "PUT" and "partNumber=" in url:
        return "PUT (part)"
    return method


def count_packages(endpoint: str) -> int:
    """Every versioned package in the emulator's registry, through its API (after the counts are read)."""
    sagemaker = client("sagemaker", endpoint)
    pages = sagemaker.get_paginator("list_model_packages")
    return sum(
        len(page["ModelPackageSummaryList"])
        for page in pages.paginate(ModelPackageType="Versioned", PaginationConfig={"PageSize": 100})
    )


def client(service: str, endpoint: str) -> Any:
    """A boto3 client of the emulator process, with the dummy credentials."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"],
    )


def run_child(
    command: Sequence[str],
    emulator: EmulatorProcess,
    pristine: Path,
    work: Path,
    recording: Path,
    faults: Callable[[EmulatorProcess], None] | None = None,
) -> Run:
    """Reset the emulator (then add `faults`), restore the registry, make a fresh bucket, run `command`
    (its `{uri}` and `{prefix}` filled in) and count what it asked."""
    emulator.reset()
    if faults is not None:
        faults(emulator)
    work.mkdir()
    shutil.copy(pristine, work / "mlflow.db")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    bucket = f"bench-{work.name}"
    s3 = client("s3", emulator.url)
    s3.create_bucket(Bucket=bucket)
    _, mark = recorded(recording, 0)
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": emulator.url, "AWS_DEFAULT_REGION": REGION}
    env.pop("AWS_PROFILE", None)
    filled = [part.format(uri=uri, prefix=f"s3://{bucket}/mirror") for part in command]
    started = time.perf_counter()
    child = subprocess.run(filled, env=env, cwd=work, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(filled)} failed ({child.returncode}):\n{child.stdout}\n{child.stderr}")
    sagemaker = emulator.call_counts()
    requests, _ = recorded(recording, mark)
    s3_ops = Counter(s3_operation(r) for r in requests if aws_service(r) == "s3")
    sts = sum(1 for r in requests if aws_service(r) == "sts")
    return Run(seconds, sagemaker, s3_ops, sts, count_packages(emulator.url))


def calls_line(label: str, run: Run, versions: int) -> str:
    sagemaker = sum(run.sagemaker.values())
    writes = sum(n for op, n in run.sagemaker.items() if op in WRITE_OPERATIONS)
    s3 = sum(run.s3.values())
    detail = ", ".join(f"{op} {n}" for op, n in sorted(run.sagemaker.items()))
    s3_detail = ", ".join(f"{op} {n}" for op, n in sorted(run.s3.items()))
    return (
        f"  {label:<8} SageMaker {sagemaker:>5} ({writes} writes) = {sagemaker / versions:.2f}/version; "
        f"S3 {s3:>5} = {s3 / versions:.2f}/version; STS {run.sts}\n"
        f"           [{detail}]\n           [S3: {s3_detail}]"
    )


def model_line(label: str, run: Run, latency: float, concurrency: int, local: float) -> str:
    """`calls x latency / concurrency + local work` beside the measured time."""
    calls = sum(run.sagemaker.values()) + sum(run.s3.values()) + run.sts
    model = calls * latency / 1000 / concurrency + local
    return (
        f"  model for {label}: {calls} calls x {latency:g} ms / {concurrency} + {local:.2f} s local "
        f"= {model:.2f} s; measured {run.seconds:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--versions", type=int, default=10, help="versions per model")
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[50.0, 20.0])
    parser.add_argument(
        "--concurrency", type=int, help=f"mlsync --concurrency (default: {DEFAULT_CONCURRENCY})"
    )
    parser.add_argument(
        "--throttled",
        type=float,
        default=0.3,
        help="then mlsync again at the last latency with this share of SageMaker calls throttled (0: no)",
    )
    arguments = parser.parse_args()
    total = arguments.models * arguments.versions
    concurrency = arguments.concurrency or DEFAULT_CONCURRENCY
    naive = [
        sys.executable,
        str(NAIVE),
        "--tracking-uri",
        "{uri}",
        "--s3-prefix",
        "{prefix}",
        "--region",
        REGION,
    ]
    mlsync = [sys.executable, "-m", "mlflow_sagemaker_registry", "--tracking-uri", "{uri}"]
    mlsync += ["--region", REGION, "--s3-prefix", "{prefix}"]
    if arguments.concurrency is not None:
        mlsync += ["--concurrency", str(arguments.concurrency)]
    mlsync += ["push", "--all"]

    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        root = Path(tmp)
        (root / "registry").mkdir()
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            build_registry(root / "registry", arguments.models, arguments.versions)  # a line a version
        built = time.perf_counter() - started
        startup = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import boto3, mlflow"], check=True)
        startup = time.perf_counter() - startup
        pristine = root / "registry" / "mlflow.db"
        print(
            f"{arguments.models} models x {arguments.versions} versions = {total} versions; "
            f"registry built in {built:.1f} s; mlsync concurrency {concurrency}; "
            f"a child importing boto3 and mlflow takes {startup:.2f} s (in every wall time below)"
        )
        recording = root / "s3-requests.jsonl"
        os.environ.update({"MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(recording)})
        local: dict[str, float] = {}  # each contender's time at latency 0: its local work
        for latency in [0.0, *arguments.latency_ms]:
            with EmulatorProcess(latency_ms=latency) as emulator:
                naive_run = run_child(naive, emulator, pristine, root / f"naive-{latency:g}", recording)
                mlsync_run = run_child(mlsync, emulator, pristine, root / f"mlsync-{latency:g}", recording)
            local = local or {"naive": naive_run.seconds, "mlsync": mlsync_run.seconds}
            print(f"\nlatency {latency:g} ms per request:")
            for label, run in (("naive", naive_run), ("mlsync", mlsync_run)):
                print(f"  {label:<8} {run.seconds:7.2f} s wall, {run.packages} packages in SageMaker")
            print(f"  ratio naive / mlsync: {naive_run.seconds / mlsync_run.seconds:.2f}")
            print(calls_line("naive", naive_run, total))
            print(calls_line("mlsync", mlsync_run, total))
            print(model_line("naive", naive_run, latency, 1, local["naive"]))
            print(model_line("mlsync", mlsync_run, latency, concurrency, local["mlsync"]))
        if arguments.throttled:
            throttled_run(mlsync, arguments, root, recording, total)


def throttled_run(
    mlsync: list[str], arguments: argparse.Namespace, root: Path, recording: Path, total: int
) -> None:
    """mlsync at the last latency with a share of every SageMaker call answered ThrottlingException
    (seeded), retried by botocore's retry mode (`standard` unless MLSYNC_RETRY_MODE says otherwise)."""
    latency = arguments.latency_ms[-1]

    def throttle(emulator: EmulatorProcess) -> None:
        emulator.fault_rate("*", arguments.throttled, codes=("ThrottlingException",), seed=1)

    with EmulatorProcess(latency_ms=latency) as emulator:
        pristine = root / "registry" / "mlflow.db"
        run = run_child(mlsync, emulator, pristine, root / "throttled", recording, throttle)
        throttled = sum("error" in call.faults for call in emulator.calls())
        made = emulator.calls_to("CreateModelPackage")
        creates = {call.params["ClientToken"] for call in made if call.error is None}
    print(
        f"\nlatency {latency:g} ms, {arguments.throttled:.0%} of SageMaker calls throttled: mlsync "
        f"{run.seconds:.2f} s wall, {throttled} calls answered ThrottlingException and retried, "
        f"{run.packages} packages for {total} versions ({len(creates)} distinct ClientTokens created)"
    )


if __name__ == "__main__":
    main()
