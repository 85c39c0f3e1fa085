"""The one trigger contract: every trigger hands "reconcile model X" to a `Job`, a `ReconcileQueue` and a
`Runner`, so adding a trigger is parsing its input into a `Job` and nothing else.

- `Job`: what to reconcile (one model, or None for every model), how (`Kind`: push, pull, retire), the
  versions the change touched (where a failure is recorded) and versions still being registered.
- `ReconcileQueue`: one entry per model (and one for None), so a burst of changes to one model becomes
  one or two reconciles, and one model never reconciles on two threads at once (kopf's one queue per
  object). The plugin runs it with one worker and a short pause, the webhook receiver with a few workers
  and quiet/max-wait coalescing; both with the same rules.
- `Runner`: turns a job into the engine call, logs it once and records a plan-level failure on the
  touched versions. It never raises: a trigger's caller (MLflow's call, the HTTP loop, a Lambda) must
  never fail because SageMaker or MLflow did.

Triggers today: the registry-store plugin (plugin.py, plugin_worker.py) and the webhook receiver with its
periodic full reconcile (webhook.py). The CLI calls the engine directly, as it reports plans itself. A new
trigger (say, a Lambda handler for SageMaker's EventBridge events) parses its input into jobs and hands
them to a runner, through a queue when work arrives faster than it runs::

    runner = Runner(lambda: engine, engine.gateways.source)
    runner.run(Job(model, Kind.PULL))
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from ..errors import MlsyncError
from ..mapping.tags import MAX_TAG_VALUE, TAG_SYNC_STATUS

if TYPE_CHECKING:
    from ..executor import Report
    from ..planner import Plan

log = logging.getLogger(__name__)


class Kind(str, Enum):
    """How a job reconciles its model."""

    PUSH = "push"
    """Both ways: MLflow -> SageMaker, with SageMaker's reviews merged back into MLflow (`Engine.push`)."""
    PULL = "pull"
    """Only SageMaker -> MLflow: record reviews made in SageMaker (`Engine.pull`)."""
    RETIRE = "retire"
    """Reject or delete the packages of versions deleted in MLflow (`Engine.retire`): a reconcile reads
    only the versions that exist, so it cannot notice a deletion."""


@dataclass(frozen=True)
class Job:
    """One change to mirror.

    Attributes:
        model: The registered model's name; None for every model (not for a retire).
        kind: See `Kind`.
        versions: The versions the change touched: where a plan-level failure is recorded. For a retire,
            the deleted versions (every version of the model when empty).
        pending: Versions still being registered (PENDING_REGISTRATION), which a trigger's `prepare`
            waits for: a reconcile mirrors READY versions only.

    Raises:
        ValueError: a retire of every model (a deletion always names its model).
    """

    model: str | None = None
    kind: Kind = Kind.PUSH
    versions: frozenset[str] = frozenset()
    pending: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.kind is Kind.RETIRE and self.model is None:
            raise ValueError("a retire job names its model")

    def merge(self, later: Job) -> Job | None:
        """One job doing the work of this queued job and `later`, or None when they must stay two.

        A reconcile mirrors the whole model as it is when it starts, so two pushes (or pulls) of a model
        are one; a push pulls reviews too, so it absorbs a pull. A retire stays on its own: its versions
        are gone, and what it does is not a reconcile.
        """
        if self.model != later.model or Kind.RETIRE in (self.kind, later.kind):
            return None
        kind = Kind.PUSH if Kind.PUSH in (self.kind, later.kind) else Kind.PULL
        return Job(self.model, kind, self.versions | later.versions, self.pending | later.pending)

    def describe(self) -> str:
        """What the job works on, for log lines: "model 'churn'", "every model", ..."""
        if self.model is None:
            return "every model"
        if self.kind is Kind.RETIRE:
            versions = ", ".join(sorted(self.versions))
            which = f"deleted version(s) {versions}" if versions else "every version"
            return f"the packages of {which} of model {self.model!r}"
        return f"model {self.model!r}"


class Reconciler(Protocol):
    """What a runner needs of `Engine`."""

    def push(self, names: Sequence[str] | None = None) -> tuple[Plan, Report]: ...

    def pull(self, names: Sequence[str] | None = None) -> tuple[Plan, Report]: ...

    def retire(self, name: str, versions: Sequence[str] = ()) -> Report: ...


class VersionTags(Protocol):
    """Where a runner records a failure: `ports.Source` has this method, and the plugin adapts its store."""

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None: ...


_VERBS = {
    Kind.PUSH: ("reconciling", "reconciled"),
    Kind.PULL: ("pulling SageMaker's reviews of", "pulled SageMaker's reviews of"),
    Kind.RETIRE: ("retiring", "retired"),
}


