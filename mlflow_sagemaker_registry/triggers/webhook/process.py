"""Run `mlsync serve` as a child process on a loopback port, for end-to-end tests and benchmarks.

As with `EmulatorProcess`, the child binds port 0 and prints the URL it got, so there is no race between
choosing a free port and binding it. The child is the real command, signal handling included::

    with ReceiverProcess(env, log_path=tmp / "serve.log") as receiver:
        receiver.post(body, signed_headers(secret, body, delivery_id, timestamp))
        receiver.health()["reconciles"]["runs"]
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...childprocess import ChildServer, stop_child


class ReceiverProcess(ChildServer):
    """`python -m mlflow_sagemaker_registry -v serve --host 127.0.0.1 --port 0 [args]` as a child.

    Args:
        env: The child's whole environment (MLflow, AWS and `MLSYNC_*` settings).
        args: More `serve` options, e.g. `["--reconcile-every", "1s"]`.
        log_path: Where the child's log (stderr, at INFO) is written.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        log_path: Path,
        args: Sequence[str] = (),
        startup_timeout: float = 60.0,
    ) -> None:
        command = [sys.executable, "-m", "mlflow_sagemaker_registry", "-v", "serve"]
        self.command = [*command, "--host", "127.0.0.1", "--port", "0", *args]
        self.env = dict(env)
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.url = ""  # http://127.0.0.1:<port>, once started
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> str:
        """Start the child and return its URL once it listens."""
        with self.log_path.open("a") as log:
            process = self._spawn(self.command, self.env, stderr=log)
        self._process = process
        try:
            self.url = self._read_url(process)
        except RuntimeError:
            self.stop(signal.SIGKILL)
            raise
        return self.url

    def stop(self, how: signal.Signals = signal.SIGTERM) -> int | None:
        """Signal the child and wait for its exit code (None when it was not running)."""
        process, self._process = self._process, None
        if process is None:
            return None
        # Killed after 60 s and TimeoutExpired raised: a receiver that does not stop is a failure, never a
        # hung test run.
        return stop_child(process, how, timeout=60)

    def health(self) -> dict[str, Any]:
        """The child's `GET /healthz`: delivery and reconcile counts."""
        with urllib.request.urlopen(f"{self.url}/healthz", timeout=10) as response:
            answer: dict[str, Any] = json.load(response)
        return answer

    def post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """POST a delivery to `/webhook`; the status and JSON answer, errors included."""
        request = urllib.request.Request(
            f"{self.url}/webhook",
            data=body,
            headers={"Content-Type": "application/json", **headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.load(error)

    def _did_not_start(self, process: subprocess.Popen[str], line: str) -> str:
        return f"mlsync serve did not start: {line!r}; see {self.log_path}"
