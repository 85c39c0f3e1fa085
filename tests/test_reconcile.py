"""The one trigger contract: jobs and how they merge, the runner over a hand-written engine, and the
queue: few runs per burst, one run per model at a time, threads only while there is work, and a drain
that never cuts work off."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import pytest

from mlflow_sagemaker_registry.errors import GatewayError, UnsafePlanError
from mlflow_sagemaker_registry.executor import Failure, Report
from mlflow_sagemaker_registry.mapping.tags import MAX_TAG_VALUE, TAG_SYNC_STATUS
from mlflow_sagemaker_registry.planner import Plan
from mlflow_sagemaker_registry.triggers.reconcile import Job, Kind, ReconcileQueue, Runner

QUIET = 0.05

# -- jobs ---------------------------------------------------------------------------------------


def test_pushes_and_pulls_of_one_model_merge_and_a_push_absorbs_a_pull() -> None:
    push = Job("m", versions=frozenset({"1"}))
    pull = Job("m", Kind.PULL, frozenset({"2"}), pending=frozenset({"2"}))

    assert push.merge(Job("m", versions=frozenset({"2"}), pending=frozenset({"2"}))) == Job(
        "m", versions=frozenset({"1", "2"}), pending=frozenset({"2"})
    )
    assert (
        push.merge(pull) == pull.merge(push) == Job("m", Kind.PUSH, frozenset({"1", "2"}), frozenset({"2"}))
    )
    assert pull.merge(Job("m", Kind.PULL)) == pull
    assert Job().merge(Job()) == Job()


def test_jobs_of_other_models_and_retires_stay_apart() -> None:
    push = Job("m", versions=frozenset({"1"}))
    assert push.merge(Job("other")) is None
    assert push.merge(Job()) is None  # a full reconcile is its own entry
    assert push.merge(Job("m", Kind.RETIRE)) is None
    assert Job("m", Kind.RETIRE).merge(push) is None
    assert Job("m", Kind.RETIRE, frozenset({"1"})).merge(Job("m", Kind.RETIRE, frozenset({"2"}))) is None


def test_a_retire_names_its_model() -> None:
    with pytest.raises(ValueError, match="names its model"):
        Job(None, Kind.RETIRE)


@pytest.mark.parametrize(
    ("job", "text"),
    [
        (Job(), "every model"),
        (Job("churn", Kind.PULL), "model 'churn'"),
        (
            Job("churn", Kind.RETIRE, frozenset({"2", "1"})),
            "the packages of deleted version(s) 1, 2 of model 'churn'",
        ),
        (Job("churn", Kind.RETIRE), "the packages of every version of model 'churn'"),
    ],
)
def test_a_job_describes_itself_for_the_log(job: Job, text: str) -> None:
    assert job.describe() == text


# -- the runner ---------------------------------------------------------------------------------


class Engine:
    """A hand-written `Reconciler`: records calls; raises or reports failures for chosen models."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.errors: dict[str | None, Exception] = {}
        self.failing: set[str | None] = set()

    def push(self, names: Sequence[str] | None = None) -> tuple[Plan, Report]:
        return self._answer("push", names)

    def pull(self, names: Sequence[str] | None = None) -> tuple[Plan, Report]:
        return self._answer("pull", names)

    def retire(self, name: str, versions: Sequence[str] = ()) -> Report:
        self.calls.append(("retire", name, list(versions)))
        if name in self.errors:
            raise self.errors[name]
        return Report(packages_updated=[f"arn:{name}/{v}" for v in versions])

    def _answer(self, how: str, names: Sequence[str] | None) -> tuple[Plan, Report]:
        self.calls.append((how, None if names is None else list(names)))
        name = names[0] if names else None
        if name in self.errors:
            raise self.errors[name]
        failures = [Failure(str(name), "1", "UpdatePackage", "throttled")] if name in self.failing else []
        return Plan(), Report(failures=failures)


class Tags:
    """Version tags of an MLflow registry in which only `existing` versions exist."""

    def __init__(self, existing: set[tuple[str, str]] | None = None) -> None:
        self.existing = existing
        self.written: list[tuple[str, str, dict[str, str]]] = []

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        if self.existing is not None and (name, version) not in self.existing:
            raise GatewayError(f"model {name!r} version {version} does not exist")
        self.written.append((name, version, dict(tags)))


def mlsync_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("mlflow_sagemaker_registry")]


