"""The registry-store plugin's background worker: mirror MLflow changes without ever failing MLflow.

Why a background thread: the user's MLflow call must return at MLflow's speed whatever AWS does (slow,
down, refusing access), so the store only queues what changed and a worker reconciles it afterwards.
Why at most one thread per store, started on demand and gone when idle: jobs run in order, so the engine
(boto3 clients, an MLflow client) is never used by two threads at once, and an idle store holds no
thread. A forked child starts afresh (`_after_fork`).

Queued jobs of one model coalesce: a reconcile mirrors the whole model as it is when it runs, so one
queued push covers every change made before it starts. A job that is already running is never widened;
a change during it queues one more push, which reads MLflow after the change.

A failure is logged once and recorded on the versions the change touched (`mlsync.sync_status` =
`failed: ...`, as `mlsync push` records its own), so the MLflow UI shows it and the next `mlsync push`
repairs it. Nothing is lost when a script exits right after registering: the process waits for the
queue before it ends (see `_drain_at_exit`).
"""

from __future__ import annotations

# Imported before `_drain_at_exit` is registered, so that the drain runs before the thread pools' own
# exit hook (hooks run last-registered first) while boto3 and MLflow can still start transfer threads.
import concurrent.futures.thread  # noqa: F401
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlflow.entities.model_registry import ModelVersionTag

from ..errors import MlsyncError
from ..mapping import TAG_SYNC_STATUS

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger(__name__)

READY_TIMEOUT = 300.0
"""Seconds to wait for a version in PENDING_REGISTRATION to become READY (MLflow's own default wait)."""

EXIT_TIMEOUT = 600.0
"""Seconds a process waits at exit for changes still queued; what is left then is logged for a push."""

QUIET = 0.05
"""Seconds a worker waits before its first job: see `MirrorWorker._run`."""

MAX_STATUS = 5000
"""MLflow's limit on a tag value; the executor cuts its failure statuses to the same length."""

PENDING_REGISTRATION = "PENDING_REGISTRATION"
"""The status of a model version whose files MLflow is still copying (`ModelVersionStatus`)."""


@dataclass(frozen=True)
class Job:
    """One change to mirror: reconcile a model, or reject the packages of versions that are gone.

    Attributes:
        model: The registered model's name.
        versions: The versions the change touched: where a failure is recorded; for a job that is
            `gone`, the deleted versions (every version of the model when empty).
        gone: The versions (or the whole model) no longer exist in MLflow.
        pending: Versions that were still PENDING_REGISTRATION: waited for until READY.
    """

    model: str
    versions: frozenset[str] = frozenset()
    gone: bool = False
    pending: frozenset[str] = frozenset()

    def absorb(self, other: Job) -> Job | None:
        """One push covering this job and `other`, or None when they must stay two jobs."""
        if self.gone or other.gone or self.model != other.model:
            return None
        return Job(self.model, self.versions | other.versions, pending=self.pending | other.pending)


