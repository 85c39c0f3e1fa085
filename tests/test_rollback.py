"""Planning `mlsync rollback`: reject the deployed version, approve the target, let MLflow follow."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from mlflow_sagemaker_registry.actions import LinkVersion, MoveAlias, UpdatePackage
from mlflow_sagemaker_registry.config import ApprovalRules
from mlflow_sagemaker_registry.domain import (
    ApprovalStatus,
    Lifecycle,
    ModelCard,
    ObservedPackage,
    PackageUpdate,
    SourceModel,
    SourceVersion,
)
from mlflow_sagemaker_registry.errors import RollbackError
from mlflow_sagemaker_registry.mapping.model_card import KEY_MODEL_CARD, card_digest
from mlflow_sagemaker_registry.mapping.tags import (
    TAG_APPROVED_AT,
    TAG_REVIEW_BY,
    TAG_REVIEW_DESCRIPTION,
    TAG_SYNC_STATUS,
    TAG_SYNCED_APPROVAL,
)
from mlflow_sagemaker_registry.planner import CARD_TO_FOLLOW
from mlflow_sagemaker_registry.rollback import plan_rollback

A, R, P = ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.PENDING
RULES = ApprovalRules()
MODEL = "churn"


def arn(n: int) -> str:
    return f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{MODEL}/{n}"


def version(number: int, approved_at: str | None = None, **fields: Any) -> SourceVersion:
    tags = dict(fields.pop("tags", {}))
    if approved_at:
        tags[TAG_APPROVED_AT] = approved_at
    return SourceVersion(model_name=MODEL, version=str(number), tags=tags, **fields)


def package(number: int, approval: ApprovalStatus, stage: str = "Development") -> ObservedPackage:
    status = {A: "Approved", R: "Rejected", P: "PendingApproval"}[approval]
    return ObservedPackage(arn(number), MODEL, number, approval, Lifecycle(stage, status), {})


def promoted_three_times() -> tuple[SourceModel, dict[str, ObservedPackage]]:
    """v1, v2, v3 each became champion in turn; mlsync rejected the one before each time."""
    versions = (
        version(1, "2026-11-01T00:00:00+00:00", tags={TAG_SYNCED_APPROVAL: "Rejected"}),
        version(2, "2026-11-02T00:00:00+00:00", tags={TAG_SYNCED_APPROVAL: "Rejected"}),
        version(
            3, "2026-11-03T00:00:00+00:00", aliases=("champion",), tags={TAG_SYNCED_APPROVAL: "Approved"}
        ),
    )
    packages = {"1": package(1, R), "2": package(2, R), "3": package(3, A, "Production")}
    return SourceModel(MODEL, versions=versions), packages


def test_rollback_to_a_named_version_rejects_the_deployed_one_and_moves_the_alias() -> None:
    model, packages = promoted_three_times()
    plan = plan_rollback(model, packages, RULES, to="1", reason="latency regression")
    approve, reject, move, tag3, tag1 = plan.actions
    assert approve == UpdatePackage(
        arn=arn(1),
        model_name=MODEL,
        version="1",
        previous_approval=R,
        change=PackageUpdate(
            approval=A,
            approval_reason="mlsync rollback from version 3: latency regression",
            lifecycle=Lifecycle("Production", "Approved"),  # the champion's lifecycle stage
        ),
    )
    assert reject == UpdatePackage(
        arn=arn(3),
        model_name=MODEL,
        version="3",
        previous_approval=A,
        change=PackageUpdate(
            approval=R,
            approval_reason="mlsync rollback to version 1: latency regression",
            lifecycle=Lifecycle("Development", "Rejected"),
        ),
        after="1",  # only once the target is approved
    )
    assert move == MoveAlias(MODEL, "1", "champion", "3")
    assert tag3 == LinkVersion(
        MODEL,
        "3",
        {
            TAG_REVIEW_DESCRIPTION: "mlsync rollback to version 1: latency regression",
            "sagemaker.approval": "Rejected",
            TAG_SYNCED_APPROVAL: "Rejected",
        },
    )
    # The alias alone makes v1 Approved: no approval tag is pinned on it.
    assert tag1 == LinkVersion(
        MODEL,
        "1",
        {
            TAG_REVIEW_DESCRIPTION: "mlsync rollback from version 3: latency regression",
            TAG_SYNCED_APPROVAL: "Approved",
        },
        stamp_approved=True,
    )
    assert list(tag3.tags)[-1] == TAG_SYNCED_APPROVAL


def test_the_default_target_is_the_version_approved_before_the_deployed_one() -> None:
    model, packages = promoted_three_times()
    (approve, *_) = plan_rollback(model, packages, RULES).actions
    assert isinstance(approve, UpdatePackage) and approve.version == "2"
    assert approve.change.approval_reason == "mlsync rollback from version 3: rolled back"


def test_a_version_rejected_by_its_approval_tag_is_never_a_default_target() -> None:
    model, packages = promoted_three_times()
    v2 = model.versions[1]
    rejected = SourceVersion(MODEL, "2", tags={**v2.tags, "sagemaker.approval": "Rejected"})
    model = SourceModel(MODEL, versions=(model.versions[0], rejected, model.versions[2]))
    (approve, *_) = plan_rollback(model, packages, RULES).actions
    assert isinstance(approve, UpdatePackage) and approve.version == "1"


def test_every_approved_package_newer_than_the_target_is_rejected() -> None:
    versions = (
        version(1, "2026-11-01T00:00:00+00:00", stage="Archived"),
        version(2, "2026-11-02T00:00:00+00:00", stage="Production"),
        version(3, "2026-11-03T00:00:00+00:00", stage="Production", tags={TAG_REVIEW_BY: "alice"}),
    )
    packages = {"1": package(1, R), "2": package(2, A), "3": package(3, A)}
    plan = plan_rollback(SourceModel(MODEL, versions=versions), packages, RULES, to="1")
    updates = [a for a in plan.actions if isinstance(a, UpdatePackage)]
    # Oldest first, the deployed one last: the newest Approved package is never one in between.
    assert [(u.version, u.change.approval) for u in updates] == [("1", A), ("2", R), ("3", R)]
    links = {a.version: a for a in plan.actions if isinstance(a, LinkVersion)}
    # Stages, not aliases: the target needs the approval tag to stay Approved; an older author is blanked.
    assert links["1"].tags["sagemaker.approval"] == "Approved"
    assert links["3"].tags[TAG_REVIEW_BY] == ""
    assert not [a for a in plan.actions if isinstance(a, MoveAlias)]


def test_a_target_with_a_malformed_approval_tag_gets_a_valid_one() -> None:
    model, packages = promoted_three_times()
    v1 = SourceVersion(MODEL, "1", tags={**model.versions[0].tags, "sagemaker.approval": "yes please"})
    model = SourceModel(MODEL, versions=(v1, *model.versions[1:]))
    links = {
        a.version: a
        for a in plan_rollback(model, packages, RULES, to="1").actions
        if isinstance(a, LinkVersion)
    }
    assert links["1"].tags["sagemaker.approval"] == "Approved"  # the malformed tag is replaced


def test_line_breaks_in_the_reason_are_folded() -> None:
    model, packages = promoted_three_times()
    (approve, *_) = plan_rollback(model, packages, RULES, to="1", reason="bad\nmodel").actions
    assert isinstance(approve, UpdatePackage) and approve.change.approval_reason.endswith(": bad model")


@pytest.mark.parametrize(
    ("to", "packages", "message"),
    [
        (None, {"1": package(1, R)}, "has no Approved package"),
        ("3", {"1": package(1, A), "2": package(2, R)}, "version 3 has no SageMaker package"),
        ("2", {"1": package(1, R), "2": package(2, A)}, "already the deployed"),
        (None, {"1": package(1, R), "2": package(2, A)}, "name the version to go back to with --to"),
    ],
)
def test_what_cannot_be_rolled_back_is_a_clear_error(
    to: str | None, packages: dict[str, ObservedPackage], message: str
) -> None:
    model = SourceModel(MODEL, versions=(version(1), version(2), version(3)))
    with pytest.raises(RollbackError, match=message):
        plan_rollback(model, packages, RULES, to=to)


def test_rollback_moves_the_status_of_the_cards_mlsync_wrote_and_leaves_an_edited_one() -> None:
    model, packages = promoted_three_times()
    approved_card = ModelCard('{"intended_uses":{"intended_uses":"churn"}}', "Approved")
    draft_card = replace(approved_card, status="Draft")
    packages["1"] = replace(
        packages["1"], model_card=draft_card, customer_metadata={KEY_MODEL_CARD: card_digest(draft_card)}
    )
    # A reviewer edited v3's card after mlsync wrote it: the rollback leaves it as it is.
    packages["3"] = replace(
        packages["3"],
        model_card=replace(approved_card, content='{"intended_uses":{"intended_uses":"EU only"}}'),
        customer_metadata={KEY_MODEL_CARD: card_digest(approved_card)},
    )

    approve, reject, *_ = plan_rollback(model, packages, RULES, to="1").actions

    assert isinstance(approve, UpdatePackage) and isinstance(reject, UpdatePackage)
    assert approve.change.model_card == approved_card
    assert approve.change.metadata_set == {KEY_MODEL_CARD: card_digest(approved_card)}
    assert approve.previous_card == draft_card
    assert "model card Draft -> Approved" in approve.text()
    assert (reject.change.model_card, reject.change.metadata_set) == (None, {})


def test_a_version_a_pull_left_for_its_card_gets_the_sync_status_a_push_would_record() -> None:
    """A pull writes only MLflow, so it marks a version whose card's status must follow (CARD_TO_FOLLOW);
    a rollback that moves that card records the version as synced, instead of leaving it to a push."""
    model, packages = promoted_three_times()
    marked = replace(model.versions[2], tags={**model.versions[2].tags, TAG_SYNC_STATUS: CARD_TO_FOLLOW})
    model = replace(model, versions=(*model.versions[:2], marked))

    actions = plan_rollback(model, packages, RULES, to="1", sync_statuses={"3": "synced 0123"}).actions

    (link,) = [a for a in actions if isinstance(a, LinkVersion) and a.version == "3"]
    assert link.tags[TAG_SYNC_STATUS] == "synced 0123"
    untouched = [a for a in actions if isinstance(a, LinkVersion) and a.version == "1"]
    assert all(TAG_SYNC_STATUS not in a.tags for a in untouched)  # v1 was not marked