class Runner:
    """Runs jobs through the engine; logs each once; never raises.

    A plan-level failure (the engine raised: AWS or MLflow unreachable, a refused plan, a bug) is logged
    and recorded as `mlsync.sync_status = failed: ...` on the touched versions that still exist, so the
    MLflow UI shows it and the next `mlsync push` repairs it. Failures of single actions inside a plan are
    recorded and logged by the executor already; the runner only sums them up (at INFO, as the executor
    logged each at ERROR).

    Args:
        connect: Builds the engine; called at the first job (on the worker thread: the plugin must not
            build an MLflow client inside MLflow's store construction), and again after a failed build.
        tags: Where failures are recorded.
        prepare: Called before each job: False skips it (nothing to mirror), an exception fails it like a
            failed plan. The plugin skips prompts and waits for pending versions here.
    """

    def __init__(
        self,
        connect: Callable[[], Reconciler],
        tags: VersionTags,
        *,
        prepare: Callable[[Job], bool] | None = None,
    ) -> None:
        self._connect = connect
        self._tags = tags
        self._prepare = prepare
        self._engine: Reconciler | None = None
        _PER_PROCESS.add(self)

    def run(self, job: Job) -> bool:
        """Run one job; True unless it, or an action of its plan, failed."""
        try:
            if self._prepare is not None and not self._prepare(job):
                return True
            plan, report = self._call(job)
        except Exception as exc:  # nothing may reach the trigger's caller, nor stop its worker
            self._fail(job, exc)
            return False
        self._summarise(job, plan, report)
        return report.ok

    def _call(self, job: Job) -> tuple[Plan | None, Report]:
        if self._engine is None:
            self._engine = self._connect()
        if job.kind is Kind.RETIRE:
            assert job.model is not None  # a Job refuses to retire every model
            return None, self._engine.retire(job.model, sorted(job.versions))
        names = None if job.model is None else [job.model]
        if job.kind is Kind.PULL:
            return self._engine.pull(names)
        return self._engine.push(names)

    def _summarise(self, job: Job, plan: Plan | None, report: Report) -> None:
        doing, done = _VERBS[job.kind]
        if plan is None:
            changed = len(report.packages_updated) + len(report.packages_deleted)
            counts, total = f"{changed} packages changed", changed + len(report.failures)
        else:
            counts, total = f"{len(plan.actions)} actions, {len(plan.problems)} problems", len(plan.actions)
        if report.ok:
            log.info("%s %s: %s", done, job.describe(), counts)
            return
        first = report.failures[0]
        log.info(
            "%s %s: %d of %d actions failed, first %s v%s %s: %s",
            doing,
            job.describe(),
            len(report.failures),
            total,
            first.model_name,
            first.version,
            first.action,
            first.message,
        )

    def _fail(self, job: Job, exc: Exception) -> None:
        """Log the failure once, and record it on the touched versions that still exist."""
        recorded = self._record(job, f"failed: {exc}"[:MAX_TAG_VALUE])
        if job.kind is Kind.RETIRE:
            outcome = "the packages of the deleted versions were not rejected; reject them in SageMaker"
        elif recorded:
            outcome = f"recorded on version(s) {', '.join(recorded)}; `mlsync push` repairs it"
        else:
            outcome = "`mlsync push` repairs it"
        log.error(
            "mlsync: %s %s failed: %s (%s)",
            _VERBS[job.kind][0],
            job.describe(),
            exc,
            outcome,
            # mlsync's own errors say what to do; anything else is a bug whose traceback is needed.
            exc_info=not isinstance(exc, MlsyncError),
        )

    def _record(self, job: Job, status: str) -> list[str]:
        """Tag each touched version with `status`; the versions it could tag (a retire's are gone)."""
        if job.model is None or job.kind is Kind.RETIRE:
            return []
        recorded = []
        for version in sorted(job.versions):
            try:
                self._tags.set_version_tags(job.model, version, {TAG_SYNC_STATUS: status})
            except Exception:  # the version may be gone, or MLflow down too: the log line still tells
                continue
            recorded.append(version)
        return recorded

    def _forget_parent(self) -> None:
        self._engine = None


@dataclass
class _Waiting:
    """The jobs queued for one key (merged where they can be), and when they were submitted."""

    jobs: list[Job]
    first: float
    last: float

    def add(self, job: Job, now: float) -> None:
        """Merge `job` into the first queued job that absorbs it, else queue it after them."""
        self.last = now
        for index, queued in enumerate(self.jobs):
            merged = queued.merge(job)
            if merged is not None:
                self.jobs[index] = merged
                return
        self.jobs.append(job)

    def due(self, quiet: float, max_wait: float) -> float:
        return min(self.last + quiet, self.first + max_wait)


