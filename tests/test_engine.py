"""The engine over the in-memory ports: plan, push, pull, rollback, status, retire, with no I/O at all.

Each test is a reconcile (or a few) between a `MemorySource` and a `MemoryRegistry`, with people acting on
either side in between: a data scientist moving aliases and tags in MLflow, a reviewer approving or
rejecting in SageMaker. The two-way cases end the way docs/architecture.md promises: a review is never
undone, a conflict is settled by `approval_conflicts`, and a second reconcile writes nothing anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from mlflow_sagemaker_registry.actions import Action, CreatePackage, UpdatePackage
from mlflow_sagemaker_registry.config import Settings
from mlflow_sagemaker_registry.domain import ApprovalStatus, GroupSpec, Lifecycle
from mlflow_sagemaker_registry.engine import Engine
from mlflow_sagemaker_registry.errors import RollbackError, UnsafePlanError
from mlflow_sagemaker_registry.executor import Report
from mlflow_sagemaker_registry.mapping import desired_package
from mlflow_sagemaker_registry.mapping.identity import group_name
from mlflow_sagemaker_registry.mapping.tags import (
    TAG_APPROVAL_CONFLICT,
    TAG_APPROVED_AT,
    TAG_PACKAGE_ARN,
    TAG_REVIEW_BY,
    TAG_REVIEW_DESCRIPTION,
    TAG_REVIEW_TIME,
    TAG_SYNC_STATUS,
    TAG_SYNCED_APPROVAL,
)
from mlflow_sagemaker_registry.planner import Plan
from mlflow_sagemaker_registry.testing import MemoryRegistry, MemorySource, MemoryStorage, memory_gateways

SETTINGS = Settings(s3_prefix="s3://bucket/mlsync")
MODEL = "churn"
APPROVED, REJECTED, PENDING = ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.PENDING
APPROVAL_TAG = SETTINGS.approval.tag
REVIEW = "bias in the holdout set"


class World:
    """MLflow and SageMaker in memory, the people acting on them, and engines over both."""

    def __init__(self) -> None:
        self.source = MemorySource()
        self.registry = MemoryRegistry()
        self.storage = MemoryStorage()

    def engine(self, **settings: Any) -> Engine:
        return Engine(
            replace(SETTINGS, **settings), memory_gateways(self.source, self.registry, self.storage)
        )

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.source.get_version(MODEL, version).tags)

    def arn(self, version: str) -> str:
        return self.tags(version)[TAG_PACKAGE_ARN]

    def approval(self, version: str) -> ApprovalStatus:
        return self.registry.package(self.arn(version)).approval

    def champion(self, version: str) -> None:
        """A data scientist points `@champion` (Approved by the default rules) at a version."""
        self.source.set_alias(MODEL, "champion", version)

    def review(self, version: str, status: ApprovalStatus) -> None:
        self.registry.review(self.arn(version), status, REVIEW, by="alice")

    def forget_calls(self) -> None:
        """Forget every call and write so far: what follows is what the next reconcile does."""
        for fake in (self.source, self.registry, self.storage):
            fake.clear_calls()
        self.source.clear_writes()

    def assert_writes_nothing(self, reconcile: Callable[[], tuple[Plan, Report]]) -> None:
        """A reconcile that plans nothing and writes to neither side."""
        self.forget_calls()
        plan, report = reconcile()
        assert plan.is_empty, [action.describe() for action in plan.actions]
        assert report == Report()
        assert self.registry.writes() == []
        assert (self.source.tag_writes, self.source.alias_writes) == ([], [])
        assert self.storage.calls == []


@pytest.fixture
def world() -> World:
    world = World()
    world.source.add_version(MODEL, metrics={"accuracy": 0.91})
    world.source.add_version(MODEL, metrics={"accuracy": 0.93})
    return world


@pytest.fixture
def mirrored(world: World) -> World:
    """Both versions mirrored, pending; the calls of that first push forgotten."""
    assert world.engine().push([MODEL])[1].ok
    world.forget_calls()
    return world


def kinds(actions: tuple[Action, ...]) -> list[str]:
    return [type(action).__name__ for action in actions]


# -- plan and push ---------------------------------------------------------------------------------------


def test_a_plan_only_reads_and_a_new_model_creates_its_group_then_its_packages(world: World) -> None:
    plan = world.engine().plan([MODEL])

    assert kinds(plan.actions) == ["CreateGroup", "CreatePackage", "CreatePackage"]
    assert world.registry.calls == ["DescribeModelPackageGroup"]
    assert world.source.tag_writes == [] and world.storage.calls == []


def test_a_plan_of_every_model_creates_every_group_first(world: World) -> None:
    world.source.add_version("fraud")

    plan = world.engine().plan()

    assert [(type(a).__name__, a.model_name) for a in plan.actions[:3]] == [
        ("CreateGroup", MODEL),
        ("CreateGroup", "fraud"),
        ("CreatePackage", MODEL),
    ]


def test_a_version_still_registering_is_left_for_a_later_push(world: World) -> None:
    world.source.add_version(MODEL, status="PENDING_REGISTRATION")

    plan = world.engine().plan([MODEL])

    assert [a.version for a in plan.actions if isinstance(a, CreatePackage)] == ["1", "2"]


def test_a_push_mirrors_every_version_and_a_second_push_only_lists(world: World) -> None:
    heard: list[Action] = []
    plan, report = world.engine().push([MODEL], progress=heard.append)

    assert heard == list(plan.actions)
    assert report.ok and report.groups_created == [MODEL]
    assert report.packages_created == [world.arn("1"), world.arn("2")]
    assert [world.approval(v) for v in ("1", "2")] == [PENDING, PENDING]
    world.assert_writes_nothing(lambda: world.engine().push([MODEL]))
    # Both packages are vouched for by their versions' tags: presumed from the summaries, not described.
    assert world.registry.calls == ["DescribeModelPackageGroup", "ListModelPackages"]


def test_an_alias_in_mlflow_is_pushed_as_an_approval_and_stamped(mirrored: World) -> None:
    mirrored.champion("2")

    plan, _ = mirrored.engine().push([MODEL])

    (update,) = [a for a in plan.actions if isinstance(a, UpdatePackage)]
    assert (update.version, update.change.approval, update.previous_approval) == ("2", APPROVED, PENDING)
    assert mirrored.approval("2") is APPROVED
    assert mirrored.registry.package(mirrored.arn("2")).lifecycle == Lifecycle("Production", "Approved")
    assert mirrored.tags("2")[TAG_SYNCED_APPROVAL] == APPROVED.value
    datetime.fromisoformat(mirrored.tags("2")[TAG_APPROVED_AT])
    mirrored.assert_writes_nothing(lambda: mirrored.engine().push([MODEL]))


def test_an_approved_version_that_loses_its_alias_is_rejected_not_left_approved(mirrored: World) -> None:
    mirrored.champion("1")
    mirrored.engine().push([MODEL])
    mirrored.source.delete_alias(MODEL, "champion")

    mirrored.engine().push([MODEL])

    assert mirrored.approval("1") is REJECTED  # SageMaker has no way back to PendingManualApproval
    mirrored.assert_writes_nothing(lambda: mirrored.engine().push([MODEL]))


def test_a_package_created_whose_back_link_failed_is_adopted_next_time(world: World) -> None:
    world.engine().push([MODEL])  # the group and both packages
    world.source.add_version(MODEL)
    world.source.fail_next("set_version_tags")  # the back-link of version 3; its failure is recorded

    _, failed = world.engine().push([MODEL])
    _, report = world.engine().push([MODEL])

    assert [f.version for f in failed.failures] == ["3"]
    assert report.ok and report.packages_created == [] and report.versions_linked == [f"{MODEL}/3"]
    assert world.registry.call_counts()["CreateModelPackage"] == 3
    assert world.tags("3")[TAG_SYNC_STATUS].startswith("synced ")


def test_a_create_whose_answer_was_lost_is_adopted_not_duplicated(world: World) -> None:
    world.registry.fail_next("CreateModelPackage", after_apply=True)

    _, failed = world.engine().push([MODEL])
    world.engine().push([MODEL])

    assert [f.version for f in failed.failures] == ["1"]
    assert [p.package_version for p in world.registry.packages(MODEL)] == [1, 2]
    assert world.registry.call_counts()["CreateModelPackage"] == 2
    assert world.arn("1") == world.registry.packages(MODEL)[0].arn


def test_a_version_that_cannot_be_mapped_is_recorded_once_and_the_others_go_on(world: World) -> None:
    world.source.set_tag(MODEL, "2", APPROVAL_TAG, "maybe")

    plan, _ = world.engine().push([MODEL])

    assert [(p.version, p.problem) for p in plan.problems] == [
        ("2", "tag sagemaker.approval='maybe' is not a SageMaker approval status")
    ]
    assert world.tags("2")[TAG_SYNC_STATUS].startswith("failed: model 'churn' version 2: tag")
    assert [p.package_version for p in world.registry.packages(MODEL)] == [1]
    world.assert_writes_nothing(lambda: world.engine().push([MODEL]))


def test_two_models_whose_names_differ_only_in_case_get_groups_of_their_own() -> None:
    world = World()
    world.source.add_version("Churn")
    world.source.add_version("churn")

    _, report = world.engine().push()

    assert report.ok, report.failures
    assert report.groups_created == [group_name("Churn"), "churn"]
    assert [len(world.registry.packages(group)) for group in report.groups_created] == [1, 1]


def test_a_group_that_is_not_the_models_is_never_filed_into(world: World) -> None:
    world.registry.create_group(GroupSpec(MODEL, "", "made by hand", {}))  # no owner tag
    world.source.add_version("fraud")

    plan, report = world.engine().push()

    assert [u.model_name for u in plan.unplanned] == [MODEL]
    assert "belongs to no MLflow model" in plan.unplanned[0].message
    assert world.registry.packages(MODEL) == ()
    assert [f.action for f in report.failures] == ["Plan"]
    assert len(world.registry.packages("fraud")) == 1


def test_many_approval_changes_at_once_are_refused_unless_forced() -> None:
    world = World()
    for _ in range(10):
        world.source.add_version(MODEL)
    world.engine().push([MODEL])
    for version in ("1", "2", "3", "4"):
        world.source.set_tag(MODEL, version, APPROVAL_TAG, APPROVED.value)
    world.forget_calls()

    with pytest.raises(UnsafePlanError, match="4 of 10 existing model packages"):
        world.engine().push([MODEL])
    assert world.registry.writes() == [] and world.source.tag_writes == []

    _, report = world.engine().push([MODEL], force=True)
    assert len(report.packages_updated) == 4


def test_a_model_that_cannot_be_read_is_reported_and_the_others_go_on(world: World) -> None:
    world.source.add_version("fraud")
    world.source.fail_next("read_model")  # the first model read: churn

    plan, report = world.engine().push()

    assert [u.model_name for u in plan.unplanned] == [MODEL]
    assert [(f.model_name, f.action) for f in report.failures] == [(MODEL, "Plan")]
    assert world.registry.group(MODEL) is None and len(world.registry.packages("fraud")) == 1


def test_a_mirrored_model_sagemaker_cannot_list_is_recorded_on_its_versions_once(mirrored: World) -> None:
    mirrored.registry.fail_next("ListModelPackages", times=2)

    first, _ = mirrored.engine().push([MODEL])
    again, _ = mirrored.engine().push([MODEL])

    assert "ThrottlingException" in first.unplanned[0].message
    assert kinds(first.actions) == ["RecordProblem", "RecordProblem"] and again.actions == ()
    assert mirrored.tags("1")[TAG_SYNC_STATUS] == f"failed: {first.unplanned[0].message}"


def test_a_prompt_is_never_mirrored(world: World) -> None:
    world.source.add_prompt("summarize")

    assert world.engine().plan(["summarize"]).is_empty
    assert world.source.model_names() == [MODEL]


# -- two-way approval ------------------------------------------------------------------------------------


def test_a_review_is_pulled_into_mlflow_and_sagemaker_is_not_written(mirrored: World) -> None:
    mirrored.review("1", REJECTED)

    plan, report = mirrored.engine().pull([MODEL])

    assert kinds(plan.actions) == ["PullApproval"] and report.approvals_pulled == [f"{MODEL}/1"]
    assert mirrored.registry.writes() == []
    tags = mirrored.tags("1")
    assert {
        k: tags[k] for k in (APPROVAL_TAG, TAG_REVIEW_DESCRIPTION, TAG_REVIEW_BY, TAG_SYNCED_APPROVAL)
    } == {
        APPROVAL_TAG: REJECTED.value,
        TAG_REVIEW_DESCRIPTION: REVIEW,
        TAG_REVIEW_BY: "alice",
        TAG_SYNCED_APPROVAL: REJECTED.value,
    }
    assert tags[TAG_REVIEW_TIME] == mirrored.registry.package(mirrored.arn("1")).modified_time
    # The synced approval is written last: a crash before it leaves the pull to be done again.
    assert [w.key for w in mirrored.source.tag_writes][-1] == TAG_SYNCED_APPROVAL


def test_a_review_is_never_undone_by_a_push(mirrored: World) -> None:
    mirrored.review("1", REJECTED)
    mirrored.forget_calls()

    mirrored.engine().push([MODEL])

    # Only the reviewed package is described (its approval moved away from the synced one).
    assert mirrored.registry.call_counts()["DescribeModelPackage"] == 1
    assert mirrored.approval("1") is REJECTED
    assert mirrored.registry.package(mirrored.arn("1")).lifecycle == Lifecycle("Development", "Rejected")
    assert mirrored.tags("1")[APPROVAL_TAG] == REJECTED.value
    mirrored.assert_writes_nothing(lambda: mirrored.engine().push([MODEL]))


def test_an_mlflow_change_is_not_pulled(mirrored: World) -> None:
    mirrored.champion("1")

    mirrored.assert_writes_nothing(lambda: mirrored.engine().pull([MODEL]))
    assert mirrored.approval("1") is PENDING


def test_a_pull_records_an_approval_both_sides_agree_on(mirrored: World) -> None:
    mirrored.champion("1")
    mirrored.review("1", APPROVED)
    mirrored.forget_calls()

    plan, _ = mirrored.engine().pull([MODEL])

    assert kinds(plan.actions) == ["LinkVersion"] and mirrored.registry.writes() == []
    assert mirrored.tags("1")[TAG_SYNCED_APPROVAL] == APPROVED.value
    assert TAG_APPROVED_AT in mirrored.tags("1")
    # The next push sets the lifecycle the alias gives (a review changes approval only), then rests.
    plan, _ = mirrored.engine().push([MODEL])
    assert [
        (a.version, a.change.approval, a.change.lifecycle)
        for a in plan.actions
        if isinstance(a, UpdatePackage)
    ] == [("1", None, Lifecycle("Production", "Approved"))]
    mirrored.assert_writes_nothing(lambda: mirrored.engine().push([MODEL]))


def test_a_conflict_is_won_by_the_review_by_default(mirrored: World) -> None:
    mirrored.champion("1")  # MLflow wants Approved...
    mirrored.review("1", REJECTED)  # ...while a reviewer rejected it

    plan, _ = mirrored.engine().push([MODEL])

    (conflict,) = plan.conflicts
    assert (conflict.version, conflict.mlflow, conflict.sagemaker, conflict.winner) == (
        "1",
        APPROVED,
        REJECTED,
        "sagemaker",
    )
    assert mirrored.approval("1") is REJECTED
    assert mirrored.tags("1")[APPROVAL_TAG] == REJECTED.value
    assert mirrored.tags("1")[TAG_APPROVAL_CONFLICT] == conflict.message
    mirrored.assert_writes_nothing(lambda: mirrored.engine().push([MODEL]))


def test_a_conflict_is_won_by_mlflow_when_configured(mirrored: World) -> None:
    mirrored.champion("1")
    mirrored.review("1", REJECTED)
    engine = mirrored.engine(approval_conflicts="mlflow")

    plan, _ = engine.push([MODEL])

    (conflict,) = plan.conflicts
    assert conflict.winner == "mlflow"
    assert mirrored.approval("1") is APPROVED
    assert "approval_conflicts = mlflow" in mirrored.registry.package(mirrored.arn("1")).approval_description
    assert mirrored.tags("1")[TAG_APPROVAL_CONFLICT] == conflict.message
    assert APPROVAL_TAG not in mirrored.tags("1")
    mirrored.assert_writes_nothing(lambda: engine.push([MODEL]))


# -- rollback --------------------------------------------------------------------------------------------


@pytest.fixture
def deployed(mirrored: World) -> World:
    """Version 1 was approved, then version 2 replaced it (version 1 Rejected, version 2 Approved)."""
    for version in ("1", "2"):
        mirrored.champion(version)
        assert mirrored.engine().push([MODEL])[1].ok
    assert [mirrored.approval(v) for v in ("1", "2")] == [REJECTED, APPROVED]
    return mirrored


def test_a_rollback_goes_back_to_the_version_approved_before_and_stays(deployed: World) -> None:
    engine = deployed.engine()

    plan = engine.plan_rollback(MODEL, reason="latency doubled")
    report = engine.apply(plan)

    assert report.ok
    assert [deployed.approval(v) for v in ("1", "2")] == [APPROVED, REJECTED]
    assert deployed.source.get_version(MODEL, "1").aliases == ("champion",)
    assert deployed.tags("2")[APPROVAL_TAG] == REJECTED.value
    assert "latency doubled" in deployed.registry.package(deployed.arn("2")).approval_description
    deployed.assert_writes_nothing(lambda: engine.push([MODEL]))


def test_a_rollback_with_nothing_approved_is_refused(mirrored: World) -> None:
    with pytest.raises(RollbackError, match="has no Approved package"):
        mirrored.engine().plan_rollback(MODEL)


def test_a_rollback_whose_target_cannot_be_approved_leaves_the_deployed_version_approved(
    deployed: World,
) -> None:
    engine = deployed.engine()
    plan = engine.plan_rollback(MODEL)
    deployed.registry.fail_next("UpdateModelPackage")  # the target's approval, the plan's first step

    report = engine.apply(plan)

    # The rejection waits for the approval (`UpdatePackage.after`): it is reported, not applied.
    assert [f.version for f in report.failures] == ["1", "2"]
    assert "updating version 1 failed first" in report.failures[1].message
    assert deployed.approval("2") is APPROVED
    engine.plan_rollback(MODEL)  # and the rollback can be tried again


# -- status, retire, model_of_package --------------------------------------------------------------------


def test_status_shows_each_version_beside_its_package(mirrored: World) -> None:
    mirrored.champion("2")
    mirrored.source.add_version(MODEL, tags={APPROVAL_TAG: "maybe"})

    rows = mirrored.engine().status(MODEL)

    assert [(r.version, r.package, r.approval, r.desired_approval, r.in_sync) for r in rows] == [
        ("1", mirrored.arn("1"), PENDING.value, PENDING.value, True),
        ("2", mirrored.arn("2"), PENDING.value, APPROVED.value, False),
        ("3", None, None, None, False),
    ]
    assert (rows[0].metric_name, rows[0].metric_value, rows[1].aliases) == ("accuracy", 0.91, ("champion",))
    assert "is not a SageMaker approval status" in rows[2].note


def test_status_shows_a_conflict(mirrored: World) -> None:
    mirrored.champion("1")
    mirrored.review("1", REJECTED)

    (row, _) = mirrored.engine().status(MODEL)

    assert "approval_conflicts = sagemaker keeps Rejected" in row.conflict


def test_retire_rejects_the_packages_of_deleted_versions_once(mirrored: World) -> None:
    mirrored.champion("1")
    mirrored.engine().push([MODEL])
    arn = mirrored.arn("1")
    mirrored.source.delete_version(MODEL, "1")

    report = mirrored.engine().retire(MODEL, ["1"])

    assert report.packages_updated == [arn]
    assert mirrored.registry.package(arn).approval is REJECTED
    assert mirrored.approval("2") is PENDING
    mirrored.forget_calls()
    assert mirrored.engine().retire(MODEL, ["1"]) == Report()
    assert mirrored.registry.calls == [
        "DescribeModelPackageGroup",
        "ListModelPackages",
        "DescribeModelPackage",
    ]


def test_a_push_with_prune_retires_deleted_versions_but_not_registering_ones(mirrored: World) -> None:
    arn = mirrored.arn("1")
    _, inference = mirrored.registry.created_with(arn)
    mirrored.source.delete_version(MODEL, "1")
    registering = mirrored.source.get_version(MODEL, mirrored.source.add_version(MODEL, status="FAILED"))
    # Its package, made by hand here: a version that exists but is not READY is never taken for deleted.
    spec = desired_package(registering, MODEL, mirrored.source.identity(), SETTINGS)
    mirrored.registry.create_package(spec, inference)

    plan, report = mirrored.engine().push([MODEL], prune=True)

    assert [(type(a).__name__, a.version) for a in plan.actions] == [("UpdatePackage", "1")]
    assert report.packages_updated == [arn] and mirrored.registry.package(arn).approval is REJECTED
    mirrored.assert_writes_nothing(lambda: mirrored.engine().push([MODEL], prune=True))


def test_retire_with_on_delete_delete_deletes_every_package_of_the_model(mirrored: World) -> None:
    arns = [mirrored.arn("1"), mirrored.arn("2")]

    report = mirrored.engine(on_delete="delete").retire(MODEL)

    assert report.packages_deleted == arns
    assert mirrored.registry.packages(MODEL) == ()


def mirror_from_another_registry(world: World) -> str:
    """The ARN of a package another MLflow registry's mlsync mirrored into the same group."""
    other = World()
    other.registry = world.registry
    other.source = MemorySource(identity="memory://another-mlflow")
    other.source.add_version(MODEL, "7")
    _, report = other.engine().push([MODEL])
    return report.packages_created[0]


def test_retire_leaves_packages_of_another_registry_alone(mirrored: World) -> None:
    foreign = mirror_from_another_registry(mirrored)

    report = mirrored.engine(on_delete="delete").retire(MODEL)

    assert len(report.packages_deleted) == 2
    assert [p.arn for p in mirrored.registry.packages(MODEL)] == [foreign]


def test_retire_of_a_model_never_mirrored_does_nothing(world: World) -> None:
    assert world.engine().retire(MODEL) == Report()
    assert world.registry.calls == ["DescribeModelPackageGroup"]


def test_model_of_package_names_only_this_registrys_models(mirrored: World) -> None:
    engine = mirrored.engine()
    foreign = mirror_from_another_registry(mirrored)
    spec, inference = mirrored.registry.created_with(mirrored.arn("1"))
    anonymous = replace(spec, customer_metadata={}, client_token="made-by-hand")
    by_hand = mirrored.registry.create_package(anonymous, inference)

    assert engine.model_of_package(mirrored.arn("1")) == MODEL
    assert engine.model_of_package(foreign) is None
    assert engine.model_of_package(by_hand) is None
