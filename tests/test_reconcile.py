"""CoalescingQueue: few runs per burst, one run per key at a time, and a drain that never cuts work off."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

import pytest

from mlflow_sagemaker_registry.triggers.webhook_queue import CoalescingQueue

QUIET = 0.05


class Recorder:
    """Work that records each run and, when told, blocks until released."""

    def __init__(self) -> None:
        self.runs: list[Hashable] = []
        self.active: set[Hashable] = set()
        self.overlaps: list[Hashable] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()

    def __call__(self, key: Hashable) -> None:
        with self._lock:
            if key in self.active:
                self.overlaps.append(key)
            self.active.add(key)
        self.started.set()
        self.release.wait(10)
        with self._lock:
            self.active.discard(key)
            self.runs.append(key)


@contextmanager
def queue(
    work: Callable[[Hashable], None], *, workers: int = 2, quiet: float = QUIET, max_wait: float = 1.0
) -> Iterator[CoalescingQueue[Hashable]]:
    running: CoalescingQueue[Hashable] = CoalescingQueue(
        work, workers=workers, quiet=quiet, max_wait=max_wait
    )
    running.start()
    try:
        yield running
    finally:
        running.close(timeout=0)


def idle(running: CoalescingQueue[Hashable], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stats = running.stats()
        if stats["waiting"] == 0 and stats["running"] == 0:
            return
        assert time.monotonic() < deadline, stats
        time.sleep(0.01)


def test_a_burst_of_submissions_is_one_run() -> None:
    work = Recorder()
    with queue(work) as running:
        for _ in range(100):
            running.submit("churn")
        time.sleep(QUIET * 3)
        idle(running)
    assert work.runs == ["churn"]


def test_none_is_a_key_like_any_other() -> None:
    # None is how the receiver asks for a full reconcile; it must not stop a worker.
    work = Recorder()
    with queue(work, workers=1) as running:
        running.submit(None)
        time.sleep(QUIET * 3)
        idle(running)
        running.submit("churn")
        time.sleep(QUIET * 3)
        idle(running)
    assert work.runs == [None, "churn"]


def test_a_key_submitted_while_it_runs_runs_once_more_afterwards() -> None:
    work = Recorder()
    work.release.clear()
    with queue(work, workers=3) as running:
        running.submit("churn")
        assert work.started.wait(5)
        for _ in range(10):
            running.submit("churn")
        time.sleep(QUIET * 3)  # free workers must not start the key while it runs
        assert work.overlaps == [] and running.stats()["running"] == 1
        work.release.set()
        time.sleep(QUIET * 3)
        idle(running)
    assert work.runs == ["churn", "churn"] and work.overlaps == []


def test_different_keys_run_in_parallel() -> None:
    both = threading.Barrier(2, timeout=5)
    met: list[int] = []

    def work(_key: Hashable) -> None:
        met.append(both.wait())  # raises BrokenBarrierError unless the other key runs meanwhile

    with queue(work, workers=2) as running:
        running.submit("a")
        running.submit("b")
        time.sleep(QUIET * 3)
        idle(running)
    assert sorted(met) == [0, 1]


def test_a_key_changed_without_pause_still_runs_every_max_wait() -> None:
    work = Recorder()
    with queue(work, quiet=0.1, max_wait=0.2) as running:
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            running.submit("churn")
            time.sleep(0.01)
        time.sleep(0.3)
        idle(running)
    # About one run per max_wait during the burst, and one after it.
    assert 3 <= len(work.runs) <= 1.0 / 0.2 + 2


def test_close_runs_what_is_queued_at_once_and_returns_nothing_left() -> None:
    work = Recorder()
    running: CoalescingQueue[Hashable] = CoalescingQueue(work, workers=1, quiet=60, max_wait=60)
    running.start()
    running.submit("a")
    running.submit("b")

    started = time.monotonic()
    assert running.close(timeout=5) == []

    assert sorted(map(str, work.runs)) == ["a", "b"]
    assert time.monotonic() - started < 5  # the quiet period no longer applies


def test_close_waits_for_running_work_and_hands_back_what_never_started() -> None:
    work = Recorder()
    work.release.clear()
    running: CoalescingQueue[Hashable] = CoalescingQueue(work, workers=1, quiet=0, max_wait=0)
    running.start()
    running.submit("a")
    assert work.started.wait(5)
    running.submit("b")
    closed: list[list[Hashable]] = []
    closer = threading.Thread(target=lambda: closed.append(running.close(timeout=0)))

    closer.start()
    time.sleep(0.1)
    assert closer.is_alive()  # "a" is running: close must not return, and nothing may cut it off
    work.release.set()
    closer.join(5)

    assert closed == [["b"]] and work.runs == ["a"]


def test_submit_after_close_is_refused() -> None:
    running: CoalescingQueue[Hashable] = CoalescingQueue(Recorder(), workers=1, quiet=0, max_wait=0)
    running.start()
    running.close(timeout=1)
    assert running.submit("a") is False


def test_a_failing_run_is_logged_and_the_worker_carries_on(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[Hashable] = []

    def work(key: Hashable) -> None:
        runs.append(key)
        if key == "bad":
            raise RuntimeError("boom")

    with queue(work, workers=1) as running:
        running.submit("bad")
        time.sleep(QUIET * 3)
        idle(running)
        running.submit("good")
        time.sleep(QUIET * 3)
        idle(running)
    assert runs == ["bad", "good"]
    assert "unexpected error while working on 'bad'" in caplog.text
    assert running.stats()["runs"] == 2
