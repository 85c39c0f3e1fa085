"""A real `mlflow server` on 127.0.0.1 for end-to-end tests: the REST path production deployments take."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def mlflow_server(
    root: Path, *, args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """`mlflow server` over `root/mlflow.db`, run from `root` (artifacts under it); yields its URL.

    Args:
        root: The working directory; the log is `root/mlflow-server.log`.
        args: More `mlflow server` options (e.g. `--registry-store-uri`).
        env: The server's whole environment; by default this process's, without `MLFLOW_*`.
    """
    port = free_port()
    if env is None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
    ]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", *args]
    log = root / "mlflow-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=root, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"{url}/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        with suppress(ProcessLookupError):  # its own session: the server and any worker it spawned
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False
