"""Soak: `mlsync serve` under sustained deliveries, and the plugin worker over many registrations.

Whether the long-running parts of mlsync stay flat over time: a leak of memory, file descriptors or
threads shows only after thousands of deliveries or registrations, never in a unit test.

1. **The receiver.** The SageMaker emulator and `mlsync serve` run as loopback processes over a SQLite
   MLflow registry with a few registered models. For `--duration` seconds, at `--rate` per second, this
   process posts the signed `model_version_alias.created` delivery MLflow posts when a model's
   `champion` alias is set, alternately signed with the current and the previous secret (as during a
   rotation, docs/webhooks.md), over one keep-alive connection. The deliveries come in runs per model,
   the first of each run after moving that model's alias in MLflow (`--moves` per second, see
   `MOVES_PER_SECOND`), the rest reporting it where it is. Every second, until the receiver has
   settled and rested 2 s, it samples the receiver's RSS, open file descriptors (`/proc/<pid>/fd`) and
   threads (`/proc/<pid>/status`). At the end: every delivery answered 2xx, the receiver settled with
   no failed reconcile, the champion of each model Approved in SageMaker and nothing else, and a fresh
   plan with no action left.
2. **The plugin.** In this process, with `MLFLOW_REGISTRY_URI=mlsync+sqlite:///...`, `--registrations`
   `mlflow.register_model` calls of one logged tiny model, round-robin over `--plugin-models` models,
   sampling this process the same way; then `wait_for_mirrors`, and a check that each version has
   exactly one package (its `sagemaker.model_package_arn` tag names it, and the group holds no other).

Prints figures (start, halfway, end and max of each resource) and the problems found; asserts nothing.
tests/test_soak.py runs a short version of both and asserts on the same results. Linux only (`/proc`).
Loopback only: MLflow's usage telemetry is switched off (`NO_TELEMETRY`) here and in the receiver.

    .venv/bin/python benchmarks/bench_soak.py [--duration S] [--rate N] [--registrations N]
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true"}
"""MLflow 3 sends usage telemetry over the internet, starting at `import mlflow`, unless this is set; the
soak talks to loopback only, so it is set before mlflow is imported here and in the receiver's
environment."""
os.environ.update(NO_TELEMETRY)

import boto3  # noqa: E402
import mlflow  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from mlflow_sagemaker_registry import ApprovalStatus, connect, load_settings  # noqa: E402
from mlflow_sagemaker_registry.config import DEFAULT_ALIASES, PLUGIN_SCHEME_PREFIX  # noqa: E402
from mlflow_sagemaker_registry.emulator import EmulatorProcess  # noqa: E402
from mlflow_sagemaker_registry.mapping.identity import KEY_VERSION, group_name  # noqa: E402
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN  # noqa: E402
from mlflow_sagemaker_registry.triggers.plugin import wait_for_mirrors  # noqa: E402
from mlflow_sagemaker_registry.triggers.webhook.process import ReceiverProcess  # noqa: E402
from mlflow_sagemaker_registry.triggers.webhook.signature import signed_headers  # noqa: E402

SECRET = "soak-secret"
PREVIOUS_SECRET = "soak-previous-secret"
BUCKET = "soak"
APPROVED = ApprovalStatus.APPROVED.value
ALIAS = next(alias for alias, status in DEFAULT_ALIASES.items() if status is ApprovalStatus.APPROVED)
"""The alias the default approval rules map to Approved ("champion", docs/mapping.md)."""
AWS = {
    "AWS_ACCESS_KEY_ID": "soak",
    "AWS_SECRET_ACCESS_KEY": "soak",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
SETTLE_TIMEOUT = 300.0
"""Seconds the receiver (or the plugin) may take to finish its reconciles after the load stops."""
MOVES_PER_SECOND = 10.0
"""Alias moves made in MLflow per second, at most one per delivery. An MLflow write on SQLite takes
about 11 ms of this process, and more while the receiver reconciles on the same file: one per delivery
would hold the deliveries below 50/s on a 2-core machine, and the soak is of the receiver."""
REST_SECONDS = 2.0
"""Seconds still sampled once the work is done, so that the end figures are of the process at rest, not
of worker threads still on their way out."""


# -- resources ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One reading of a process: resident memory (KiB), open file descriptors, threads."""

    rss_kib: int
    fds: int
    threads: int


