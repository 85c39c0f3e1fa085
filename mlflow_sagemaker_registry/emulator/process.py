"""Run the emulator server as a child process, for end-to-end tests, the demo and benchmarks.

The child binds port 0 and prints the port it got, so there is no race between choosing a free port and
binding it. The call log, the emitted EventBridge events, reset and the fault knobs of the child's backend
(``inject_fault``, ``fault_rate``, ``lose_answers``, ``deny_group``, ``delay``, ``throttle``,
``latency``, ``clear_faults``) are reached through the server's control API, with the same methods as
``RegistryBackend``. ``EmulatorProcess(latency_ms=50, throttle=Throttle(5))`` starts the child with
that latency and throttle as its defaults (``--latency-ms``, ``--throttle-*``), which its
``clear_faults`` and ``reset`` come back to::

    with EmulatorProcess() as emulator:
        os.environ["AWS_ENDPOINT_URL"] = emulator.url
        ...  # run mlsync against it, in this process or another
        assert emulator.call_counts()["CreateModelPackage"] == 3
        for event in emulator.events():
            handler(event, None)  # the Lambda handler under test, as EventBridge would call it

Subscribing a callback is in-process only (``RegistryBackend.subscribe``); across processes, read
``events()`` or give ``events_file=`` to have the child append each event to a JSON-lines file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

from ..childprocess import ChildServer, stop_child
from .backend import Call, CallLog
from .events import Event
from .faults import THROTTLING_CODE, FaultControls, Throttle

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding mlflow_sagemaker_registry/


class EmulatorProcess(ChildServer, CallLog, FaultControls):
    """A ``python -m mlflow_sagemaker_registry.emulator`` child serving on a loopback port."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        startup_timeout: float = 30.0,
        events_file: Path | None = None,
        latency_ms: float = 0.0,
        throttle: Throttle | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.events_file = events_file
        """Where the child appends each event as one JSON line (``--events-file``); None: nowhere."""
        self.default_latency_ms = latency_ms
        """The child's latency for every request (``--latency-ms``) until ``latency`` changes it."""
        self.default_throttle = throttle
        """The child's throttle (``--throttle-rate``, ``--throttle-burst``, ``--throttle-operations``),
        besides those ``throttle`` adds; None: none."""
        self._process: subprocess.Popen[str] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The endpoint URL (``http://127.0.0.1:<port>``) to give boto3; only while started."""
        if self._url is None:
            raise RuntimeError("the emulator process is not started")
        return self._url

    def start(self) -> str:
        """Start the child, wait until it answers, and return its endpoint URL."""
        if self._process is not None:
            raise RuntimeError("the emulator process is already started")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "mlflow_sagemaker_registry.emulator"]
        command += ["--host", self.host, "--port", str(self.port)]
        if self.events_file is not None:
            command += ["--events-file", str(self.events_file)]
        command += self._condition_flags()
        self._process = self._spawn(command, env)
        try:
            self._url = self._read_url(self._process)
            self._control("GET", "health")
        except BaseException:
            self.stop()
            raise
        return self._url

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 5 s); safe to call twice."""
        process, self._process, self._url = self._process, None, None
        if process is None:
            return
        with suppress(subprocess.TimeoutExpired):  # it was killed, which is all a stop needs
            stop_child(process, timeout=5)

    # -- the child's backend ------------------------------------------------------------------------

    def calls(self) -> list[Call]:
        return [Call.from_json(call) for call in self._control("GET", "calls")["calls"]]

    def events(self) -> list[Event]:
        """As ``RegistryBackend.events``: every event the child emitted, oldest first."""
        events: list[Event] = self._control("GET", "events")["events"]
        return events

    def reset(self) -> None:
        self._control("POST", "reset")

    def inject_fault(self, operation: str, code: str = THROTTLING_CODE, **options: Any) -> None:
        """As ``RegistryBackend.inject_fault`` (``message``, ``status``, ``times``, ``after_apply``)."""
        self._control("POST", "faults", {"operation": operation, "code": code, **options})

    def add_fault(self, kind: str, options: Mapping[str, Any]) -> None:
        """As ``RegistryBackend.add_fault``, through ``POST /_emulator/faults/<kind>``.

        Raises:
            ValueError: the child refused the rule (its message says why).
        """
        try:
            self._control("POST", f"faults/{kind}", dict(options))
        except urllib.error.HTTPError as exc:
            if exc.code != 400:
                raise
            raise ValueError(json.load(exc)["message"]) from None

    def clear_faults(self) -> None:
        self._control("DELETE", "faults")

    def _control(self, method: str, route: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(f"{self.url}/_emulator/{route}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=self.startup_timeout) as response:
            answer: dict[str, Any] = json.load(response)
        return answer

    def _condition_flags(self) -> list[str]:
        """The flags giving the child ``latency_ms`` and ``throttle`` as its defaults."""
        flags = ["--latency-ms", str(self.default_latency_ms)]
        if self.default_throttle is not None:
            options = self.default_throttle.options()
            operations = options["operations"]
            flags += ["--throttle-rate", str(options["rate"]), "--throttle-burst", str(options["burst"])]
            flags += ["--throttle-operations", *([operations] if isinstance(operations, str) else operations)]
        return flags

    def _did_not_start(self, process: subprocess.Popen[str], line: str) -> str:
        return f"the emulator did not start (exit code {process.poll()}): {line!r}"
