"""The fault suite: mlsync's promises hold whatever SageMaker does (docs/operations.md).

The promises: exactly one package per MLflow version (by the identity in its metadata), every version
linked (`sagemaker.model_package_arn`, `mlsync.sync_status` = `synced ...`), approvals as the mapping
says, MLflow untouched but for mlsync's own tags, and a push after repair that writes nothing anywhere.
SageMaker misbehaves through the emulator's fault knobs (docs/emulator.md): seeded error rates, answers
lost after the change was made, a group IAM denies, an answer held back while the pushing process is
killed. MLflow is a real SQLite registry of real tiny sklearn versions; `mlsync push` runs in process,
or as a child process where it must be killed or run three at once.
"""

from __future__ import annotations

import math
import sqlite3
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import mlflow
import numpy as np
import pytest
from click.testing import CliRunner
from e2e_support import (
    building_registry,
    calls_since,
    every_package,
    json_blocks,
    mlflow_snapshot,
    mlsync,
    mlsync_child,
    read_s3_json,
    use_registry,
    writes,
)
from mlflow.cli import gc
from mlflow_models import log_version
from sklearn.linear_model import LogisticRegression

from mlflow_sagemaker_registry.emulator import WRITE_OPERATIONS, Call, EmulatorProcess
from mlflow_sagemaker_registry.emulator.faults import DELAYED, ERROR, LOST
from mlflow_sagemaker_registry.mapping.identity import group_name, identity_of
from mlflow_sagemaker_registry.mapping.tags import (
    SYNCED,
    TAG_APPROVED_AT,
    TAG_PACKAGE_ARN,
    TAG_SYNC_STATUS,
    TAG_SYNCED_APPROVAL,
)
from mlflow_sagemaker_registry.triggers.cli.shell import EXIT_FAILED, EXIT_PROBLEMS

pytestmark = pytest.mark.e2e

BUCKET = "mlsync-faults"
APPROVED, REJECTED, PENDING = "Approved", "Rejected", "PendingManualApproval"
EXPECTED = {
    ("fraud", "1"): APPROVED,  # stage Production
    ("fraud", "2"): REJECTED,  # stage Archived
    ("fraud", "3"): PENDING,
    ("churn model", "1"): PENDING,
    ("churn model", "2"): APPROVED,  # alias champion
    ("risk.score", "1"): REJECTED,  # tag sagemaker.approval=rejected
}
"""The shared registry's versions and the approval the default mapping gives each."""
MAX_RUNS = 10
"""How many pushes a registry under random faults may take to converge."""
ARRIVAL = 60.0
"""Seconds a test waits for a child push to reach the call it is to be killed at."""
HELD = 2 * ARRIVAL
"""Seconds a delayed answer is held: longer than a test waits, so only a kill or a clear ends it."""


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess() as process:
        yield process


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The registry of `EXPECTED`, built once; each test that uses it works on a copy (`registry`)."""
    root = tmp_path_factory.mktemp("faults-template")
    # the experiment's artifact root, ./mlruns, is made absolute here: the copies share it
    with building_registry(root, f"faults-{root.name}"):
        for seed, (model, _) in enumerate(EXPECTED):
            log_version(model, seed=seed)
        client = mlflow.MlflowClient()
        client.transition_model_version_stage("fraud", "1", "Production")
        client.transition_model_version_stage("fraud", "2", "Archived")
        client.set_registered_model_alias("churn model", "champion", "2")
        client.set_model_version_tag("risk.score", "1", "sagemaker.approval", "rejected")
        yield root / "mlflow.db"


@pytest.fixture
def registry(
    template: Path, emulator: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A copy of the template registry, an empty SageMaker without faults, and the user's environment."""
    emulator.reset()
    with sqlite3.connect(template) as source, sqlite3.connect(tmp_path / "mlflow.db") as copy:
        source.backup(copy)
    return use_registry(monkeypatch, emulator.url, tmp_path, BUCKET)