@pytest.mark.parametrize(
    ("job", "call"),
    [
        (Job("m", versions=frozenset({"1"})), ("push", ["m"])),
        (Job(), ("push", None)),
        (Job("m", Kind.PULL), ("pull", ["m"])),
        (Job(None, Kind.PULL), ("pull", None)),
        (Job("m", Kind.RETIRE, frozenset({"2", "10", "1"})), ("retire", "m", ["1", "10", "2"])),
        (Job("m", Kind.RETIRE), ("retire", "m", [])),
    ],
    ids=["push", "push-all", "pull", "pull-all", "retire", "retire-model"],
)
def test_each_kind_of_job_is_its_engine_call(
    job: Job, call: tuple[object, ...], caplog: pytest.LogCaptureFixture
) -> None:
    engine, tags = Engine(), Tags()
    caplog.set_level(logging.INFO)

    assert Runner(lambda: engine, tags).run(job) is True

    assert engine.calls == [call] and tags.written == []
    (record,) = mlsync_records(caplog)
    assert record.levelno == logging.INFO


def test_a_success_is_logged_once_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    runner = Runner(Engine, Tags())

    runner.run(Job("churn"))
    runner.run(Job("churn", Kind.RETIRE, frozenset({"1"})))

    assert [r.getMessage() for r in mlsync_records(caplog)] == [
        "reconciled model 'churn': 0 actions, 0 problems",
        "retired the packages of deleted version(s) 1 of model 'churn': 1 packages changed",
    ]


def test_failed_actions_are_summed_up_at_info_as_the_executor_logged_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine, tags = Engine(), Tags()
    engine.failing = {"throttled"}
    caplog.set_level(logging.INFO)

    assert Runner(lambda: engine, tags).run(Job("throttled", Kind.PULL, frozenset({"1"}))) is False

    (record,) = mlsync_records(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "pulling SageMaker's reviews of model 'throttled': 1 of 0 actions failed, "
        "first throttled v1 UpdatePackage: throttled"
    )
    assert tags.written == []  # the executor recorded it on the version already


@pytest.mark.parametrize("kind", [Kind.PUSH, Kind.PULL])
def test_a_failed_plan_is_logged_once_and_recorded_on_the_touched_versions_that_exist(
    kind: Kind, caplog: pytest.LogCaptureFixture
) -> None:
    engine, tags = Engine(), Tags(existing={("m", "1"), ("m", "3")})
    error = GatewayError("DescribeModelPackageGroup failed: Could not connect (EndpointConnectionError)")
    engine.errors = {"m": error}

    assert Runner(lambda: engine, tags).run(Job("m", kind, frozenset({"3", "2", "1"}))) is False

    status = {TAG_SYNC_STATUS: f"failed: {error}"}
    assert tags.written == [("m", "1", status), ("m", "3", status)]  # version 2 is gone
    (record,) = mlsync_records(caplog)
    assert record.levelno == logging.ERROR and not record.exc_info  # mlsync's errors say what to do
    doing = "reconciling" if kind is Kind.PUSH else "pulling SageMaker's reviews of"
    assert record.getMessage() == (
        f"mlsync: {doing} model 'm' failed: {error} (recorded on version(s) 1, 3; `mlsync push` repairs it)"
    )


def test_a_bug_is_logged_with_its_traceback_and_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine()
    engine.errors = {"m": KeyError("bug")}

    assert Runner(lambda: engine, Tags()).run(Job("m")) is False

    (record,) = mlsync_records(caplog)
    assert record.exc_info
    assert "reconciling model 'm' failed: 'bug' (`mlsync push` repairs it)" in record.getMessage()


def test_a_failed_full_reconcile_records_nothing(caplog: pytest.LogCaptureFixture) -> None:
    engine, tags = Engine(), Tags()
    engine.errors = {None: UnsafePlanError("the plan changes 12 of 20 approvals")}

    assert Runner(lambda: engine, tags).run(Job()) is False

    assert tags.written == []
    assert "reconciling every model failed: the plan changes 12 of 20 approvals" in caplog.text


def test_a_failed_retire_is_not_recorded_its_versions_are_gone(caplog: pytest.LogCaptureFixture) -> None:
    engine, tags = Engine(), Tags()
    engine.errors = {"m": GatewayError("UpdateModelPackage failed: throttled")}

    assert Runner(lambda: engine, tags).run(Job("m", Kind.RETIRE, frozenset({"1"}))) is False

    assert tags.written == []
    (record,) = mlsync_records(caplog)
    assert record.getMessage().endswith(
        "(the packages of the deleted versions were not rejected; reject them in SageMaker)"
    )


def test_a_long_failure_is_cut_to_mlflows_tag_limit() -> None:
    engine, tags = Engine(), Tags()
    engine.errors = {"m": GatewayError("x" * (2 * MAX_TAG_VALUE))}

    Runner(lambda: engine, tags).run(Job("m", versions=frozenset({"1"})))

    ((_, _, written),) = tags.written
    assert len(written[TAG_SYNC_STATUS]) == MAX_TAG_VALUE


