"""Convergence, as a property: after any interleaving of changes on both sides, a second reconcile writes
nothing anywhere, and a review made in SageMaker is never undone (under the default conflict policy).

A seeded random walk (reproducible: the failing step prints its seed, step and the changes made) over a
real SQLite MLflow registry and the in-process SageMaker emulator. Each step makes one to three random
changes: MLflow aliases, stages and approval tags as a data scientist makes them, and approvals as a
reviewer makes them in SageMaker (only the transitions SageMaker documents), then reconciles with `push`
or `pull`, twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import mlflow
import pytest
from mlflow_models import log_version

from mlflow_sagemaker_registry.config import load_settings
from mlflow_sagemaker_registry.emulator import WRITE_OPERATIONS, RegistryBackend, emulated_aws
from mlflow_sagemaker_registry.engine import Engine
from mlflow_sagemaker_registry.mapping.approval import decide_approval, settle_approval
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN
from mlflow_sagemaker_registry.wiring import connect

MODEL = "convergence model"
VERSIONS = ("1", "2", "3")
STEPS = 100  # 200 interleavings in about a minute
SEEDS = (1, 2)
TRANSITIONS = {
    "PendingManualApproval": ("Approved", "Rejected"),
    "Approved": ("Rejected",),
    "Rejected": ("Approved",),
}


@pytest.fixture
def backend(mlflow_uri: str) -> Iterator[RegistryBackend]:
    with emulated_aws() as emulated:
        boto3.client("s3").create_bucket(Bucket="convergence")
        for seed in range(len(VERSIONS)):
            log_version(MODEL, seed=seed)
        yield emulated


def mirror(policy: str) -> Engine:
    flags = {"s3_prefix": "s3://convergence/mlsync", "approval_conflicts": policy}
    return connect(load_settings(flags, env={}))


def mlflow_state() -> dict[str, Any]:
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name = '{MODEL}'")
    return {
        "versions": {v.version: (dict(v.tags), v.current_stage) for v in versions},
        "aliases": dict(client.get_registered_model(MODEL).aliases),
    }


def sagemaker_approvals() -> dict[str, str]:
    client = mlflow.MlflowClient()
    sagemaker = boto3.client("sagemaker")
    return {
        version: sagemaker.describe_model_package(
            ModelPackageName=client.get_model_version(MODEL, version).tags[TAG_PACKAGE_ARN]
        )["ModelApprovalStatus"]
        for version in VERSIONS
    }


class Changes:
    """The random changes one step makes, remembered for the failure message."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.log: list[str] = []
        self.reviewed: dict[str, str] = {}
        self._reviewer = boto3.client(
            "sagemaker", aws_access_key_id="AKIAREVIEWER", aws_secret_access_key="x", region_name="us-east-1"
        )

    def make(self) -> None:
        choices: list[Callable[[], None]] = [self.alias, self.stage, self.tag, self.review, self.review]
        for _ in range(self.rng.randint(1, 3)):
            self.rng.choice(choices)()

    def alias(self) -> None:
        client = mlflow.MlflowClient()
        if self.rng.random() < 0.3:
            if "champion" in client.get_registered_model(MODEL).aliases:
                client.delete_registered_model_alias(MODEL, "champion")
                self.log.append("delete @champion")
            return
        version = self.rng.choice(VERSIONS)
        client.set_registered_model_alias(MODEL, "champion", version)
        self.log.append(f"@champion -> v{version}")

    def stage(self) -> None:
        version, stage = (
            self.rng.choice(VERSIONS),
            self.rng.choice(("None", "Staging", "Production", "Archived")),
        )
        mlflow.MlflowClient().transition_model_version_stage(MODEL, version, stage)
        self.log.append(f"v{version} stage {stage}")

    def tag(self) -> None:
        client, version = mlflow.MlflowClient(), self.rng.choice(VERSIONS)
        if self.rng.random() < 0.4:
            if "sagemaker.approval" in client.get_model_version(MODEL, version).tags:
                client.delete_model_version_tag(MODEL, version, "sagemaker.approval")
                self.log.append(f"v{version} delete tag")
            return
        status = self.rng.choice(tuple(TRANSITIONS))
        client.set_model_version_tag(MODEL, version, "sagemaker.approval", status)
        self.log.append(f"v{version} tag {status}")

    def review(self) -> None:
        version = self.rng.choice(VERSIONS)
        arn = mlflow.MlflowClient().get_model_version(MODEL, version).tags[TAG_PACKAGE_ARN]
        current = self._reviewer.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]
        status = self.rng.choice(TRANSITIONS[current])
        self._reviewer.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
        self.reviewed[version] = status
        self.log.append(f"review v{version} {current} -> {status}")


@pytest.mark.parametrize("seed", SEEDS)
def test_random_interleavings_converge_and_reviews_survive(backend: RegistryBackend, seed: int) -> None:
    rng = random.Random(seed)
    engines = {policy: mirror(policy) for policy in ("sagemaker", "mlflow")}
    engines["sagemaker"].push([MODEL])
    for step in range(STEPS):
        changes = Changes(rng)
        mlflow_before = mlflow_state()
        changes.make()
        mlflow_changed = mlflow_state()["versions"] != mlflow_before["versions"] or (
            mlflow_state()["aliases"] != mlflow_before["aliases"]
        )
        policy = rng.choice(("sagemaker", "sagemaker", "mlflow"))
        direction = rng.choice(("push", "push", "pull"))
        engine = engines[policy]
        reconcile = engine.push if direction == "push" else engine.pull
        where = f"seed {seed} step {step}: {changes.log}, then {direction} twice ({policy} wins conflicts)"

        _, first = reconcile([MODEL])
        assert first.ok, f"{where}: {first.failures}"
        if policy == "sagemaker" and direction == "push" and not mlflow_changed:
            # Only SageMaker changed: every review stands.
            approvals = sagemaker_approvals()
            for version, status in changes.reviewed.items():
                assert approvals[version] == status, f"{where}: the review of v{version} was undone"
        settled, calls = mlflow_state(), len(backend.calls())
        plan, _ = reconcile([MODEL])

        assert plan.is_empty, (
            f"{where}: the second {direction} planned {[a.describe() for a in plan.actions]}"
        )
        written = [c.operation for c in backend.calls()[calls:] if c.operation in WRITE_OPERATIONS]
        assert written == [], f"{where}: the second {direction} wrote {written} to SageMaker"
        assert mlflow_state() == settled, f"{where}: the second {direction} wrote to MLflow"
        if direction == "push":
            assert_mirrored(engine, where)


def assert_mirrored(engine: Engine, where: str) -> None:
    """After a push the mapping, settled, gives exactly what SageMaker holds, for every version."""
    approvals = sagemaker_approvals()
    model = engine.source.read_model(MODEL)
    for version in model.versions:
        wanted = decide_approval(version, engine.settings.approval).status
        held = approvals[version.version]
        assert settle_approval(wanted, None, type(wanted)(held))[0].value == held, (
            f"{where}: v{version.version} wants {wanted.value}, SageMaker holds {held}"
        )
