"""A real `mlflow server` on 127.0.0.1 for end-to-end tests: the REST path production deployments take."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlflow_sagemaker_registry.childprocess import answers, mlflow_server_command, stop_session


def free_port() -> int:
    """A port of 127.0.0.1 free a moment ago: another process (a test on another worker) may take it
    before it is bound again, so a server started on it retries on another (`mlflow_server`)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def refused_port() -> Iterator[int]:
    """A port of 127.0.0.1 that refuses connections while the context lasts: bound, never listening, so
    no other process (a test on another worker) can start listening on it meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port: int = held.getsockname()[1]
        yield port


@contextmanager
def mlflow_server(
    root: Path,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
) -> Iterator[str]:
    """`mlflow server` over `root/mlflow.db`, run from `root` (artifacts under it); yields its URL.

    Args:
        root: The working directory; the log is `root/mlflow-server.log`.
        args: More `mlflow server` options (e.g. `--registry-store-uri`).
        env: The server's whole environment; by default this process's, without `MLFLOW_*`.
        python: The interpreter whose MLflow serves: this one's, or another environment's (an older MLflow).
    """
    if env is None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    log = root / "mlflow-server.log"
    for attempt in range(1, STARTS + 1):
        process, url = _start(root, free_port(), args, env, log, python)
        try:
            if _started(process, url, log, retry=attempt < STARTS):
                yield url
                return
        finally:
            stop_session(process)


STARTS = 3
"""Attempts at starting the server, each on another port: a port can be taken between choosing and binding."""


def _start(
    root: Path, port: int, args: Sequence[str], env: Mapping[str, str], log: Path, python: str
) -> tuple[subprocess.Popen[bytes], str]:
    command = mlflow_server_command(root, port, *args, python=python)
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=root, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process, f"http://127.0.0.1:{port}"


def _started(process: subprocess.Popen[bytes], url: str, log: Path, *, retry: bool) -> bool:
    """Whether the server answers; False if it could not bind its port and `retry` (another process, a
    test on another worker, took the port after `free_port` chose it); otherwise fails the test."""
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if answers(f"{url}/health"):
            return True
        time.sleep(0.2)
    output = log.read_text()
    if retry and process.poll() is not None and "address already in use" in output.lower():
        return False
    pytest.fail(f"mlflow server did not start:\n{output}")