def test_recording_that_fails_too_still_logs_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    engine, tags = Engine(), Tags(existing=set())  # MLflow is down as well
    engine.errors = {"m": GatewayError("down")}

    assert Runner(lambda: engine, tags).run(Job("m", versions=frozenset({"1"}))) is False

    (record,) = mlsync_records(caplog)
    assert record.getMessage().endswith("failed: down (`mlsync push` repairs it)")


def test_the_engine_is_built_at_the_first_job_and_again_only_after_a_failed_build() -> None:
    builds: list[str] = []
    engine, tags = Engine(), Tags()

    def connect() -> Engine:
        builds.append("build")
        if len(builds) == 1:
            raise GatewayError("no credentials")
        return engine

    runner = Runner(connect, tags)
    assert builds == []  # not at construction: the plugin builds it on its worker thread

    assert runner.run(Job("m", versions=frozenset({"1"}))) is False
    assert runner.run(Job("m")) and runner.run(Job("n"))

    assert builds == ["build", "build"]
    assert tags.written == [("m", "1", {TAG_SYNC_STATUS: "failed: no credentials"})]
    assert engine.calls == [("push", ["m"]), ("push", ["n"])]


def test_prepare_can_skip_a_job_or_fail_it() -> None:
    engine, tags = Engine(), Tags()

    def prepare(job: Job) -> bool:
        if job.model == "late":
            raise GatewayError("version 1 was still registering")
        return job.model != "prompt"

    runner = Runner(lambda: engine, tags, prepare=prepare)

    assert runner.run(Job("prompt")) is True
    assert runner.run(Job("late", versions=frozenset({"1"}))) is False
    assert runner.run(Job("model")) is True

    assert engine.calls == [("push", ["model"])]
    assert tags.written == [("late", "1", {TAG_SYNC_STATUS: "failed: version 1 was still registering"})]


# -- the queue ----------------------------------------------------------------------------------


class Recorder:
    """Work that records each job's model and, when told, blocks until released."""

    def __init__(self) -> None:
        self.runs: list[str | None] = []
        self.jobs: list[Job] = []
        self.active: set[str | None] = set()
        self.overlaps: list[str | None] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()

    def __call__(self, job: Job) -> None:
        with self._lock:
            if job.model in self.active:
                self.overlaps.append(job.model)
            self.active.add(job.model)
        self.started.set()
        self.release.wait(10)
        with self._lock:
            self.active.discard(job.model)
            self.runs.append(job.model)
            self.jobs.append(job)


@contextmanager
def queue(
    work: Callable[[Job], object], *, workers: int = 2, quiet: float = QUIET, max_wait: float = 1.0
) -> Iterator[ReconcileQueue]:
    running = ReconcileQueue(work, workers=workers, quiet=quiet, max_wait=max_wait)
    try:
        yield running
    finally:
        running.close(timeout=0)


