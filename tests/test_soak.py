"""A short soak of `mlsync serve` and of the plugin worker: nothing lost, the final state right, and
memory, file descriptors and threads at the end close to where they started.

The soak itself is benchmarks/bench_soak.py (minutes of it, with the figures in docs/benchmarks.md);
this runs its two parts briefly, 10 s of deliveries at 20/s and 100 registrations, and asserts on what
they report. The bounds on resources are generous on purpose: they catch a leak per delivery or per
registration (a thread, a connection, a copy of a payload), not the warm-up of caches and pools, and no
figure here is a time.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mlflow_sagemaker_registry.emulator import EmulatorProcess

pytestmark = pytest.mark.e2e

DURATION, RATE, REGISTRATIONS = 10.0, 20.0, 100
MODELS = 2
"""Models (of as many versions) the deliveries move aliases of: fewer than the benchmark's, for a shorter
startup reconcile."""
SPARE_THREADS = 4
"""Threads a process at rest may hold beyond its start: a pool's idle thread, a worker still exiting."""
SPARE_FDS = 25
"""File descriptors beyond the start: boto3 keeps up to 10 connections per client alive."""
RSS_GROWTH = 1.5
"""The end's RSS over the start's: loading boto3 and warming MLflow's caches happens during the soak."""


def load_bench() -> ModuleType:
    """benchmarks/bench_soak.py as a module (benchmarks/ is no package), so both run the same soak."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_soak.py"
    spec = importlib.util.spec_from_file_location("bench_soak", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    environ = dict(os.environ)
    try:
        spec.loader.exec_module(module)
    finally:  # it sets `NO_TELEMETRY` for a run of its own, not for the whole test session
        os.environ.clear()
        os.environ.update(environ)
    return module


bench = load_bench()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The emulator process and a registry with one logged model, shared by both soaks."""
    root = tmp_path_factory.mktemp("soak")
    with EmulatorProcess() as emulator, pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # MLflow's artifacts
        yield bench.set_up(root, emulator)


def assert_flat(samples: Any) -> None:
    """The end of a `bench_soak.Samples` within the bounds above of its start."""
    rss, fds, threads = (samples.figures(name) for name in ("rss_kib", "fds", "threads"))
    assert threads[1] <= threads[0] + SPARE_THREADS, threads
    assert fds[1] <= fds[0] + SPARE_FDS, fds
    assert rss[1] <= rss[0] * RSS_GROWTH, rss


def test_serve_loses_no_delivery_and_stays_flat(setup: Any) -> None:
    soak = bench.soak_serve(setup, duration=DURATION, rate=RATE, models=MODELS, versions=MODELS)
    print("\n".join(soak.lines()))

    assert soak.problems == []
    assert soak.answers == {202: int(DURATION * RATE)}
    assert_flat(soak.samples)


def test_the_plugin_mirrors_every_registration_and_stays_flat(setup: Any) -> None:
    soak = bench.soak_plugin(setup, registrations=REGISTRATIONS)
    print("\n".join(soak.lines()))

    assert soak.problems == []
    assert_flat(soak.samples)