class MirrorWorker:
    """Runs the mirror jobs of one plugin store on a background thread.

    Args:
        connect: Builds the engine; called on the worker thread at the first job (never inside MLflow's
            store construction, which holds a lock that building an MLflow client would take again), and
            again after a failed build.
        inner: The wrapped MLflow store, read for prompts and pending versions, written for failures.
        ready_timeout: See `READY_TIMEOUT`.
        poll_interval: Seconds between two reads of a pending version's status.
        quiet: See `QUIET`.
    """

    def __init__(
        self,
        connect: Callable[[], Engine],
        inner: Any,
        *,
        ready_timeout: float = READY_TIMEOUT,
        poll_interval: float = 1.0,
        quiet: float = QUIET,
    ) -> None:
        self._connect = connect
        self._inner = inner
        self._ready_timeout = ready_timeout
        self._poll_interval = poll_interval
        self._quiet = quiet
        self._engine: Engine | None = None
        self._jobs: deque[Job] = deque()
        self._thread: threading.Thread | None = None
        self._condition = threading.Condition()
        _WORKERS.add(self)

    def forget_parent(self) -> None:
        """Start afresh in a forked child process (see `_after_fork`)."""
        self._engine = None
        self._jobs = deque()
        self._thread = None
        self._condition = threading.Condition()

    def submit(self, job: Job) -> None:
        """Queue `job` (merged into a queued push of the same model) and make sure a thread runs it."""
        with self._condition:
            for index, queued in enumerate(self._jobs):
                merged = queued.absorb(job)
                if merged is not None:
                    self._jobs[index] = merged
                    break
            else:
                self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mlsync-plugin", daemon=True)
                self._thread.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued job has run; False if `timeout` seconds passed first."""
        with self._condition:
            return self._condition.wait_for(lambda: self._thread is None, timeout)

    def queued_models(self) -> list[str]:
        """The models of the jobs not started yet (for the exit warning)."""
        with self._condition:
            return [job.model for job in self._jobs]

    def _run(self) -> None:
        # Let the user's call finish before competing with it for the GIL, and let the changes a script
        # makes right after registering (an alias, a tag) join the first push.
        time.sleep(self._quiet)
        while True:
            with self._condition:
                if not self._jobs:
                    self._thread = None
                    self._condition.notify_all()
                    return
                job = self._jobs.popleft()
            try:
                self._mirror(job)
            except Exception as exc:  # a failure must neither reach MLflow nor stop the worker
                self._report(job, exc)

    def _mirror(self, job: Job) -> None:
        if job.gone:
            self._engine_().retire(job.model, sorted(job.versions))
            return
        # Prompts are registered models too (MLflow tags them), but there is no model to deploy.
        if self._inner.get_prompt(job.model) is not None:
            return
        self._await_ready(job)
        # Per-version failures are recorded and logged by the executor; only a failed plan raises.
        self._engine_().push([job.model])

    def _engine_(self) -> Engine:
        if self._engine is None:
            self._engine = self._connect()
        return self._engine

    def _await_ready(self, job: Job) -> None:
        """Wait for versions still being registered: a reconcile mirrors READY versions only."""
        deadline = time.monotonic() + self._ready_timeout
        for version in sorted(job.pending):
            while self._inner.get_model_version(job.model, version).status == PENDING_REGISTRATION:
                if time.monotonic() >= deadline:
                    raise MlsyncError(
                        f"version {version} was still registering after {self._ready_timeout:.0f} s; "
                        "`mlsync push` mirrors it once it is READY"
                    )
                time.sleep(self._poll_interval)

    def _report(self, job: Job, exc: Exception) -> None:
        """Log the failure once, and record it on the touched versions that still exist."""
        status = f"failed: {exc}"[:MAX_STATUS]
        recorded = [] if job.gone else [v for v in sorted(job.versions) if self._record(job, v, status)]
        if job.gone:
            outcome = "the packages of the deleted versions were not rejected; reject them in SageMaker"
        elif recorded:
            outcome = f"recorded on version(s) {', '.join(recorded)}; `mlsync push` repairs it"
        else:
            outcome = "`mlsync push` repairs it"
        log.warning(
            "mlsync: mirroring MLflow model %r into SageMaker failed: %s (%s)",
            job.model,
            exc,
            outcome,
            # mlsync's own errors say what to do; anything else is a bug whose traceback is needed.
            exc_info=not isinstance(exc, MlsyncError),
        )

    def _record(self, job: Job, version: str, status: str) -> bool:
        try:
            tag = ModelVersionTag(TAG_SYNC_STATUS, status)  # type: ignore[no-untyped-call]
            self._inner.set_model_version_tag(job.model, version, tag)
        except Exception:  # the version may be gone, or MLflow down too: the log line still tells
            return False
        return True


_WORKERS: weakref.WeakSet[MirrorWorker] = weakref.WeakSet()


def wait_for_mirrors(timeout: float | None = None) -> bool:
    """Wait until every change queued by the plugin stores of this process is mirrored (or failed).

    Useful in tests, benchmarks and scripts that want SageMaker to have followed before going on;
    a process also waits by itself before it exits. Returns False if `timeout` seconds passed first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    done = [
        worker.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))
        for worker in list(_WORKERS)
    ]
    return all(done)


def _drain_at_exit() -> None:
    """Run what is still queued before the interpreter shuts down.

    Registered with `threading._register_atexit`, not `atexit`: those hooks run before the thread pools
    refuse new work (which `atexit` hooks run after), and mirroring a model uploads it with boto3's and
    MLflow's thread pools.
    """
    if wait_for_mirrors(EXIT_TIMEOUT):
        return
    left = sorted({model for worker in list(_WORKERS) for model in worker.queued_models()})
    log.warning(
        "mlsync: exiting before MLflow changes were mirrored into SageMaker (models still queued: %s); "
        "`mlsync push` mirrors them",
        ", ".join(repr(model) for model in left) or "none, one was running",
    )


def _after_fork() -> None:
    """In a forked child, the parent's worker threads do not exist, a lock may be held by one of them, and
    the engine's connections are the parent's: drop it all. The parent mirrors what it had queued."""
    for worker in list(_WORKERS):
        worker.forget_parent()


threading._register_atexit(_drain_at_exit)  # type: ignore[attr-defined]
os.register_at_fork(after_in_child=_after_fork)
