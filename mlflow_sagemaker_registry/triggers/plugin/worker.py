"""The registry-store plugin's front end to the reconcile queue: mirror MLflow changes without ever failing
MLflow.

Why a background thread: the user's MLflow call must return at MLflow's speed whatever AWS does (slow,
down, refusing access), so the store only queues what changed and a worker reconciles it afterwards
(reconcile.py: the same `Job`, `ReconcileQueue` and `Runner` as every trigger).
Why at most one thread per store, started on demand and gone when idle: jobs run in order, so the engine
(boto3 clients, an MLflow client) is never used by two threads at once, and an idle store holds no
thread. A forked child starts afresh (the queue's own fork handling).

What the plugin adds to the shared parts: the engine is built on the worker at the first job; prompts are
skipped and versions still registering are waited for (`MirrorWorker._prepare`); failures are recorded
through the inner store; and nothing is lost when a script exits right after registering: the process
runs what is queued at once and waits for it before it ends (see `_drain_at_exit`).
"""

from __future__ import annotations

# Imported before `_drain_at_exit` is registered, so that the drain runs before the thread pools' own
# exit hook (hooks run last-registered first) while boto3 and MLflow can still start transfer threads.
import concurrent.futures.thread  # noqa: F401
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from mlflow.entities.model_registry import ModelVersionTag

from ...errors import MlsyncError
from ...sources.mlflow_compat import answers_prompt
from ..reconcile import Job, Kind, ReconcileQueue, Reconciler, Runner

log = logging.getLogger(__name__)

READY_TIMEOUT = 300.0
"""Seconds to wait for a version in PENDING_REGISTRATION to become READY (MLflow's own default wait)."""

EXIT_TIMEOUT = 600.0
"""Seconds a process waits at exit for changes still queued; what is left then is logged for a push."""

QUIET = 0.05
"""Seconds a model waits after its first queued change before it is mirrored: the user's call returns
before the worker competes with it for the GIL, and the changes a script makes right after registering
(an alias, a tag) join the first push. Skipped at exit, where no later change can join it."""

PENDING_REGISTRATION = "PENDING_REGISTRATION"
"""The status of a model version whose files MLflow is still copying (`ModelVersionStatus`)."""


class _StoreTags:
    """Records failures through the inner store, as the engine's own tags are: never through `mlsync+`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            tag = ModelVersionTag(key, value)  # type: ignore[no-untyped-call]
            self._inner.set_model_version_tag(name, version, tag)


class MirrorWorker:
    """Mirrors the changes of one plugin store on one background thread.

    The engine reads and tags the INNER registry, so its own tag writes (a pulled `sagemaker.approval`
    included) never come back through the plugin as changes: unlike the webhook receiver, the plugin has
    no echo of its own writes to suppress.

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
        connect: Callable[[], Reconciler],
        inner: Any,
        *,
        ready_timeout: float = READY_TIMEOUT,
        poll_interval: float = 1.0,
        quiet: float = QUIET,
    ) -> None:
        self._inner = inner
        self._ready_timeout = ready_timeout
        self._poll_interval = poll_interval
        runner = Runner(connect, _StoreTags(inner), prepare=self._prepare)
        self._queue = ReconcileQueue(runner.run, workers=1, quiet=quiet, max_wait=quiet, name="mlsync-plugin")
        _WORKERS.add(self)

    def submit(self, job: Job) -> None:
        """Queue `job` (merged into a queued push of the same model) and make sure a thread runs it.

        Only a change made after the exit drain began (by a later exit hook) is refused: it is logged,
        never dropped in silence.
        """
        if not self._queue.submit(job):
            log.warning(
                "mlsync: %s changed after the process began exiting; `mlsync push` mirrors it",
                job.describe(),
            )

    def hurry(self, timeout: float) -> None:
        """Run what is queued at once, for up to `timeout` seconds, and take nothing new: the process is
        exiting, so no later change can join a queued push and the quiet pause would only delay the exit.

        The queue's close does it, on a thread of its own: it waits for a running mirror without end,
        and the exit must not (`_drain_at_exit` keeps the timeout).
        """
        name = "mlsync-plugin-exit"
        threading.Thread(target=self._queue.close, args=(timeout,), name=name, daemon=True).start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued job has run; False if `timeout` seconds passed first."""
        return self._queue.flush(timeout)

    def queued(self) -> list[Job]:
        """The jobs not started yet (for the exit warning)."""
        return self._queue.queued()

    def _prepare(self, job: Job) -> bool:
        """False for a prompt; waits for versions still being registered (a reconcile mirrors READY ones)."""
        if job.kind is Kind.RETIRE or job.model is None:
            return True
        # Prompts are registered models too (MLflow tags them), but there is no model to deploy.
        if answers_prompt(self._inner, job.model):
            return False
        deadline = time.monotonic() + self._ready_timeout
        for version in sorted(job.pending):
            while self._inner.get_model_version(job.model, version).status == PENDING_REGISTRATION:
                if time.monotonic() >= deadline:
                    raise MlsyncError(
                        f"version {version} was still registering after {self._ready_timeout:.0f} s; "
                        "`mlsync push` mirrors it once it is READY"
                    )
                time.sleep(self._poll_interval)
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
    """Run what is still queued before the interpreter shuts down, without the quiet pause.

    Registered with `threading._register_atexit`, not `atexit`: those hooks run before the thread pools
    refuse new work (which `atexit` hooks run after), and mirroring a model uploads it with boto3's and
    MLflow's thread pools. The queues are told to hurry, and this waits with a timeout of its own: a
    process must exit even when AWS hangs.
    """
    for worker in list(_WORKERS):
        worker.hurry(EXIT_TIMEOUT)
    if wait_for_mirrors(EXIT_TIMEOUT):
        return
    left = sorted({job.describe() for worker in list(_WORKERS) for job in worker.queued()})
    log.warning(
        "mlsync: exiting before MLflow changes were mirrored into SageMaker (still queued: %s); "
        "`mlsync push` mirrors them",
        ", ".join(left) or "none, one was running",
    )


threading._register_atexit(_drain_at_exit)  # type: ignore[attr-defined]