def sample(pid: int) -> Sample:
    """Read `/proc/<pid>` (the kernel's own counts: a Python-level count would miss native threads)."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return Sample(
        rss_kib=int(status["VmRSS"].split()[0]),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(status["Threads"]),
    )


@dataclass
class Samples:
    """A process's samples, oldest first."""

    taken: list[Sample] = field(default_factory=list)

    def figures(self, name: str) -> tuple[int, int, int]:
        """(start, end, max) of one `Sample` field."""
        values = [getattr(s, name) for s in self.taken]
        return values[0], values[-1], max(values)

    def halfway(self, name: str) -> int:
        """One `Sample` field in the middle sample: growth in the second half, unlike warm-up in the
        first, is what a leak looks like."""
        return int(getattr(self.taken[len(self.taken) // 2], name))

    def lines(self) -> list[str]:
        """One line per resource: start, halfway, end and max."""
        rss = [kib / 1024 for kib in (*self.figures("rss_kib"), self.halfway("rss_kib"))]
        fds, threads = self.figures("fds"), self.figures("threads")
        return [
            f"  RSS      start {rss[0]:7.1f} MiB  halfway {rss[3]:7.1f} MiB  end {rss[1]:7.1f} MiB  "
            f"max {rss[2]:7.1f} MiB",
            f"  fds      start {fds[0]:7d}      halfway {self.halfway('fds'):7d}      end {fds[1]:7d}      "
            f"max {fds[2]:7d}",
            f"  threads  start {threads[0]:7d}      halfway {self.halfway('threads'):7d}      "
            f"end {threads[1]:7d}      max {threads[2]:7d}",
            f"  ({len(self.taken)} samples, one a second)",
        ]


@contextmanager
def sampling(pid: int, interval: float = 1.0) -> Iterator[Samples]:
    """Sample `pid` now, every `interval` seconds while the block runs, and once more at its end."""
    samples = Samples([sample(pid)])
    done = threading.Event()

    def loop() -> None:
        while not done.wait(interval):
            samples.taken.append(sample(pid))

    sampler = threading.Thread(target=loop, name="soak-sampler", daemon=True)
    sampler.start()
    try:
        yield samples
    finally:
        done.set()
        sampler.join()
        samples.taken.append(sample(pid))


def child_pid(command: Sequence[str]) -> int:
    """The pid of this process's child running exactly `command` (ReceiverProcess names no pid)."""
    children = [
        int(pid)
        for task in Path("/proc/self/task").iterdir()
        for pid in (task / "children").read_text().split()
    ]
    for pid in children:
        if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1] == [a.encode() for a in command]:
            return pid
    raise RuntimeError(f"no child runs {' '.join(command)}")


# -- shared set-up --------------------------------------------------------------------------------


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` in os.environ for the block (the plugin and `connect` read it), then restore it."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def registry(tracking_uri: str, registry_uri: str) -> Iterator[None]:
    """MLflow's fluent API (`start_run`, `register_model`) on these URIs for the block, then as before.

    The registry through `MLFLOW_REGISTRY_URI`, as a user would set it: `mlflow.set_registry_uri` has no
    way back to "follow the tracking URI".
    """
    before = mlflow.get_tracking_uri()
    with environment({"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": registry_uri}):
        mlflow.set_tracking_uri(tracking_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(before)


@dataclass(frozen=True)
class Setup:
    """What both soaks run against: a directory, the emulator, a SQLite registry, one logged model."""

    root: Path
    emulator: EmulatorProcess
    database: str
    model_uri: str

    @property
    def env(self) -> dict[str, str]:
        """The environment that points boto3 at the emulator (and at no AWS config file) and mlsync at
        the bucket."""
        return {
            **AWS,
            "AWS_ENDPOINT_URL": self.emulator.url,
            "AWS_CONFIG_FILE": str(self.root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.root / "no-aws-credentials"),
            "MLSYNC_S3_PREFIX": f"s3://{BUCKET}/mlsync",
        }

    def aws(self, service: str) -> Any:
        """A boto3 client of the emulator (boto3 reads the endpoint and credentials from `env`)."""
        with environment(self.env):
            return boto3.client(service)  # type: ignore[call-overload]


def set_up(root: Path, emulator: EmulatorProcess) -> Setup:
    """A new registry in `root` holding one tiny logged model (registering it, not logging it, is what
    the soaks repeat), and the bucket. MLflow puts the artifacts under the working directory."""
    database = f"sqlite:///{root / 'mlflow.db'}"
    with registry(database, database), mlflow.start_run():
        model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    setup = Setup(root, emulator, database, str(info.model_uri))
    setup.aws("s3").create_bucket(Bucket=BUCKET)
    return setup


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def unplanned(env: Mapping[str, str], models: Sequence[str], flags: Mapping[str, str]) -> list[str]:
    """The actions a fresh plan of `models` still finds (none when SageMaker holds what MLflow says), as
    mlsync with `env` and `flags` (the URIs the mirroring side used, so the source identity is its own)."""
    with environment(env):
        engine = connect(load_settings(flags, env=env))
        plan = engine.plan(list(models))
    return [str(action) for action in plan.actions]


# -- the receiver ---------------------------------------------------------------------------------


@dataclass
class ServeSoak:
    """What the receiver soak measured and found."""

    posted: int
    moved: int
    seconds: float
    answers: Counter[int]
    max_lag: float
    settled_after: float
    health: dict[str, Any]
    samples: Samples
    problems: list[str]

    def lines(self) -> list[str]:
        reconciles = self.health["reconciles"]
        return [
            f"mlsync serve: {self.posted} deliveries in {self.seconds:.1f} s "
            f"({self.posted / self.seconds:.1f}/s, the most behind schedule {self.max_lag * 1000:.0f} ms), "
            f"{self.moved} alias moves in MLflow",
            f"  answers {dict(sorted(self.answers.items()))}; receiver counts {self.health['deliveries']}",
            f"  reconciles {reconciles['runs']} ({reconciles.get('succeeded', 0)} succeeded, "
            f"{reconciles.get('failed', 0)} failed), settled {self.settled_after:.1f} s after the last "
            "delivery",
            *self.samples.lines(),
            "  final state: " + ("right" if not self.problems else "; ".join(self.problems)),
        ]


def alias_delivery(model: str, version: str, n: int) -> tuple[bytes, dict[str, str]]:
    """The delivery MLflow posts for `model`'s alias moved to `version`; even `n` signed with the
    current secret, odd with the previous one."""
    data = {"name": model, "alias": ALIAS, "version": version}
    body = json.dumps({"entity": "model_version_alias", "action": "created", "timestamp": "", "data": data})
    payload = body.encode()
    secret = SECRET if n % 2 == 0 else PREVIOUS_SECRET
    headers = signed_headers(secret, payload, str(uuid.uuid4()), str(int(time.time())))
    return payload, {"Content-Type": "application/json", **headers}


def package_arns(sagemaker: Any, model: str) -> list[str]:
    """The ARNs of every package in the model's group (every page)."""
    pages = sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group_name(model))
    return [summary["ModelPackageArn"] for page in pages for summary in page["ModelPackageSummaryList"]]


def approvals(sagemaker: Any, model: str) -> dict[str, str]:
    """MLflow version -> approval of its package, for every package of the model's group."""
    described = [
        sagemaker.describe_model_package(ModelPackageName=arn) for arn in package_arns(sagemaker, model)
    ]
    return {p["CustomerMetadataProperties"][KEY_VERSION]: p["ModelApprovalStatus"] for p in described}


def soak_serve(
    setup: Setup,
    *,
    duration: float,
    rate: float,
    moves: float = MOVES_PER_SECOND,
    models: int = 4,
    versions: int = 3,
) -> ServeSoak:
    """Run the receiver soak (see the module docstring); the figures and the problems."""
    database = setup.database
    names = [f"soak-serve-{n}" for n in range(models)]
    with registry(database, database):
        for _ in range(versions):
            for name in names:
                mlflow.register_model(setup.model_uri, name)
    client = mlflow.MlflowClient(database, database)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_", "MLSYNC_"))},
        **setup.env,
        "MLFLOW_TRACKING_URI": database,
        "MLSYNC_WEBHOOK_SECRET": SECRET,
        "MLSYNC_WEBHOOK_PREVIOUS_SECRETS": PREVIOUS_SECRET,
        **NO_TELEMETRY,
    }
    with ReceiverProcess(env, log_path=setup.root / "serve.log") as receiver:

        def idle() -> bool:
            queue = receiver.health()["reconciles"]
            return bool(queue["runs"] >= 1 and queue["waiting"] == 0 and queue["running"] == 0)

        wait_for(idle, SETTLE_TIMEOUT)  # the startup reconcile mirrors the models
        parts = urlsplit(receiver.url)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        answers: Counter[int] = Counter()
        champions: dict[str, str] = {}
        count, max_lag = int(duration * rate), 0.0
        every = max(1, round(rate / moves))
        with sampling(child_pid(receiver.command)) as samples:
            started = time.monotonic()
            for n in range(count):
                lag = time.monotonic() - (started + n / rate)
                if lag < 0:
                    time.sleep(-lag)
                max_lag = max(max_lag, lag)
                move = n // every  # deliveries come in runs of `every` per model, the first a move
                name, version = names[move % models], str(1 + (move // models) % versions)
                if n % every == 0:
                    client.set_registered_model_alias(name, ALIAS, version)
                    champions[name] = version
                payload, headers = alias_delivery(name, version, n)
                try:
                    connection.request("POST", "/webhook", body=payload, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    answers[response.status] += 1
                except (OSError, http.client.HTTPException):  # a lost delivery: counted, not retried
                    answers[0] += 1
                    connection.close()
            seconds = time.monotonic() - started
            wait_for(idle, SETTLE_TIMEOUT)
            settled_after = time.monotonic() - started - seconds
            time.sleep(REST_SECONDS)
        connection.close()
        health = receiver.health()

    problems = serve_problems(count, answers, health)
    sagemaker = setup.aws("sagemaker")
    for name in names:
        found = approvals(sagemaker, name)
        approved = sorted(version for version, status in found.items() if status == APPROVED)
        if len(found) != versions or approved != [champions.get(name)]:
            problems.append(f"{name}: champion is v{champions.get(name)}, SageMaker holds {found}")
    problems += unplanned(env, names, {"tracking_uri": database, "registry_uri": database})
    moved = len(range(0, count, every))
    return ServeSoak(count, moved, seconds, answers, max_lag, settled_after, health, samples, problems)


def serve_problems(posted: int, answers: Counter[int], health: Mapping[str, Any]) -> list[str]:
    """What went wrong with the deliveries themselves: a non-2xx answer, a count that does not add up,
    a reconcile that failed or never ran."""
    problems = []
    not_acked = {status: n for status, n in answers.items() if not 200 <= status < 300}
    if not_acked:
        problems.append(f"deliveries not acknowledged with 2xx (0: no answer): {not_acked}")
    deliveries, reconciles = health["deliveries"], health["reconciles"]
    if deliveries.get("accepted", 0) != posted:
        problems.append(f"{posted} posted, {deliveries.get('accepted', 0)} accepted")
    if deliveries.get("previous_secret", 0) != posted // 2:
        problems.append(
            f"{posted // 2} signed with the previous secret, {deliveries.get('previous_secret', 0)} seen"
        )
    if reconciles["waiting"] or reconciles["running"]:
        problems.append(f"the receiver did not settle: {reconciles}")
    if reconciles.get("failed", 0):
        problems.append(f"{reconciles['failed']} reconciles failed")
    return problems


# -- the plugin -----------------------------------------------------------------------------------


@dataclass
class PluginSoak:
    """What the plugin soak measured and found."""

    registrations: int
    seconds: float
    mirrored_after: float
    reconciles: int
    samples: Samples
    problems: list[str]

    def lines(self) -> list[str]:
        return [
            f"plugin: {self.registrations} mlflow.register_model calls in {self.seconds:.1f} s "
            f"({self.registrations / self.seconds:.1f}/s), all mirrored {self.mirrored_after:.1f} s after "
            f"the last, by {self.reconciles} reconciles",
            *self.samples.lines(),
            "  final state: " + ("right" if not self.problems else "; ".join(self.problems)),
        ]


def soak_plugin(setup: Setup, *, registrations: int, models: int = 5) -> PluginSoak:
    """Run the plugin soak (see the module docstring) in this process; the figures and the problems."""
    database = setup.database
    names = [f"soak-plugin-{n}" for n in range(models)]
    env = setup.env
    plugin = f"{PLUGIN_SCHEME_PREFIX}{database}"  # MLFLOW_REGISTRY_URI=mlsync+sqlite:///...
    mark = len(setup.emulator.calls())
    with environment(env), registry(database, plugin), sampling(os.getpid()) as samples:
        started = time.monotonic()
        for n in range(registrations):
            mlflow.register_model(setup.model_uri, names[n % models])
        seconds = time.monotonic() - started
        mirrored = wait_for_mirrors(SETTLE_TIMEOUT)
        mirrored_after = time.monotonic() - started - seconds
        time.sleep(REST_SECONDS)
        # At rest: a mirror's own tag writes may have queued one more (no-op) reconcile meanwhile, whose
        # pools are gone once it ends; and each MLflow artifact download leaves its repository's idle
        # thread pool alive until the garbage collector frees the repository (a reference cycle). So the
        # end sample follows both, and shows what is kept, not what is still busy or not yet collected
        # (the max column counts those).
        wait_for_mirrors(SETTLE_TIMEOUT)
        gc.collect()
    # Each reconcile of a model describes its group once (as tests/test_webhook_e2e.py counts them).
    groups = {group_name(name) for name in names}
    reconciles = sum(
        call.operation == "DescribeModelPackageGroup" and call.params.get("ModelPackageGroupName") in groups
        for call in setup.emulator.calls()[mark:]
    )
    problems = (
        [] if mirrored else [f"mirrors still queued {SETTLE_TIMEOUT:.0f} s after the last registration"]
    )
    sagemaker = setup.aws("sagemaker")
    client = mlflow.MlflowClient(database, database)
    for index, name in enumerate(names):
        expected = len(range(index, registrations, models))  # registration n went to names[n % models]
        tagged = [v.tags.get(TAG_PACKAGE_ARN) for v in client.search_model_versions(f"name = '{name}'")]
        listed = package_arns(sagemaker, name)
        if len(tagged) != expected or sorted(map(str, tagged)) != sorted(listed):
            problems.append(
                f"{name}: {expected} registered, {len(tagged)} versions ({tagged.count(None)} without a "
                f"package), {len(listed)} packages"
            )
    problems += unplanned(env, names, {"tracking_uri": database, "registry_uri": database})
    return PluginSoak(registrations, seconds, mirrored_after, reconciles, samples, problems)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of deliveries (default 120)")
    parser.add_argument("--rate", type=float, default=50.0, help="deliveries per second (default 50)")
    parser.add_argument(
        "--moves", type=float, default=MOVES_PER_SECOND, help="alias moves in MLflow per second (default 10)"
    )
    parser.add_argument("--registrations", type=int, default=1000, help="plugin registrations (default 1000)")
    parser.add_argument("--plugin-models", type=int, default=5, help="models they go to (default 5)")
    parser.add_argument("--skip", choices=["serve", "plugin"], help="leave out one part")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmulatorProcess() as emulator:
        os.chdir(tmp)  # MLflow's artifacts go beside the database
        setup = set_up(Path(tmp), emulator)
        if options.skip != "serve":
            served = soak_serve(setup, duration=options.duration, rate=options.rate, moves=options.moves)
            print("\n".join(served.lines()))
        if options.skip != "plugin":
            mirrored = soak_plugin(setup, registrations=options.registrations, models=options.plugin_models)
            print("\n".join(mirrored.lines()))


if __name__ == "__main__":
    main()