class ReconcileQueue:
    """Runs `work(job)` on up to `workers` daemon threads, one model at a time, coalescing per model.

    A model's jobs wait until it has had no submission for `quiet` seconds, or at the latest `max_wait`
    seconds after its first waiting submission (so a model changed without pause is still reconciled
    regularly). A job submitted while its model runs waits for that run: the running reconcile may have
    read MLflow before the change. So every submission is followed by a run that starts after it, and a
    burst of length D costs at most about D / max_wait + 2 runs. Models run in the order of their first
    waiting submission; different models run in parallel.

    Threads start when a model is queued and end when nothing is left to take, so an idle queue holds no
    thread. In a forked child the parent's threads do not exist and a lock may be held by one of them:
    every queue (and runner) starts afresh there, and the parent runs what it had queued.

    Args:
        work: Called with each job; an exception is logged and never stops a worker.
        workers: The most threads at once, so one long run (a full reconcile) does not hold up the others.
        quiet: See above.
        max_wait: See above.
        name: The threads' name prefix.
    """

    _condition: threading.Condition
    _waiting: dict[str | None, _Waiting]
    _running: set[str | None]
    _threads: int  # alive, or about to start
    _started: int  # ever, to number their names
    _runs: int
    _deadline: float | None  # set by close(): drain until then, then stop

    def __init__(
        self,
        work: Callable[[Job], object],
        *,
        workers: int,
        quiet: float,
        max_wait: float,
        name: str = "mlsync-reconcile",
    ) -> None:
        self._work = work
        self._workers = workers
        self._quiet = quiet
        self._max_wait = max_wait
        self._name = name
        self._forget_parent()
        _PER_PROCESS.add(self)

    def submit(self, job: Job) -> bool:
        """Queue `job` (merged with its model's queued jobs); False once the queue is closing."""
        with self._condition:
            if self._deadline is not None:
                return False
            now = time.monotonic()
            waiting = self._waiting.get(job.model)
            if waiting is None:
                self._waiting[job.model] = _Waiting([job], now, now)
            else:
                waiting.add(job, now)
            if self._threads < min(self._workers, len(self._waiting.keys() | self._running)):
                self._threads += 1
                self._started += 1
                name = f"{self._name}-{self._started}"
                threading.Thread(target=self._serve, name=name, daemon=True).start()
            self._condition.notify()
            return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued job has run; False if `timeout` seconds passed first."""
        with self._condition:
            return self._condition.wait_for(lambda: self._threads == 0, timeout)

    def close(self, timeout: float) -> list[Job]:
        """Drain and stop: run what is queued at once for up to `timeout` seconds, wait for running work
        (never cut off half-applied), and refuse new jobs.

        Returns:
            The jobs still queued at the deadline, never started.
        """
        with self._condition:
            self._deadline = time.monotonic() + timeout
            self._condition.notify_all()
            self._condition.wait_for(lambda: self._threads == 0)
            left = self.queued()
            self._waiting.clear()
            return left

    def queued(self) -> list[Job]:
        """The jobs not started yet."""
        with self._condition:
            return [job for waiting in self._waiting.values() for job in waiting.jobs]

    def stats(self) -> dict[str, int]:
        """Models waiting, models running, and runs finished so far."""
        with self._condition:
            return {"waiting": len(self._waiting), "running": len(self._running), "runs": self._runs}

    def _serve(self) -> None:
        while (job := self._take()) is not None:
            try:
                self._work(job)
            except Exception:
                log.exception("unexpected error while working on %s; the worker carries on", job.describe())
            finally:
                with self._condition:
                    self._running.discard(job.model)
                    self._runs += 1
                    self._condition.notify_all()

    def _take(self) -> Job | None:
        """Block until a model's job is due and the model is not running; None (and this thread ends)
        when nothing is left for it: the queue is empty, its models run on other threads (which take
        their next jobs themselves), or the drain's deadline has passed."""
        with self._condition:
            while True:
                now, deadline = time.monotonic(), self._deadline
                if deadline is not None and now >= deadline:
                    break
                wake = deadline
                takeable = False
                for model, waiting in self._waiting.items():
                    if model in self._running:
                        continue
                    # Draining runs what is queued at once: quiet periods no longer matter.
                    due = now if deadline is not None else waiting.due(self._quiet, self._max_wait)
                    if due <= now:
                        job = waiting.jobs.pop(0)
                        if not waiting.jobs:
                            del self._waiting[model]
                        self._running.add(model)
                        return job
                    takeable = True
                    wake = due if wake is None else min(wake, due)
                if not takeable:
                    break
                self._condition.wait(None if wake is None else wake - now)
            self._threads -= 1
            self._condition.notify_all()
            return None

    def _forget_parent(self) -> None:
        """Start empty, without threads (at construction, and in a forked child)."""
        self._condition = threading.Condition()
        self._waiting = {}
        self._running = set()
        self._threads = self._started = self._runs = 0
        self._deadline = None


_PER_PROCESS: weakref.WeakSet[ReconcileQueue | Runner] = weakref.WeakSet()
"""Queues and runners, whose threads, locks and engine connections belong to the process that made them."""


def _after_fork() -> None:
    for owner in list(_PER_PROCESS):
        owner._forget_parent()


os.register_at_fork(after_in_child=_after_fork)
