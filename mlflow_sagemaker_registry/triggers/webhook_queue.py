"""A work queue that coalesces repeated submissions of the same key into few runs.

Webhooks arrive per change, but a reconcile mirrors the whole model, so a burst of 200 alias moves on one
model needs one or two reconciles, not 200. A key waits until it has been quiet for `quiet` seconds, or
at the latest `max_wait` seconds after its first unreconciled submission (so a model changed without
pause is still reconciled regularly). Submitting a key that is waiting changes nothing but its quiet
timer; submitting a key that is running queues one more run after it, because the running reconcile may
have read MLflow before the change. So every submission is followed by a run that starts after it, and a
burst of length D costs at most about D / max_wait + 2 runs.

A key never runs on two workers at once; different keys run in parallel. `close()` drains: what is
queued runs until a deadline, running work is always awaited (never cut off half-applied), and the keys
still queued are handed back for the caller to report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


@dataclass
class _Waiting:
    first: float
    last: float

    def ready_at(self, quiet: float, max_wait: float) -> float:
        return min(self.last + quiet, self.first + max_wait)


class CoalescingQueue(Generic[K]):
    """Runs `work(key)` on a few daemon threads, coalescing submissions of a key that is not yet running.

    Args:
        work: Called with each key; exceptions are logged and never stop a worker.
        workers: Threads, so one long run (a full reconcile) does not hold up the others.
        quiet: Seconds a key must go without submissions before it runs.
        max_wait: Seconds after its first unreconciled submission by which a key runs regardless.
    """

    def __init__(
        self, work: Callable[[K], None], *, workers: int, quiet: float, max_wait: float, name: str = "mlsync"
    ) -> None:
        self._work = work
        self._quiet = quiet
        self._max_wait = max_wait
        self._waiting: dict[K, _Waiting] = {}
        self._running: set[K] = set()
        self._runs = 0
        self._deadline: float | None = None  # set by close(): drain until then, then stop
        self._condition = threading.Condition()
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-worker-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        """Start the workers."""
        for thread in self._threads:
            thread.start()

    def submit(self, key: K) -> bool:
        """Queue a run of `key` (coalesced with a waiting one); False once the queue is closing."""
        with self._condition:
            if self._deadline is not None:
                return False
            now = time.monotonic()
            waiting = self._waiting.get(key)
            if waiting is None:
                self._waiting[key] = _Waiting(first=now, last=now)
            else:
                waiting.last = now
            self._condition.notify()
            return True

    def close(self, timeout: float) -> list[K]:
        """Drain: run what is queued for up to `timeout` seconds, wait for running work, stop.

        Returns:
            The keys still queued at the deadline, never started.
        """
        with self._condition:
            self._deadline = time.monotonic() + timeout
            self._condition.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join()
        with self._condition:
            left = list(self._waiting)
            self._waiting.clear()
            return left

    def stats(self) -> dict[str, int]:
        """Keys waiting, keys running, and runs finished so far."""
        with self._condition:
            return {"waiting": len(self._waiting), "running": len(self._running), "runs": self._runs}

    def _serve(self) -> None:
        while taken := self._take():
            (key,) = taken
            try:
                self._work(key)
            except Exception:
                log.exception("unexpected error while working on %r; the worker carries on", key)
            finally:
                with self._condition:
                    self._running.discard(key)
                    self._runs += 1
                    self._condition.notify_all()

    def _take(self) -> tuple[K] | None:
        """Block until a key is due and not running; None when the queue is closed or drained.

        The key comes in a 1-tuple because None may itself be a key.
        """
        with self._condition:
            while True:
                now, deadline = time.monotonic(), self._deadline
                if deadline is not None and now >= deadline:
                    return None
                wake = deadline
                for key, waiting in self._waiting.items():
                    if key in self._running:
                        continue
                    # Draining runs what is queued at once: quiet periods no longer matter.
                    due = now if deadline is not None else waiting.ready_at(self._quiet, self._max_wait)
                    if due <= now:
                        del self._waiting[key]
                        self._running.add(key)
                        return (key,)
                    wake = due if wake is None else min(wake, due)
                if deadline is not None and not self._waiting:
                    return None
                self._condition.wait(None if wake is None else wake - now)