def idle(running: ReconcileQueue, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        stats = running.stats()
        if stats["waiting"] == 0 and stats["running"] == 0:
            return
        assert time.monotonic() < deadline, stats
        time.sleep(0.01)


def mlsync_threads(prefix: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def test_a_burst_of_submissions_is_one_run() -> None:
    work = Recorder()
    with queue(work) as running:
        for n in range(100):
            running.submit(Job("churn", versions=frozenset({str(n % 3)})))
        time.sleep(QUIET * 3)
        idle(running)
    assert work.jobs == [Job("churn", versions=frozenset({"0", "1", "2"}))]


def test_none_is_a_key_like_any_other() -> None:
    # None is how the receiver asks for a full reconcile; it must not stop a worker.
    work = Recorder()
    with queue(work, workers=1) as running:
        running.submit(Job())
        time.sleep(QUIET * 3)
        idle(running)
        running.submit(Job("churn"))
        time.sleep(QUIET * 3)
        idle(running)
    assert work.runs == [None, "churn"]


def test_a_model_submitted_while_it_runs_runs_once_more_afterwards() -> None:
    work = Recorder()
    work.release.clear()
    with queue(work, workers=3) as running:
        running.submit(Job("churn"))
        assert work.started.wait(5)
        for _ in range(10):
            running.submit(Job("churn"))
        time.sleep(QUIET * 3)  # free workers must not start the model while it runs
        assert work.overlaps == [] and running.stats()["running"] == 1
        work.release.set()
        time.sleep(QUIET * 3)
        idle(running)
    assert work.runs == ["churn", "churn"] and work.overlaps == []


def test_a_retire_and_a_push_of_one_model_run_in_order_one_at_a_time() -> None:
    work = Recorder()
    with queue(work, workers=2, quiet=0, max_wait=0) as running:
        work.release.clear()
        running.submit(Job("m", Kind.RETIRE, frozenset({"1"})))
        running.submit(Job("m"))
        running.submit(Job("m", versions=frozenset({"2"})))
        assert work.started.wait(5)
        time.sleep(QUIET)
        assert running.stats() == {"waiting": 1, "running": 1, "runs": 0}
        work.release.set()
        idle(running)
    assert work.jobs == [Job("m", Kind.RETIRE, frozenset({"1"})), Job("m", versions=frozenset({"2"}))]
    assert work.overlaps == []


def test_different_models_run_in_parallel() -> None:
    both = threading.Barrier(2, timeout=5)
    met: list[int] = []

    def work(_job: Job) -> None:
        met.append(both.wait())  # raises BrokenBarrierError unless the other model runs meanwhile

    with queue(work, workers=2) as running:
        running.submit(Job("a"))
        running.submit(Job("b"))
        time.sleep(QUIET * 3)
        idle(running)
    assert sorted(met) == [0, 1]


def test_a_model_changed_without_pause_still_runs_every_max_wait() -> None:
    work = Recorder()
    with queue(work, quiet=0.1, max_wait=0.2) as running:
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            running.submit(Job("churn"))
            time.sleep(0.01)
        time.sleep(0.3)
        idle(running)
    # About one run per max_wait during the burst, and one after it.
    assert 3 <= len(work.runs) <= 1.0 / 0.2 + 2


def test_threads_start_on_demand_never_exceed_workers_and_end_when_idle() -> None:
    work = Recorder()
    work.release.clear()
    running = ReconcileQueue(work, workers=2, quiet=0, max_wait=0, name="mlsync-on-demand")
    assert mlsync_threads("mlsync-on-demand") == [] and running.flush(0)

    for model in "abcd":
        running.submit(Job(model))
    assert work.started.wait(5)
    time.sleep(QUIET)
    assert len(mlsync_threads("mlsync-on-demand")) == 2 and not running.flush(0)
    work.release.set()

    assert running.flush(5)
    assert sorted(map(str, work.runs)) == ["a", "b", "c", "d"]
    deadline = time.monotonic() + 5
    while mlsync_threads("mlsync-on-demand"):  # flush returned: the threads are on their way out
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_flush_waits_for_queued_work_and_keeps_the_queue_open() -> None:
    work = Recorder()
    running = ReconcileQueue(work, workers=1, quiet=QUIET, max_wait=QUIET)
    running.submit(Job("a"))

    assert running.flush(5) and work.runs == ["a"]
    assert running.submit(Job("b")) and running.flush(5)
    assert work.runs == ["a", "b"]


def test_close_runs_what_is_queued_at_once_and_returns_nothing_left() -> None:
    work = Recorder()
    running = ReconcileQueue(work, workers=1, quiet=60, max_wait=60)
    running.submit(Job("a"))
    running.submit(Job("b"))

    started = time.monotonic()
    assert running.close(timeout=5) == []

    assert sorted(map(str, work.runs)) == ["a", "b"]
    assert time.monotonic() - started < 5  # the quiet period no longer applies


def test_close_waits_for_running_work_and_hands_back_what_never_started() -> None:
    work = Recorder()
    work.release.clear()
    running = ReconcileQueue(work, workers=1, quiet=0, max_wait=0)
    running.submit(Job("a"))
    assert work.started.wait(5)
    running.submit(Job("b", versions=frozenset({"1"})))
    closed: list[list[Job]] = []
    closer = threading.Thread(target=lambda: closed.append(running.close(timeout=0)))

    closer.start()
    time.sleep(0.1)
    assert closer.is_alive()  # "a" is running: close must not return, and nothing may cut it off
    work.release.set()
    closer.join(5)

    assert closed == [[Job("b", versions=frozenset({"1"}))]] and work.runs == ["a"]


def test_submit_after_close_is_refused() -> None:
    running = ReconcileQueue(Recorder(), workers=1, quiet=0, max_wait=0)
    running.close(timeout=1)
    assert running.submit(Job("a")) is False


def test_a_failing_run_is_logged_and_the_worker_carries_on(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[str | None] = []

    def work(job: Job) -> None:
        runs.append(job.model)
        if job.model == "bad":
            raise RuntimeError("boom")

    with queue(work, workers=1) as running:
        running.submit(Job("bad"))
        time.sleep(QUIET * 3)
        idle(running)
        running.submit(Job("good"))
        time.sleep(QUIET * 3)
        idle(running)
    assert runs == ["bad", "good"]
    assert "unexpected error while working on model 'bad'" in caplog.text
    assert running.stats()["runs"] == 2