@pytest.fixture
def empty(
    mlflow_uri: str, emulator: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """An empty registry to fill, an empty SageMaker without faults, and the user's environment."""
    emulator.reset()
    values = use_registry(monkeypatch, emulator.url, tmp_path, BUCKET)
    mlflow.set_experiment("faults")
    return values


# -- what every test checks -----------------------------------------------------------------------


def assert_promises(
    emulator: EmulatorProcess, expected: Mapping[tuple[str, str], str], *, exit_code: int = 0
) -> None:
    """One package per expected version and none else, each version linked to it, each approval as
    expected; then a push that exits `exit_code` and writes nothing anywhere. Faults are cleared first:
    what is checked is the state the pushes left."""
    emulator.clear_faults()
    described = every_package()
    identities = [identity_of(package.get("CustomerMetadataProperties", {})) for package in described]
    assert None not in identities, "a package without mlsync's identity"
    known = [identity for identity in identities if identity is not None]
    # each expected version exactly once, and nothing else
    assert Counter(identity[1:] for identity in known) == Counter(expected.keys())
    assert len({source for source, _, _ in known}) == 1
    for (model, version), package in by_version(described).items():
        tags = version_tags(model, version)
        assert tags.get(TAG_PACKAGE_ARN) == package["ModelPackageArn"], (model, version)
        assert tags.get(TAG_SYNC_STATUS, "").startswith(SYNCED), (model, version, tags.get(TAG_SYNC_STATUS))
        assert package["ModelApprovalStatus"] == expected[model, version], (model, version)
        if package["ModelApprovalStatus"] == APPROVED:  # what `mlsync rollback` goes back by
            assert TAG_APPROVED_AT in tags, (model, version)
    assert_no_op(emulator, exit_code)


def assert_no_op(emulator: EmulatorProcess, exit_code: int = 0) -> None:
    """A push exits `exit_code` and writes nothing: not to SageMaker, MLflow or S3."""
    before, objects, mark = mlflow_snapshot(), s3_objects(), len(emulator.calls())
    result = mlsync("push", "--all")
    assert result.exit_code == exit_code, result.output
    assert writes(calls_since(emulator, mark)) == []
    assert mlflow_snapshot() == before
    assert s3_objects() == objects


def s3_objects() -> dict[str, tuple[str, datetime]]:
    """Every object of the bucket with its ETag and modification time: a rewrite changes the time."""
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {
        item["Key"]: (item["ETag"], item["LastModified"])
        for page in pages
        for item in page.get("Contents", [])
    }


def faulted(emulator: EmulatorProcess, kind: str) -> list[Call]:
    """The calls the emulator answered with an injected fault of `kind`."""
    return [call for call in emulator.calls() if kind in call.faults]


def by_version(described: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Packages by the (model, version) of their metadata identity."""
    found = {}
    for package in described:
        identity = identity_of(package["CustomerMetadataProperties"])
        assert identity is not None, package["ModelPackageArn"]
        found[identity[1:]] = package
    return found


def version_tags(model: str, version: str) -> dict[str, str]:
    return dict(mlflow.MlflowClient().get_model_version(model, version).tags)


# -- SageMaker failing at random --------------------------------------------------------------------


def push_until_done() -> list[int]:
    """`mlsync push --all` until it exits 0, at most `MAX_RUNS` times; the exit codes."""
    exits: list[int] = []
    while len(exits) < MAX_RUNS and (not exits or exits[-1] != 0):
        exits.append(mlsync("push", "--all").exit_code)
    assert exits[-1] == 0, f"no push succeeded in {MAX_RUNS}: exit codes {exits}"
    assert set(exits) <= {0, EXIT_FAILED}, exits
    return exits


def test_random_faults_converge_to_the_promises(
    registry: dict[str, str], emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 % of SageMaker requests fail (throttling or 500) and 15 % of the writes left are applied with
    the answer lost, while every version is created, then while approvals move. Two attempts per call
    (instead of 10) let some calls fail past botocore's retries, so the repair by the next push is
    exercised, not only the retries."""
    monkeypatch.setenv("MLSYNC_MAX_ATTEMPTS", "2")
    emulator.fault_rate("*", 0.2, seed=20)
    emulator.lose_answers(WRITE_OPERATIONS, 0.15, seed=15)
    push_until_done()
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("churn model", "champion", "1")
    client.transition_model_version_stage("fraud", "3", "Production")
    push_until_done()
    assert faulted(emulator, ERROR) and faulted(emulator, LOST)
    moved = {("churn model", "1"): APPROVED, ("churn model", "2"): REJECTED, ("fraud", "3"): APPROVED}
    assert_promises(emulator, {**EXPECTED, **moved})


def test_every_write_answered_as_lost_once_makes_no_duplicate(
    registry: dict[str, str], emulator: EmulatorProcess
) -> None:
    """Each write is applied and answered with a 500; botocore's retry (the same request, the same
    ClientToken) then gets SageMaker's own answer: a replayed create, a group that already exists."""
    emulator.lose_answers(WRITE_OPERATIONS, 1.0, retries_pass=True)
    result = mlsync("push", "--all")
    assert result.exit_code == 0, result.output
    # Creates of different models interleave (a push works on several at once); per ClientToken, each
    # was answered as lost once, then replayed by botocore with the very same request.
    by_token: dict[str, list[Call]] = {}
    for call in emulator.calls_to("CreateModelPackage"):
        by_token.setdefault(call.params["ClientToken"], []).append(call)
    assert len(by_token) == len(EXPECTED)
    for lost, replay in by_token.values():
        assert (lost.faults, replay.faults) == ((LOST,), ())
        assert lost.params == replay.params
    assert_promises(emulator, EXPECTED)


def test_creates_never_answered_are_adopted_by_the_next_push(
    registry: dict[str, str], emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No retries and every create's answer lost: SageMaker holds every package, MLflow knows of none.
    The next push finds them by their metadata identity and links them, creating nothing."""
    monkeypatch.setenv("MLSYNC_MAX_ATTEMPTS", "1")
    emulator.lose_answers("CreateModelPackage")
    first = mlsync("push", "--all")
    assert first.exit_code == EXIT_FAILED, first.output
    assert len(every_package()) == len(EXPECTED)
    for model, version in EXPECTED:
        tags = version_tags(model, version)
        assert TAG_PACKAGE_ARN not in tags
        assert tags[TAG_SYNC_STATUS].startswith("failed: ") and "InternalFailure" in tags[TAG_SYNC_STATUS]
    emulator.clear_faults()
    mark = len(emulator.calls())
    repair = mlsync("push", "--all")
    assert repair.exit_code == 0, repair.output
    assert "CreateModelPackage" not in writes(calls_since(emulator, mark))
    assert_promises(emulator, EXPECTED)


# -- a push killed, pushes at once ------------------------------------------------------------------


def held_call(emulator: EmulatorProcess, operation: str, child: subprocess.Popen[str], mark: int) -> Call:
    """Wait until `operation` is applied and its answer held (the delay knob), while `child` waits."""
    deadline = time.monotonic() + ARRIVAL
    while time.monotonic() < deadline:
        held = [c for c in calls_since(emulator, mark) if c.operation == operation and DELAYED in c.faults]
        if held:
            return held[0]
        assert child.poll() is None, f"the push ended before {operation}: {child.communicate()[0]}"
        time.sleep(0.05)
    raise AssertionError(f"no {operation} within {ARRIVAL} s")


@pytest.mark.parametrize(
    "operation",
    ["CreateModelPackageGroup", "CreateModelPackage", "UpdateModelPackage"],
    ids=["group-made-no-package", "package-made-mlflow-not-tagged", "approval-updated-mlflow-not-told"],
)
def test_a_push_killed_after_a_write_is_repaired_by_the_next(
    registry: dict[str, str], emulator: EmulatorProcess, operation: str
) -> None:
    """SIGKILL of a `mlsync push` child the moment SageMaker has made a change and before the push
    heard of it: the next push repairs without a duplicate and links every version."""
    expected = dict(EXPECTED)
    if operation == "UpdateModelPackage":  # something to update: move champion from version 2 to 1
        assert mlsync("push", "--all").exit_code == 0
        mlflow.MlflowClient().set_registered_model_alias("churn model", "champion", "1")
        expected["churn model", "1"], expected["churn model", "2"] = APPROVED, REJECTED
    mark = len(emulator.calls())
    emulator.delay(operation, HELD, after_apply=True)
    with mlsync_child("push", "--all") as child:
        held = held_call(emulator, operation, child, mark)
        child.kill()
        child.communicate(timeout=30)
    emulator.clear_faults()

    if operation == "CreateModelPackageGroup":
        assert every_package() == []
    elif operation == "CreateModelPackage":  # made in SageMaker, unknown to MLflow
        # Other models' creates ran beside the held one (a push works on several models at once).
        identity = identity_of(held.params["CustomerMetadataProperties"])
        assert identity is not None and TAG_PACKAGE_ARN not in version_tags(*identity[1:])
        made = [identity_of(package["CustomerMetadataProperties"]) for package in every_package()]
        assert identity in made
    else:  # approved in SageMaker, MLflow still records the approval before
        described = boto3.client("sagemaker").describe_model_package(
            ModelPackageName=held.params["ModelPackageArn"]
        )
        identity = identity_of(described["CustomerMetadataProperties"])
        assert identity is not None and described["ModelApprovalStatus"] == held.params["ModelApprovalStatus"]
        assert version_tags(*identity[1:])[TAG_SYNCED_APPROVAL] != described["ModelApprovalStatus"]

    repair = mlsync("push", "--all")
    assert repair.exit_code == 0, repair.output
    assert_promises(emulator, expected)


def test_three_concurrent_pushes_make_one_package_per_version(
    registry: dict[str, str], emulator: EmulatorProcess
) -> None:
    """Three `mlsync push --all` processes on a registry SageMaker has never seen race for every group
    and package: the same ClientTokens, groups the others made accepted, tag writes re-read."""
    children = [mlsync_child("push", "--all") for _ in range(3)]
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0, 0], "\n".join(outputs)
    assert_promises(emulator, EXPECTED)


# -- a group IAM denies ----------------------------------------------------------------------------


def test_a_group_iam_denies_fails_only_its_model(registry: dict[str, str], emulator: EmulatorProcess) -> None:
    """An IAM policy denying one group: every other model is mirrored, the push exits 1, and the denied
    model's versions say why and what to do; once allowed, the next push completes it."""
    emulator.deny_group(group_name("fraud"))
    result = mlsync("push", "--all")
    assert result.exit_code == EXIT_FAILED, result.output
    assert set(by_version(every_package())) == {key for key in EXPECTED if key[0] != "fraud"}
    for model, version in EXPECTED:
        if model == "fraud":
            status = version_tags(model, version)[TAG_SYNC_STATUS]
            assert status.startswith("failed: ") and "AccessDeniedException" in status, status
            assert "Fix: " in status, status
    emulator.clear_faults()
    assert mlsync("push", "--all").exit_code == 0
    assert_promises(emulator, EXPECTED)


# -- bad input --------------------------------------------------------------------------------------

LONG_NAME = " ".join(["a model name far longer than any group name"] * 5)  # 219 characters
HOSTILE_PARAMS = {
    f"param {n:03d}/x.y-z": f"line {n}\nsecond line: [a, b] {{c}} (d) 'e' \"f\" 50% #g ?h <i> \t" + "x" * 300
    for n in range(100)
}
ODD_METRICS = {"gain": math.inf, "loss": -math.inf, "accuracy": math.nan, "auc": 0.5}


def register_bad_input(root: Path) -> set[tuple[str, str]]:
    """The catalogue of awkward registrations; returns the versions that cannot be mirrored."""
    client = mlflow.MlflowClient()
    log_version("typo approval", seed=1)
    log_version("typo approval", seed=2)
    client.set_model_version_tag("typo approval", "2", "sagemaker.approval", "Aproved")
    # A model saved to a directory and registered from its bare path: no run at all.
    features = np.random.default_rng(3).normal(size=(20, 3))
    mlflow.sklearn.save_model(LogisticRegression().fit(features, features[:, 0] > 0), str(root / "bare"))
    client.create_registered_model("bare path")
    client.create_model_version("bare path", str(root / "bare"))
    # Runs deleted: one in the trash (still readable), one garbage-collected (gone for good).
    deleted = []
    for seed in (4, 5):
        run_id = client.get_model_version("deleted runs", log_version("deleted runs", seed=seed)).run_id
        assert run_id is not None
        client.delete_run(run_id)
        deleted.append(run_id)
    collected = CliRunner().invoke(
        gc, ["--backend-store-uri", mlflow.get_tracking_uri(), "--run-ids", deleted[-1]]
    )
    assert collected.exit_code == 0, collected.output
    log_version("odd metrics", metrics=ODD_METRICS, seed=6)
    log_version("hostile params", params=HOSTILE_PARAMS, seed=7)
    log_version(LONG_NAME, seed=8)
    return {("typo approval", "2")}


def test_bad_input_mirrors_what_it_can_and_names_the_fix_for_the_rest(
    empty: dict[str, str], emulator: EmulatorProcess, tmp_path: Path
) -> None:
    """Every awkward version that can be mirrored is, losslessly (strict JSON documents, every param);
    the one that cannot says why and how to fix it; the push exits 4; and MLflow, compared before and
    after, holds nothing new but mlsync's own tags."""
    bad = register_bad_input(tmp_path)
    before = mlflow_snapshot(own_tags=False)

    result = mlsync("push", "--all")

    assert result.exit_code == EXIT_PROBLEMS, result.output
    all_versions = {(name, version) for name, model in before.items() for version in model["versions"]}
    assert_promises(emulator, dict.fromkeys(all_versions - bad, PENDING), exit_code=EXIT_PROBLEMS)
    status = version_tags("typo approval", "2")[TAG_SYNC_STATUS]
    assert status.startswith("failed: ") and "'Aproved'" in status
    assert "Fix: set the tag to one of Approved, Rejected, PendingManualApproval" in status
    assert mlflow_snapshot(own_tags=False) == before  # nothing but mlsync's own tags changed

    packages = by_version(every_package())
    assert "mlflow.run_id" not in packages["bare path", "1"]["CustomerMetadataProperties"]
    odd = packages["odd metrics", "1"]
    metadata = odd["CustomerMetadataProperties"]
    assert (metadata["metric.gain"], metadata["metric.loss"], metadata["metric.accuracy"]) == (
        "Infinity",
        "-Infinity",
        "NaN",
    )
    statistics = read_s3_json(odd["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"])  # strict JSON
    assert statistics["mlflow_metrics"]["gain"] == "Infinity"
    assert read_s3_json(metadata["mlsync.run_document"])["metrics"]["accuracy"] == "NaN"
    document = read_s3_json(
        packages["hostile params", "1"]["CustomerMetadataProperties"]["mlsync.run_document"]
    )
    assert document["params"] == HOSTILE_PARAMS
    long_group = packages[LONG_NAME, "1"]["ModelPackageGroupName"]
    assert len(LONG_NAME) > 200 and len(long_group) <= 63


def test_models_whose_names_differ_only_in_case_never_share_a_group(
    empty: dict[str, str], emulator: EmulatorProcess
) -> None:
    """`Churn` and `churn` are two MLflow models; SageMaker's group names ignore case. Either each gets
    its own group, or the one that cannot have one records a failure naming the collision."""
    for seed, model in enumerate(("Churn", "churn")):
        log_version(model, seed=seed)
    result = mlsync("push", "--all")

    models_by_group: dict[str, set[str]] = defaultdict(set)
    for package in every_package():
        identity = identity_of(package["CustomerMetadataProperties"])
        assert identity is not None
        models_by_group[package["ModelPackageGroupName"]].add(identity[1])
    assert all(len(models) == 1 for models in models_by_group.values()), models_by_group
    mirrored = set().union(*models_by_group.values())
    assert mirrored, result.output
    for model in {"Churn", "churn"} - mirrored:
        status = version_tags(model, "1")[TAG_SYNC_STATUS]
        assert status.startswith("failed: ") and ("case" in status or "already" in status), status
    assert result.exit_code == (0 if len(mirrored) == 2 else EXIT_FAILED), result.output
    if len(mirrored) == 2:
        assert_promises(emulator, {("Churn", "1"): PENDING, ("churn", "1"): PENDING})


# -- the operations guide and its neighbours -------------------------------------------------------


def test_the_lifecycle_rule_in_operations_md_is_one_s3_accepts_for_mlsyncs_prefix(
    registry: dict[str, str],
) -> None:
    (configuration,) = json_blocks("operations.md")
    (rule,) = configuration["Rules"]
    assert registry["MLSYNC_S3_PREFIX"] == f"s3://{BUCKET}/{rule['Filter']['Prefix'].rstrip('/')}"
    s3 = boto3.client("s3")
    s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration=configuration)
    try:
        (stored,) = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
        assert stored["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    finally:
        s3.delete_bucket_lifecycle(Bucket=BUCKET)


def test_the_iam_policy_in_deployment_md_allows_every_call_of_a_push_and_its_repair(
    registry: dict[str, str], emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    (policy,) = [
        block for block in json_blocks("deployment.md") if "sagemaker:CreateModelPackage" in str(block)
    ]
    allowed = {action for statement in policy["Statement"] for action in statement["Action"]}
    with monkeypatch.context() as once:  # groups made, their answers lost: the repair finds them
        once.setenv("MLSYNC_MAX_ATTEMPTS", "1")
        emulator.lose_answers("CreateModelPackageGroup")
        assert mlsync("push", "--all").exit_code == EXIT_FAILED
    emulator.clear_faults()
    assert mlsync("push", "--all").exit_code == 0
    mlflow.MlflowClient().set_registered_model_alias("churn model", "champion", "1")  # an update too
    assert mlsync("push", "--all").exit_code == 0
    made = {f"sagemaker:{call.operation}" for call in emulator.calls()}
    assert {"sagemaker:CreateModelPackage", "sagemaker:UpdateModelPackage"} <= made
    assert made - allowed == set()
