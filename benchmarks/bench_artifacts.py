"""Memory and throughput of pushing (and verifying) a big model: does memory stay flat as models grow?

Registers two custom pyfunc models in a fresh SQLite MLflow registry: one with a tiny artifact and one
whose directory holds a generated file of `--size-mib` MiB (1 GiB by default) of random bytes, which
no compressor can shrink (like trained weights). Each is then pushed by `mlsync` in a fresh process,
against the SageMaker emulator process and its moto S3 on 127.0.0.1, and the process's peak RSS is
read from getrusage. `import mlflow` alone peaks near 170 MiB, so the figure that matters is the
*growth*: the big push's peak minus the tiny push's. Also timed: packing the directory alone
(`package_model`), and `mlsync verify` of the big package (download, unpack, load, predict).
With `--models K`, K big models (each its own random bytes) are then pushed in ONE push with
`--concurrency C` (default 8), staged side by side: does memory stay flat under concurrency too?

Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_artifacts.py [--size-mib 1024] [--skip-verify] [--models 3]
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow: nothing leaves 127.0.0.1

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.pyfunc.model import PythonModel

_MiB = 1024 * 1024
TINY, BIG = "tiny model", "big model"
BUCKET = "bench-artifacts"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the big model's weights file")
    parser.add_argument("--skip-verify", action="store_true", help="do not time `mlsync verify`")
    parser.add_argument("--models", type=int, default=1, help="also push this many big models at once")
    parser.add_argument("--concurrency", type=int, default=8, help="mlsync's concurrency with --models")
    parser.add_argument("--child", nargs=2, metavar=("COMMAND", "MODELS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], json.loads(args.child[1]))
    else:
        run(args.size_mib, verify=not args.skip_verify, models=args.models, concurrency=args.concurrency)


def run(size_mib: int, *, verify: bool, models: int, concurrency: int) -> None:
    from mlflow_sagemaker_registry.emulator import EmulatorProcess

    with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as tmp, EmulatorProcess() as emulator:
        root = Path(tmp)
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": emulator.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "MLSYNC_S3_PREFIX": f"s3://{BUCKET}/mlsync",
            "TMPDIR": str(root),  # the push's working copies go where they are cleaned up
        }
        os.environ.update(env)
        started = time.perf_counter()
        weights = write_weights(root / "weights.bin", size_mib)
        print(f"generated {size_mib} MiB of random weights in {time.perf_counter() - started:.1f} s")
        register(root, weights)
        time_packing(root, size_mib)

        tiny = in_child(env, "push", [TINY])
        big = in_child(env, "push", [BIG])
        growth = big["peak_rss_mib"] - tiny["peak_rss_mib"]
        print(f"push {TINY!r}: peak RSS {tiny['peak_rss_mib']:.0f} MiB, {tiny['seconds']:.1f} s")
        print(
            f"push {BIG!r}: peak RSS {big['peak_rss_mib']:.0f} MiB, {big['seconds']:.1f} s "
            f"= {size_mib / big['seconds']:.0f} MiB/s end to end (download, pack, upload); "
            f"{big['uploaded']} objects uploaded"
        )
        print(f"peak RSS growth for {size_mib} MiB more model: {growth:+.0f} MiB (goal: under 200 MiB)")
        again = in_child(env, "push", [BIG])
        print(f"re-push {BIG!r}: {again['seconds']:.1f} s, {again['uploaded']} objects uploaded")
        if verify:
            for name in (TINY, BIG):
                checked = in_child(env, "verify", [name])
                peak, seconds = checked["peak_rss_mib"], checked["seconds"]
                outcome = "passed" if checked["ok"] else "FAILED"
                print(f"verify {name!r}: peak RSS {peak:.0f} MiB, {seconds:.1f} s, {outcome}")
        if models > 1:
            push_at_once(root, env, size_mib, models, concurrency, tiny["peak_rss_mib"])


def push_at_once(
    root: Path, env: dict[str, str], size_mib: int, models: int, concurrency: int, tiny_peak: float
) -> None:
    """`models` big models (each its own bytes, so none is skipped as already uploaded) in one push."""
    names = [f"{BIG} {index}" for index in range(1, models + 1)]
    for name in names:
        weights = write_weights(root / "weights.bin", size_mib)
        register_one(name, weights)
        weights.unlink()
    pushed = in_child({**env, "MLSYNC_CONCURRENCY": str(concurrency)}, "push", names)
    growth = pushed["peak_rss_mib"] - tiny_peak
    print(
        f"push of {models} x {size_mib} MiB models at concurrency {concurrency}: peak RSS "
        f"{pushed['peak_rss_mib']:.0f} MiB, {pushed['seconds']:.1f} s = "
        f"{models * size_mib / pushed['seconds']:.0f} MiB/s; {pushed['uploaded']} objects uploaded"
    )
    print(f"peak RSS growth over the tiny push: {growth:+.0f} MiB (goal: under 200 MiB)")


def write_weights(path: Path, size_mib: int) -> Path:
    """`size_mib` MiB of random bytes, written a MiB at a time."""
    with path.open("wb") as out:
        for _ in range(size_mib):
            out.write(os.urandom(_MiB))
    return path


def register(root: Path, weights: Path) -> None:
    """Register the two models (the big one's directory holds the weights as an MLflow artifact)."""
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    (root / "tiny.bin").write_bytes(b"\0" * 1024)
    for name, artifact in ((TINY, root / "tiny.bin"), (BIG, weights)):
        register_one(name, artifact)


def register_one(name: str, artifact: Path) -> None:
    """One version of a custom pyfunc model whose directory holds `artifact` as its weights."""
    import pandas as pd  # type: ignore[import-untyped]

    started = time.perf_counter()
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=Doubler(),
            artifacts={"weights": str(artifact)},
            registered_model_name=name,
            input_example=pd.DataFrame({"x": [1.0, 2.0]}),
            pip_requirements=["pandas"],
        )
    print(f"registered {name!r} in {time.perf_counter() - started:.1f} s")


