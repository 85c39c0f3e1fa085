"""A server run as a ``python -m ...`` child process, for end-to-end tests, the demo and benchmarks.

The child binds its port (0: any free one) and prints ``listening on <url>`` as its first line on stdout
once it accepts connections, so there is no race between choosing a free port and binding it.
``ChildServer`` starts such a child, reads that line and makes its subclass a context manager; which
command to run, how long a stop may take and whether a child that does not stop is an error are the
subclass's (``EmulatorProcess``, ``ReceiverProcess``).
"""

from __future__ import annotations

import abc
import os
import selectors
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

_LISTENING = "listening on "
_Server = TypeVar("_Server", bound="ChildServer")


class ChildServer(abc.ABC):
    """A child process serving HTTP that announces its URL on stdout; ``with`` starts and stops it."""

    startup_timeout: float
    """Seconds to wait for the child's ``listening on`` line."""

    @abc.abstractmethod
    def start(self) -> str:
        """Start the child and return its URL once it listens."""

    @abc.abstractmethod
    def stop(self) -> object:
        """Stop the child; safe to call when it is not running."""

    def __enter__(self: _Server) -> _Server:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _spawn(
        self, command: Sequence[str], env: Mapping[str, str], *, stderr: IO[str] | None = None
    ) -> subprocess.Popen[str]:
        """Run ``command`` (``python -m ...``) with its stdout on a pipe, where it announces its URL."""
        return subprocess.Popen(
            list(command), stdout=subprocess.PIPE, stderr=stderr, text=True, env=dict(env)
        )

    def _read_url(self, process: subprocess.Popen[str]) -> str:
        """The URL on the child's first line; a RuntimeError if none came within ``startup_timeout``."""
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            line = process.stdout.readline() if selector.select(self.startup_timeout) else ""
        if not line.startswith(_LISTENING):
            raise RuntimeError(self._did_not_start(process, line))
        return line.removeprefix(_LISTENING).strip()

    @abc.abstractmethod
    def _did_not_start(self, process: subprocess.Popen[str], line: str) -> str:
        """The error message for a child whose first line (``""``: none in time) is no URL."""


def stop_child(
    process: subprocess.Popen[str], how: signal.Signals = signal.SIGTERM, *, timeout: float
) -> int:
    """Send ``how`` and return the child's exit code, closing its stdout.

    A child still running after ``timeout`` seconds is killed and reaped, and ``subprocess.TimeoutExpired``
    raised: the caller decides whether that is a failure.
    """
    with process:  # closes its stdout, and waits for it
        process.send_signal(how)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def stop_session(process: subprocess.Popen[Any]) -> None:
    """Stop a child started with ``start_new_session=True`` and everything it spawned (a server's
    workers): SIGTERM to its process group, SIGKILL after 10 s, then reap it."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def answers(url: str) -> bool:
    """Whether a GET of ``url`` answers 2xx within a second: a child server that is up."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def mlflow_server_command(
    root: Path, port: int, *args: str, workers: int = 1, python: str = sys.executable
) -> list[str]:
    """`mlflow server` on 127.0.0.1:`port` over the SQLite registry `root/mlflow.db`, plus `args`: the
    tracking server the tests and benchmarks run mlsync against. `python` is the interpreter whose
    MLflow serves (another environment's, for a server of another MLflow version)."""
    command = [
        python,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
    ]
    return [*command, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), *args]
