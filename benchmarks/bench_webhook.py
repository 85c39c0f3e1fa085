"""Ack latency of `mlsync serve` under concurrent signed deliveries (p50/p90/p99) and their reconciles.

Starts the SageMaker emulator and `mlsync serve` as loopback processes over a SQLite MLflow registry
with a few registered models, then posts `--deliveries` signed `model_version_alias.created` deliveries
for those models from 1, 8 and 32 client threads (one keep-alive connection each, as MLflow's delivery
pool holds). Latency is measured at the client: send to last byte of the 202. The reconciles the
deliveries trigger run in the receiver meanwhile, against the emulator, so the acks share the process
with real work. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_webhook.py [--deliveries N] [--models M]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow: nothing leaves 127.0.0.1

import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import mlflow
from sklearn.linear_model import LogisticRegression

from mlflow_sagemaker_registry.emulator import EmulatorProcess
from mlflow_sagemaker_registry.triggers.webhook.process import ReceiverProcess
from mlflow_sagemaker_registry.triggers.webhook.signature import signed_headers

SECRET = "bench-secret"
CONCURRENCY = (1, 8, 32)


def register(models: list[str]) -> None:
    """One version of each model, all of one tiny logged model: the receiver, not MLflow, is measured."""
    with mlflow.start_run():
        model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    for name in models:
        mlflow.register_model(info.model_uri, name)


def deliveries(models: list[str], count: int) -> list[tuple[bytes, dict[str, str]]]:
    """`count` signed alias deliveries, round-robin over `models`, each with its own delivery id."""
    signed = []
    for n in range(count):
        data = {"name": models[n % len(models)], "alias": "champion", "version": "1"}
        body = json.dumps(
            {"entity": "model_version_alias", "action": "created", "timestamp": "", "data": data}
        )
        payload = body.encode()
        headers = signed_headers(SECRET, payload, str(uuid.uuid4()), str(int(time.time())))
        signed.append((payload, {"Content-Type": "application/json", **headers}))
    return signed


def post_all(url: str, work: list[tuple[bytes, dict[str, str]]], threads: int) -> tuple[list[float], float]:
    """Post every delivery from `threads` keep-alive connections; the latencies (s) and the wall time."""
    parts = urlsplit(url)
    latencies: list[float] = []
    lock = threading.Lock()

    def client(share: list[tuple[bytes, dict[str, str]]]) -> None:
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        mine = []
        for payload, headers in share:
            start = time.perf_counter()
            connection.request("POST", "/webhook", body=payload, headers=headers)
            response = connection.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            if response.status != 202:
                raise RuntimeError(f"delivery answered {response.status}")
        connection.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=client, args=(work[i::threads],)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies, time.perf_counter() - started


def wait_idle(receiver: ReceiverProcess) -> dict[str, int]:
    while True:
        reconciles: dict[str, int] = receiver.health()["reconciles"]
        if reconciles["waiting"] == 0 and reconciles["running"] == 0:
            return reconciles
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=2000, help="per concurrency level")
    parser.add_argument("--models", type=int, default=4, help="models the deliveries are spread over")
    options = parser.parse_args()
    models = [f"bench-{n}" for n in range(options.models)]

    with tempfile.TemporaryDirectory() as tmp, EmulatorProcess() as emulator:
        root = Path(tmp)
        os.chdir(root)
        database = f"sqlite:///{root / 'mlflow.db'}"
        mlflow.set_tracking_uri(database)
        register(models)
        aws = {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        os.environ.update(aws)
        boto3.client("s3", endpoint_url=emulator.url).create_bucket(Bucket="bench")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_", "MLSYNC_"))},
            **aws,
            "AWS_ENDPOINT_URL": emulator.url,
            "MLFLOW_TRACKING_URI": database,
            "MLSYNC_S3_PREFIX": "s3://bench/mlsync",
            "MLSYNC_WEBHOOK_SECRET": SECRET,
        }
        with ReceiverProcess(env, log_path=root / "serve.log") as receiver:
            while receiver.health()["reconciles"]["runs"] < 1:  # the startup reconcile mirrors the models
                time.sleep(0.1)
            wait_idle(receiver)
            print(f"ack latency of {options.deliveries} signed deliveries over {len(models)} models:")
            columns = ["clients", "acks/s", "p50 ms", "p90 ms", "p99 ms", "max ms"]
            print(" ".join(f"{column:>7}" for column in columns), "reconciles")
            for threads in CONCURRENCY:
                before = wait_idle(receiver)["runs"]
                latencies, wall = post_all(receiver.url, deliveries(models, options.deliveries), threads)
                runs = wait_idle(receiver)["runs"] - before
                cuts = statistics.quantiles(latencies, n=100)
                figures = [cuts[49], cuts[89], cuts[98], max(latencies)]
                print(
                    f"{threads:>7} {len(latencies) / wall:>7.0f} "
                    + " ".join(f"{seconds * 1e3:>7.2f}" for seconds in figures)
                    + f" {runs:>10}"
                )


if __name__ == "__main__":
    main()