def time_packing(root: Path, size_mib: int) -> None:
    """`package_model` and the managed upload alone, on the big model's directory as MLflow stored it."""
    from mlflow_sagemaker_registry.artifacts import package_model
    from mlflow_sagemaker_registry.gateways.aws import aws_clients
    from mlflow_sagemaker_registry.gateways.s3 import S3Storage

    source = Path(mlflow.MlflowClient().get_model_version_download_uri(BIG, "1"))
    tarball = root / "packed.tar.gz"
    started = time.perf_counter()
    package_model(source, tarball)
    packed = time.perf_counter() - started
    started = time.perf_counter()
    S3Storage(aws_clients("us-east-1").s3).upload_file(tarball, f"s3://{BUCKET}/bench/packed.tar.gz")
    uploaded = time.perf_counter() - started
    tarball.unlink()
    print(f"package_model alone: {packed:.1f} s = {size_mib / packed:.0f} MiB/s (sha256 on the fly)")
    print(
        f"managed upload alone: {uploaded:.1f} s = {size_mib / uploaded:.0f} MiB/s (to moto's S3 on loopback)"
    )


def in_child(env: dict[str, str], command: str, models: list[str]) -> dict[str, Any]:
    """Run one mlsync command in a fresh interpreter; its figures are the last line it prints."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", command, json.dumps(models)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"{command} {models!r} failed:\n{result.stdout}\n{result.stderr}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def child(command: str, models: list[str]) -> None:
    """Push or verify models through the same code paths as `mlsync push` / `mlsync verify`."""
    from mlflow_sagemaker_registry.config import load_settings
    from mlflow_sagemaker_registry.sources.mlflow_serving import PyfuncRunner
    from mlflow_sagemaker_registry.verify import Verifier
    from mlflow_sagemaker_registry.wiring import connect

    engine = connect(load_settings())
    started = time.perf_counter()
    figures: dict[str, Any] = {}
    if command == "push":
        _, report = engine.push(models)
        if not report.ok:
            sys.exit(f"push failed: {report.failures}")
        figures["uploaded"] = report.artifacts_uploaded
    else:
        figures["ok"] = Verifier(engine, PyfuncRunner()).verify(models).ok
    figures["seconds"] = time.perf_counter() - started
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(figures))


class Doubler(PythonModel):
    """A custom model that ignores its weights file: the benchmark is about moving it, not using it."""

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return model_input * 2


if __name__ == "__main__":
    main()
