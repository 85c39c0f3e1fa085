"""How long a no-op whole-registry plan spends reading a real `mlflow server` over HTTP, by concurrency.

A real `mlflow server` child process on 127.0.0.1 (SQLite backend store, artifacts in a local directory,
one worker process unless told otherwise) holds M models x V versions. One tiny scikit-learn model is
logged once and every version points at its artifacts; the versions of a model are spread over R runs of
their own (each with params and metrics), so the run reads are shared by V / R versions and not all one.
The SageMaker emulator runs as a loopback process (so nothing in this process patches HTTP), and a first
`push` mirrors every version. Then `Engine.plan()` of the whole registry, which only reads and finds
nothing to do, is timed at each concurrency (the median of a few runs after one warm-up).

MLflow requests are counted in this process by a wrapper around `requests.adapters.HTTPAdapter.send`,
by endpoint (every MLflow REST call goes through `requests`; boto3 does not). SageMaker calls come from
the emulator's call log. With `--mlflow-latency-ms N`, MLflow is reached through a loopback proxy
(`http.server` + `http.client`) that holds every request N ms before forwarding it: the round trip to a
tracking server that is not on the same machine. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_mlflow_reads.py [--models 10] [--versions 20] [--runs 5]
        [--concurrency 1 4 16] [--repeats 2] [--mlflow-latency-ms 0 20] [--server-workers 1]
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow: nothing leaves 127.0.0.1
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no run links among the figures

import argparse
import dataclasses
import http.client
import multiprocessing
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import mlflow
import numpy as np
import requests.adapters
import sklearn
from mlflow.entities import Metric, Param
from sklearn.linear_model import LogisticRegression

from mlflow_sagemaker_registry.childprocess import answers, mlflow_server_command, stop_session
from mlflow_sagemaker_registry.config import Settings, load_settings
from mlflow_sagemaker_registry.emulator import EmulatorProcess
from mlflow_sagemaker_registry.engine import Engine
from mlflow_sagemaker_registry.wiring import connect

REGION = "us-east-1"
BUCKET = "bench-mlflow-reads"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIABENCHMARK", "AWS_SECRET_ACCESS_KEY": "x", "AWS_SESSION_TOKEN": "x"}
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


# -- counting MLflow's requests -----------------------------------------------------------------------


class RequestCounter:
    """Counts every HTTP request sent through `requests` in this process, by endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._send = requests.adapters.HTTPAdapter.send

    def install(self) -> None:
        counter, send = self, self._send

        def counted(adapter: requests.adapters.HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
            path = urlsplit(request.url).path
            endpoint = path.rpartition("/mlflow/")[2] or path
            with counter._lock:
                counter.counts[f"{request.method} {endpoint}"] += 1
            return send(adapter, request, *args, **kwargs)

        requests.adapters.HTTPAdapter.send = counted  # type: ignore[method-assign]

    def take(self) -> Counter[str]:
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts


# -- the MLflow server and the latency proxy ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def mlflow_server(root: Path, workers: int) -> Iterator[str]:
    """`mlflow server` over `root/mlflow.db` with artifacts under `root/artifacts`; yields its URL.

    As tests/mlflow_server.py starts it (without pytest): its own session, so that stopping it stops
    the workers it spawned; the log is `root/mlflow-server.log`.
    """
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "AWS_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    artifacts = ["--default-artifact-root", (root / "artifacts").as_uri(), "--no-serve-artifacts"]
    command = mlflow_server_command(root, port, *artifacts, workers=workers)
    log = root / "mlflow-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not answers(f"{url}/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"mlflow server did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        stop_session(process)


def _proxy_handler(upstream: str, latency_ms: Any) -> type[BaseHTTPRequestHandler]:
    """A handler forwarding each request to `upstream` after `latency_ms.value` ms."""
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: Nagle would hold the body
        upstream_connection: http.client.HTTPConnection | None = None

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | {"host"}}
            time.sleep(latency_ms.value / 1000)
            try:
                response = self._send_upstream(body, headers)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed our idle keep-alive connection (uvicorn does after 5 s): the request
                # never reached it, so sending it again on a new connection is safe.
                self._close_upstream()
                response = self._send_upstream(body, headers)
            payload = response.read()
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP and key.lower() not in ("date", "server"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _send_upstream(self, body: bytes | None, headers: dict[str, str]) -> http.client.HTTPResponse:
            if self.upstream_connection is None:
                self.upstream_connection = http.client.HTTPConnection(
                    target.hostname, target.port, timeout=60
                )
            self.upstream_connection.request(self.command, self.path, body, headers)
            return self.upstream_connection.getresponse()

        def _close_upstream(self) -> None:
            if self.upstream_connection is not None:
                self.upstream_connection.close()
                self.upstream_connection = None

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

        def finish(self) -> None:
            super().finish()
            self._close_upstream()

        def log_message(self, *args: Any) -> None:  # quiet: the benchmark prints figures only
            pass

    return Handler


def _serve_proxy(upstream: str, latency_ms: Any, ready: Connection) -> None:
    """The proxy process: bind a free loopback port, send it to the parent, serve until terminated."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(upstream, latency_ms))
    server.daemon_threads = True
    ready.send(server.server_address[1])
    ready.close()
    server.serve_forever()


@contextmanager
def latency_proxy(upstream: str) -> Iterator[tuple[str, Any]]:
    """A loopback HTTP/1.1 proxy to `upstream` in its own process; yields its URL and its latency.

    Every request waits `latency.value` ms (0 at first; the parent sets it) before it is forwarded. One
    thread per client connection, each with its own keep-alive connection upstream, so requests in
    flight at once wait at once, as on a network. A process of its own, so that its threads do not
    take the GIL from the plan being timed. mlsync sees one tracking URL (the proxy's) throughout: the
    run links in its documents carry that URL, and another one would make every package differ.
    """
    context = multiprocessing.get_context("fork")  # before this process starts any thread
    latency_ms = context.RawValue("d", 0.0)
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(target=_serve_proxy, args=(upstream, latency_ms, sending), daemon=True)
    process.start()
    try:
        if not receiving.poll(30):
            raise SystemExit("the latency proxy did not start")
        yield f"http://127.0.0.1:{receiving.recv()}", latency_ms
    finally:
        process.terminate()
        process.join(10)


# -- the registry --------------------------------------------------------------------------------------


def model_name(index: int) -> str:
    return f"reads-model-{index:03d}"


def build_registry(models: int, versions: int, runs: int) -> None:
    """`models` x `versions` versions over `runs` runs per model, all pointing at one logged model."""
    client = mlflow.MlflowClient()
    experiment = mlflow.create_experiment("mlflow-reads")
    features = np.arange(20, dtype=float).reshape(10, 2)
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            LogisticRegression().fit(features, [0, 1] * 5),
            name="model",
            input_example=features[:2],
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],  # inferring them costs seconds
        )
    source = mlflow.get_logged_model(info.model_id).artifact_location

    def register(m: int) -> None:
        name = model_name(m)
        client.create_registered_model(name)
        run_ids = []
        for r in range(runs):
            run = client.create_run(experiment, run_name=f"{name}-run-{r}")
            now = int(time.time() * 1000)
            params = [Param(f"param_{i}", str(i * (r + 1))) for i in range(10)]
            metrics = [Metric(key, 0.8 + r / 100, now, 0) for key in ("accuracy", "f1", "auc")]
            client.log_batch(run.info.run_id, metrics=metrics, params=params)
            client.set_terminated(run.info.run_id)
            run_ids.append(run.info.run_id)
        for v in range(versions):
            # The server takes a local source under the logged model's directory (model_id) from any run.
            run_id = run_ids[v * runs // versions]
            client.create_model_version(
                name, source, run_id=run_id, model_id=info.model_id, await_creation_for=0
            )

    # Models at once, each model's versions in order (the server numbers them).
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(register, range(models)))


# -- measuring -----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Measured:
    seconds: list[float]
    mlflow: Counter[str]
    sagemaker: Counter[str]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def no_op_plans(engine: Engine, emulator: EmulatorProcess, counter: RequestCounter, repeats: int) -> Measured:
    """`repeats` timed plans after a warm-up plan of one model (boto3's first calls load endpoint
    rules, MLflow's first opens its connection pool); the counts are the last plan's."""
    engine.plan([model_name(0)])
    seconds = []
    for _ in range(repeats):
        counter.take()
        before = emulator.call_counts()
        started = time.perf_counter()
        plan = engine.plan()
        seconds.append(time.perf_counter() - started)
        if not plan.is_empty or plan.unplanned:
            raise SystemExit(
                f"the plan is not a no-op: {len(plan.actions)} actions, {len(plan.unplanned)} unplanned; "
                f"first: {plan.actions[:1] or plan.unplanned[:1]}"
            )
    return Measured(seconds, counter.take(), emulator.call_counts() - before)


def mirror(settings: Settings) -> None:
    """Push every model until nothing is left to do (emulated S3 may fail a concurrent PUT of one key)."""
    engine = connect(settings)
    for _ in range(3):
        _, report = engine.push()
        if not report.failures:
            return
    raise SystemExit(f"the setup push failed: {report.failures[:3]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--versions", type=int, default=20, help="versions per model")
    parser.add_argument("--runs", type=int, default=5, help="distinct runs per model, over its versions")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=2, help="timed plans per case (after a warm-up)")
    parser.add_argument(
        "--mlflow-latency-ms", type=float, nargs="+", default=[0, 20], help="0: straight to the server"
    )
    parser.add_argument("--server-workers", type=int, default=1, help="mlflow server worker processes")
    arguments = parser.parse_args()
    if not 1 <= arguments.runs <= arguments.versions:
        parser.error("--runs must be between 1 and --versions")
    os.environ.update(CREDENTIALS)
    os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ.pop("AWS_PROFILE", None)
    counter = RequestCounter()
    counter.install()
    launched = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="bench-mlflow-reads-") as tmp,
        mlflow_server(Path(tmp), arguments.server_workers) as server,
        latency_proxy(server) as (url, latency_ms),
        EmulatorProcess() as emulator,
    ):
        os.environ["AWS_ENDPOINT_URL"] = emulator.url
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        mlflow.set_tracking_uri(url)
        print(f"mlflow server and emulator up after {time.perf_counter() - launched:.1f} s", flush=True)
        started = time.perf_counter()
        build_registry(arguments.models, arguments.versions, arguments.runs)
        built = time.perf_counter() - started
        values = {"tracking_uri": url, "s3_prefix": f"s3://{BUCKET}/mlsync", "region": REGION}
        base = load_settings(values, env={})
        started = time.perf_counter()
        mirror(dataclasses.replace(base, concurrency=8))
        mirrored = time.perf_counter() - started
        total = arguments.models * arguments.versions
        print(
            f"{arguments.models} models x {arguments.versions} versions ({arguments.runs} runs per model), "
            f"mlflow server with {arguments.server_workers} worker(s); registered in {built:.1f} s, "
            f"mirrored in {mirrored:.1f} s ({counter.take().total()} MLflow requests for setup and mirror)"
        )
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"no-op Engine.plan() of the whole registry, median of {arguments.repeats}:")
        for latency in arguments.mlflow_latency_ms:
            latency_ms.value = latency
            print(f"\nMLflow through the proxy, {latency:g} ms added per request:")
            baseline = None
            for concurrency in arguments.concurrency:
                engine = connect(dataclasses.replace(base, concurrency=concurrency))
                measured = no_op_plans(engine, emulator, counter, arguments.repeats)
                baseline = baseline or measured.median
                runs = ", ".join(f"{s:.2f}" for s in measured.seconds)
                requests_sent = measured.mlflow.total()
                endpoints = ", ".join(f"{e} {n}" for e, n in sorted(measured.mlflow.items()))
                sagemaker = ", ".join(f"{op} {n}" for op, n in sorted(measured.sagemaker.items()))
                print(
                    f"  concurrency {concurrency:>2}: {measured.median:6.2f} s ({runs}), "
                    f"{baseline / measured.median:4.1f}x concurrency 1's speed; "
                    f"{requests_sent} MLflow requests ({requests_sent / total:.2f} per version) "
                    f"[{endpoints}]; {measured.sagemaker.total()} SageMaker [{sagemaker}]"
                )
        print(f"\nload average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
