"""The planner: desired packages vs what SageMaker holds -> a deterministic, reviewable `Plan`."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from typing import Any

import pytest

from mlflow_sagemaker_registry.actions import (
    CreateGroup,
    CreatePackage,
    DeleteGroupPolicy,
    LinkVersion,
    MoveAlias,
    PullApproval,
    PutGroupPolicy,
    RecordProblem,
    UpdatePackage,
)
from mlflow_sagemaker_registry.config import Settings
from mlflow_sagemaker_registry.domain import (
    ApprovalStatus,
    Lifecycle,
    ModelCard,
    ObservedGroup,
    ObservedPackage,
    PackageSpec,
    PackageSummary,
    PackageUpdate,
    SourceModel,
    SourceVersion,
)
from mlflow_sagemaker_registry.errors import MappingError, UnsafePlanError
from mlflow_sagemaker_registry.mapping import desired_group, desired_package, sync_status
from mlflow_sagemaker_registry.mapping.identity import KEY_MODEL, KEY_SERVER, KEY_VERSION
from mlflow_sagemaker_registry.mapping.metadata import KEY_DOCUMENT, KEY_OMITTED
from mlflow_sagemaker_registry.mapping.model_card import KEY_MODEL_CARD, card_digest
from mlflow_sagemaker_registry.mapping.sharing import merged_policy, own_statements, policy_record
from mlflow_sagemaker_registry.mapping.tags import (
    TAG_APPROVAL_CONFLICT,
    TAG_PACKAGE_ARN,
    TAG_REVIEW_BY,
    TAG_REVIEW_DESCRIPTION,
    TAG_REVIEW_TIME,
    TAG_SYNC_STATUS,
    TAG_SYNCED_APPROVAL,
)
from mlflow_sagemaker_registry.planner import (
    CARD_TO_FOLLOW,
    Drift,
    Plan,
    Unplanned,
    plan_group_policy,
    plan_model,
    plan_unreadable,
    retire_actions,
    trusted_packages,
)

SOURCE = "sqlite:////srv/mlflow.db"
PENDING = ApprovalStatus.PENDING.value
SETTINGS = Settings(s3_prefix="s3://bucket/mlsync")
MODEL = "churn"


def arn(n: int, group: str = MODEL) -> str:
    return f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/{n}"


def version(number: int | str, **fields: Any) -> SourceVersion:
    return SourceVersion(**{"model_name": MODEL, "version": str(number), **fields})


def linked(v: SourceVersion, package_arn: str, synced: ApprovalStatus | None = None) -> SourceVersion:
    """`v` as mlsync leaves it after a sync: back-linked, with the approval it synced (default: its own)."""
    spec = spec_of(v)
    tags = {
        TAG_PACKAGE_ARN: package_arn,
        TAG_SYNC_STATUS: sync_status(spec),
        TAG_SYNCED_APPROVAL: (synced or spec.approval).value,
    }
    return replace(v, tags={**v.tags, **tags})


def spec_of(v: SourceVersion, source: str = SOURCE) -> PackageSpec:
    group = desired_group(SourceModel(v.model_name), SETTINGS)
    return desired_package(v, group.name, source, SETTINGS)


def created(spec: PackageSpec, number: int, **overrides: Any) -> ObservedPackage:
    """The package as SageMaker describes it right after creating it from `spec`."""
    fields: dict[str, Any] = {
        "arn": arn(number, spec.group_name),
        "group_name": spec.group_name,
        "package_version": number,
        "approval": spec.approval,
        "lifecycle": spec.lifecycle,
        "customer_metadata": dict(spec.customer_metadata),
        "description": spec.description,
        "metadata_properties": dict(spec.metadata_properties),
        "quality_statistics_digest": spec.quality_statistics.digest if spec.quality_statistics else None,
        "model_card": spec.model_card,
    }
    return ObservedPackage(**{**fields, **overrides})


def plan_for(
    versions: list[SourceVersion],
    packages: list[ObservedPackage] | None,
    desired: list[PackageSpec | MappingError] | None = None,
    source: str = SOURCE,
) -> Plan:
    """Plan a model; `packages=None` means its group does not exist yet."""
    name = versions[0].model_name if versions else MODEL
    model = SourceModel(name, versions=tuple(versions))
    group = desired_group(model, SETTINGS)
    observed = None if packages is None else ObservedGroup(group.name, group.description, tuple(packages))
    specs = desired if desired is not None else [spec_of(v, source) for v in versions]
    return plan_model(model, group, observed, specs, source)


def kinds(plan: Plan) -> list[str]:
    return [type(a).__name__ for a in plan.actions]


# --- in sync and new models -------------------------------------------------------------------------


def test_a_model_in_sync_plans_nothing() -> None:
    v1, v2 = version(1, stage="Production", metrics={"rmse": 0.1}), version(2, aliases=("champion",))
    packages = [created(spec_of(v1), 1), created(spec_of(v2), 2)]
    plan = plan_for([linked(v1, arn(1)), linked(v2, arn(2))], packages)
    assert plan.actions == ()
    assert plan.drift == ()
    assert plan.problems == ()
    assert plan.is_empty
    assert plan.matched == ((MODEL, "1", arn(1)), (MODEL, "2", arn(2)))
    assert plan.existing == 2
    assert plan.approval_changes == 0


def test_a_new_model_creates_its_group_then_packages_in_version_order() -> None:
    versions = [version(1), version(2, stage="Production"), version(10)]
    plan = plan_for(versions, None)
    group = desired_group(SourceModel(MODEL), SETTINGS)
    assert plan.actions == (
        CreateGroup(group),
        CreatePackage(spec_of(versions[0])),
        CreatePackage(spec_of(versions[1])),
        CreatePackage(spec_of(versions[2])),
    )
    assert plan.matched == ()
    assert plan.existing == 0
    assert not plan.is_empty


def test_an_existing_empty_group_is_not_created_again() -> None:
    plan = plan_for([version(1)], [])
    assert kinds(plan) == ["CreatePackage"]


def test_a_model_without_versions_only_creates_its_group() -> None:
    assert kinds(plan_for([], None)) == ["CreateGroup"]
    assert plan_for([], []).is_empty


# --- matching packages to versions ------------------------------------------------------------------


def test_a_package_is_adopted_by_its_metadata_identity_after_a_crash_before_tagging() -> None:
    v = version(1)
    plan = plan_for([v], [created(spec_of(v), 1)])
    assert plan.actions == (
        LinkVersion(
            MODEL,
            "1",
            {TAG_PACKAGE_ARN: arn(1), TAG_SYNC_STATUS: sync_status(spec_of(v)), TAG_SYNCED_APPROVAL: PENDING},
        ),
    )
    assert plan.matched == ((MODEL, "1", arn(1)),)


def test_identity_matching_ignores_the_package_number_and_the_arn_tag() -> None:
    v = version(1)
    # SageMaker numbered it 5; the version's ARN tag names another package.
    package = created(spec_of(v), 5)
    plan = plan_for([replace(v, tags={TAG_PACKAGE_ARN: arn(9)})], [package])
    assert plan.matched == ((MODEL, "1", arn(5)),)
    assert plan.actions == (
        LinkVersion(
            MODEL,
            "1",
            {TAG_PACKAGE_ARN: arn(5), TAG_SYNC_STATUS: sync_status(spec_of(v)), TAG_SYNCED_APPROVAL: PENDING},
        ),
    )


def test_a_package_with_a_long_hashed_identity_is_still_adopted() -> None:
    long_name = "model (x) " + "a" * 200
    v = SourceVersion(long_name, "1")
    package = created(spec_of(v), 1)
    assert package.customer_metadata[KEY_MODEL].startswith("b64:sha256=")
    plan = plan_for([v], [package])
    assert kinds(plan) == ["LinkVersion"]
    assert plan.matched == ((long_name, "1", package.arn),)


@pytest.mark.parametrize(
    "other",
    [
        {KEY_SERVER: "another-registry"},
        {KEY_MODEL: "fraud"},
        {KEY_VERSION: "2"},
    ],
)
def test_a_package_of_another_source_model_or_version_is_not_matched(other: dict[str, str]) -> None:
    v = version(1)
    spec = spec_of(v)
    package = created(spec, 1, customer_metadata={**spec.customer_metadata, **other})
    plan = plan_for([v], [package])
    assert plan.actions == (CreatePackage(spec),)
    assert plan.matched == ()


def test_a_package_without_identity_is_adopted_through_the_versions_arn_tag() -> None:
    v = replace(version(1), tags={TAG_PACKAGE_ARN: arn(3).upper()})  # ARNs compare case-insensitively
    spec = spec_of(v)
    package = created(spec, 3, customer_metadata={"team": "risk"})
    plan = plan_for([v], [package])
    assert plan.matched == ((MODEL, "1", arn(3)),)
    update = plan.actions[0]
    assert isinstance(update, UpdatePackage)
    assert update.arn == arn(3)
    assert dict(update.change.metadata_set) == dict(spec.customer_metadata)
    assert update.change.metadata_remove == ()
    assert update.documents == (spec.run_document,)
    assert plan.actions[1] == LinkVersion(
        MODEL,
        "1",
        {TAG_PACKAGE_ARN: arn(3), TAG_SYNC_STATUS: sync_status(spec), TAG_SYNCED_APPROVAL: PENDING},
    )
    assert len(plan.actions) == 2


def test_the_arn_tag_never_adopts_a_package_that_has_an_identity() -> None:
    v1, v2 = version(1), version(2)
    # v2 wrongly carries the ARN of v1's package: v1's package is not taken for v2.
    packages = [created(spec_of(v1), 1)]
    plan = plan_for([linked(v1, arn(1)), replace(v2, tags={TAG_PACKAGE_ARN: arn(1)})], packages)
    assert plan.actions == (CreatePackage(spec_of(v2)),)
    assert plan.matched == ((MODEL, "1", arn(1)),)


def test_an_arn_tag_naming_no_package_creates_one() -> None:
    v = replace(version(1), tags={TAG_PACKAGE_ARN: arn(7)})
    plan = plan_for([v], [created(spec_of(v), 1, customer_metadata={})])
    assert kinds(plan) == ["CreatePackage"]


def test_duplicates_are_drift_and_the_lowest_package_version_is_kept() -> None:
    v = version(1)
    spec = spec_of(v)
    packages = [created(spec, 4), created(spec, 2), created(spec, 9)]
    plan = plan_for([linked(v, arn(2))], packages)
    assert plan.matched == ((MODEL, "1", arn(2)),)
    link = {
        TAG_PACKAGE_ARN: arn(2),
        TAG_SYNC_STATUS: "synced with drift in duplicate",
        TAG_SYNCED_APPROVAL: PENDING,
    }
    assert plan.actions == (LinkVersion(MODEL, "1", link),)
    assert plan.drift == (
        Drift(MODEL, "1", arn(4), "duplicate", f"also mirrored as {arn(2)}; delete the extra package"),
        Drift(MODEL, "1", arn(9), "duplicate", f"also mirrored as {arn(2)}; delete the extra package"),
    )


# --- updates ----------------------------------------------------------------------------------------


def test_an_approval_change_updates_approval_with_its_reason_only() -> None:
    v = version(1, aliases=("champion",))
    spec = spec_of(v)
    package = created(spec, 1, approval=ApprovalStatus.PENDING)
    plan = plan_for([linked(v, arn(1), synced=ApprovalStatus.PENDING)], [package])
    assert plan.actions == (
        UpdatePackage(
            arn=arn(1),
            model_name=MODEL,
            version="1",
            previous_approval=ApprovalStatus.PENDING,
            change=PackageUpdate(approval=ApprovalStatus.APPROVED, approval_reason="mlsync: alias @champion"),
        ),
        LinkVersion(MODEL, "1", dict(linked(v, arn(1)).tags), stamp_approved=True),
    )
    assert plan.approval_changes == 1


def test_an_approved_package_falling_back_to_pending_is_rejected() -> None:
    # The champion alias moved away: pending is wanted, but SageMaker has no way back to it.
    v = version(1)
    spec = spec_of(v)
    assert spec.approval == ApprovalStatus.PENDING
    package = created(
        spec, 1, approval=ApprovalStatus.APPROVED, lifecycle=Lifecycle("Production", "Approved")
    )
    plan = plan_for([linked(v, arn(1), synced=ApprovalStatus.APPROVED)], [package])
    assert plan.actions == (
        UpdatePackage(
            arn=arn(1),
            model_name=MODEL,
            version="1",
            previous_approval=ApprovalStatus.APPROVED,
            change=PackageUpdate(
                approval=ApprovalStatus.REJECTED,
                approval_reason=(
                    "mlsync: stage None; was Approved and SageMaker has no way back to PendingManualApproval"
                ),
                lifecycle=Lifecycle("Development", "Rejected"),
            ),
        ),
        LinkVersion(MODEL, "1", dict(linked(v, arn(1), synced=ApprovalStatus.REJECTED).tags)),
    )
    assert plan.approval_changes == 1


def test_a_rejected_package_falling_back_to_pending_stays_rejected() -> None:
    v = version(1)
    spec = spec_of(v)
    package = created(
        spec, 1, approval=ApprovalStatus.REJECTED, lifecycle=Lifecycle("Development", "Rejected")
    )
    rejected = linked(v, arn(1), synced=ApprovalStatus.REJECTED)
    assert plan_for([rejected], [package]).is_empty
    moved = created(spec, 1, approval=ApprovalStatus.REJECTED, lifecycle=Lifecycle("Archived", "Rejected"))
    plan = plan_for([rejected], [moved])
    assert plan.actions == (
        UpdatePackage(
            arn(1), MODEL, "1", change=PackageUpdate(lifecycle=Lifecycle("Development", "Rejected"))
        ),
    )
    assert plan.approval_changes == 0


def test_a_lifecycle_change_updates_the_lifecycle_only() -> None:
    v = version(1, stage="Staging")
    package = created(spec_of(v), 1, lifecycle=Lifecycle("Development", "PendingApproval"))
    plan = plan_for([linked(v, arn(1))], [package])
    assert plan.actions == (
        UpdatePackage(
            arn(1), MODEL, "1", change=PackageUpdate(lifecycle=Lifecycle("PreProduction", "PendingApproval"))
        ),
    )
    assert plan.approval_changes == 0


def test_a_missing_lifecycle_is_set() -> None:
    v = version(1)
    plan = plan_for([linked(v, arn(1))], [created(spec_of(v), 1, lifecycle=None)])
    assert plan.actions == (
        UpdatePackage(
            arn(1), MODEL, "1", change=PackageUpdate(lifecycle=Lifecycle("Development", "PendingApproval"))
        ),
    )


def test_no_desired_lifecycle_leaves_the_packages_alone() -> None:
    v = version(1, stage="Custom")
    spec = spec_of(v)
    assert spec.lifecycle is None
    plan = plan_for([linked(v, arn(1))], [created(spec, 1, lifecycle=Lifecycle("QA", "InProgress"))])
    assert plan.actions == ()


def test_metadata_updates_set_changed_keys_remove_stale_owned_keys_and_keep_user_keys() -> None:
    v = version(1, params={"lr": "0.1", "depth": "3"}, metrics={"rmse": 0.5})
    spec = spec_of(v)
    stale = {k: val for k, val in spec.customer_metadata.items() if k != "param.depth"}
    stale.update(
        {
            "param.lr": "0.2",
            KEY_OMITTED: "0",
            "param.gone": "x",
            "metric.old": "1.0",
            "mlflow.extra": "y",
            "team": "risk",
            "Owner": "ana",
        }
    )
    plan = plan_for([linked(v, arn(1))], [created(spec, 1, customer_metadata=stale)])
    (update,) = plan.actions
    assert isinstance(update, UpdatePackage)
    assert dict(update.change.metadata_set) == {"param.lr": "0.1", "param.depth": "3"}
    assert update.change.metadata_remove == ("metric.old", "mlflow.extra", "param.gone")
    assert (
        update.change.approval is None
        and update.previous_approval is None
        and update.change.approval_reason == ""
    )
    assert update.change.lifecycle is None
    assert update.documents == ()


def test_the_run_document_is_uploaded_when_its_key_changes() -> None:
    v = version(1, params={"lr": "0.1"})
    spec = spec_of(v)
    old = {**spec.customer_metadata, KEY_DOCUMENT: "s3://bucket/mlsync/documents/old.json"}
    plan = plan_for([linked(v, arn(1))], [created(spec, 1, customer_metadata=old)])
    (update,) = plan.actions
    assert isinstance(update, UpdatePackage)
    assert dict(update.change.metadata_set) == {KEY_DOCUMENT: spec.run_document.s3_uri}
    assert update.documents == (spec.run_document,)


def test_all_updatable_changes_go_in_one_update() -> None:
    v = version(1, stage="Production", params={"lr": "0.1"})
    spec = spec_of(v)
    package = created(
        spec,
        1,
        approval=ApprovalStatus.REJECTED,
        lifecycle=Lifecycle("Archived", "Rejected"),
        customer_metadata={**spec.customer_metadata, "param.lr": "9"},
    )
    plan = plan_for([linked(v, arn(1), synced=ApprovalStatus.REJECTED)], [package])
    assert plan.actions == (
        UpdatePackage(
            arn=arn(1),
            model_name=MODEL,
            version="1",
            previous_approval=ApprovalStatus.REJECTED,
            change=PackageUpdate(
                approval=ApprovalStatus.APPROVED,
                approval_reason="mlsync: stage Production",
                lifecycle=Lifecycle("Production", "Approved"),
                metadata_set={"param.lr": "0.1"},
            ),
        ),
        LinkVersion(MODEL, "1", dict(linked(v, arn(1)).tags), stamp_approved=True),
    )


# --- drift, problems and back-links -----------------------------------------------------------------


def test_creation_only_differences_are_drift_never_updates() -> None:
    v = version(
        1,
        description="new words",
        metrics={"rmse": 0.2},
        run_link="http://mlflow/r",
    )
    spec = spec_of(v)
    package = created(
        spec,
        1,
        description="old words",
        metadata_properties={"GeneratedBy": "http://mlflow/old"},
        quality_statistics_digest="sha256:" + "0" * 64,
    )
    plan = plan_for([linked(v, arn(1))], [package])
    (link,) = plan.actions
    assert link == LinkVersion(
        MODEL,
        "1",
        {
            TAG_PACKAGE_ARN: arn(1),
            TAG_SYNC_STATUS: "synced with drift in MetadataProperties, ModelMetrics, ModelPackageDescription",
            TAG_SYNCED_APPROVAL: PENDING,
        },
    )
    assert [d.field for d in plan.drift] == ["ModelPackageDescription", "MetadataProperties", "ModelMetrics"]
    assert all((d.model_name, d.version, d.arn) == (MODEL, "1", arn(1)) for d in plan.drift)
    assert plan.drift[0].detail == (
        "MLflow now gives 'new words', the package was created with 'old words' (creation-only field)"
    )
    assert "http://mlflow/r" in plan.drift[1].detail and "http://mlflow/old" in plan.drift[1].detail
    assert spec.quality_statistics is not None
    assert spec.quality_statistics.digest in plan.drift[2].detail


def test_statistics_present_on_only_one_side_are_drift() -> None:
    v = version(1)
    plan = plan_for(
        [linked(v, arn(1))], [created(spec_of(v), 1, quality_statistics_digest="sha256:" + "1" * 64)]
    )
    assert [d.field for d in plan.drift] == ["ModelMetrics"]


def test_a_mapping_error_is_recorded_on_the_version_and_nothing_else_is_planned() -> None:
    v = version(1, tags={"sagemaker.approval": "maybe"})
    error = MappingError(MODEL, "1", "bad tag", "fix it")
    plan = plan_for([v, version(2)], [], desired=[error, spec_of(version(2))])
    assert plan.actions == (
        RecordProblem(MODEL, "1", f"failed: {error}"),
        CreatePackage(spec_of(version(2))),
    )
    assert plan.problems == (error,)
    assert plan.matched == ()


def test_a_problem_already_recorded_is_not_written_again() -> None:
    error = MappingError(MODEL, "1", "bad tag", "fix it")
    v = version(1, tags={TAG_SYNC_STATUS: f"failed: {error}"})
    plan = plan_for([v], [], desired=[error])
    assert plan.actions == ()
    assert plan.problems == (error,)
    other = version(1, tags={TAG_SYNC_STATUS: "failed: something else"})
    assert kinds(plan_for([other], [], desired=[error])) == ["RecordProblem"]


def test_a_recorded_problem_fits_an_mlflow_tag() -> None:
    error = MappingError(MODEL, "1", "x" * 6000, "fix")
    (action,) = plan_for([version(1)], [], desired=[error]).actions
    assert isinstance(action, RecordProblem)
    assert action.message == f"failed: {error}"[:5000]
    assert len(action.message) == 5000


@pytest.mark.parametrize(
    "tags",
    [
        {},
        {TAG_PACKAGE_ARN: arn(1)},
        {TAG_SYNC_STATUS: "synced"},
        {TAG_PACKAGE_ARN: arn(2), TAG_SYNC_STATUS: "synced"},
        {TAG_PACKAGE_ARN: arn(1), TAG_SYNC_STATUS: "failed: earlier"},
    ],
)
def test_the_version_is_linked_when_either_tag_differs(tags: dict[str, str]) -> None:
    v = version(1)
    plan = plan_for([replace(v, tags=tags)], [created(spec_of(v), 1)])
    assert plan.actions == (
        LinkVersion(
            MODEL,
            "1",
            {TAG_PACKAGE_ARN: arn(1), TAG_SYNC_STATUS: sync_status(spec_of(v)), TAG_SYNCED_APPROVAL: PENDING},
        ),
    )


def test_a_linked_version_with_other_tags_is_not_linked_again() -> None:
    v = version(1, tags={"team": "risk"})
    plan = plan_for([linked(v, arn(1))], [created(spec_of(v), 1)])
    assert plan.actions == ()


def test_packages_of_unknown_versions_are_left_alone() -> None:
    v = version(1)
    stray = created(spec_of(version(7)), 7)
    user = created(spec_of(v), 8, customer_metadata={"team": "risk"})
    plan = plan_for([linked(v, arn(1))], [created(spec_of(v), 1), stray, user])
    assert plan.is_empty
    assert plan.drift == ()


# --- safety threshold -------------------------------------------------------------------------------


def approval_plan(changes: int, existing: int) -> Plan:
    updates = tuple(
        UpdatePackage(arn(i), MODEL, str(i), change=PackageUpdate(approval=ApprovalStatus.APPROVED))
        for i in range(changes)
    )
    others = (UpdatePackage(arn(999), MODEL, "999", change=PackageUpdate(metadata_set={"a": "b"})),)
    matched = tuple((MODEL, str(i), arn(i)) for i in range(existing))
    return Plan(actions=updates + others, matched=matched)


def test_below_min_existing_the_threshold_never_refuses() -> None:
    approval_plan(9, 9).check_safety(min_existing=10, max_fraction=0.1)
    approval_plan(0, 0).check_safety(min_existing=0, max_fraction=0.1)


@pytest.mark.parametrize(
    ("changes", "existing", "fraction"),
    [(3, 10, 0.3), (29, 100, 0.29), (1, 3, 1 / 3), (7, 10, 0.7), (10, 10, 1.0), (0, 10, 0.01)],
)
def test_up_to_the_fraction_is_allowed(changes: int, existing: int, fraction: float) -> None:
    approval_plan(changes, existing).check_safety(min_existing=1, max_fraction=fraction)


@pytest.mark.parametrize(
    ("changes", "existing", "fraction"), [(4, 10, 0.3), (30, 100, 0.29), (2, 3, 0.5), (10, 10, 0.99)]
)
def test_above_the_fraction_is_refused_unless_forced(changes: int, existing: int, fraction: float) -> None:
    plan = approval_plan(changes, existing)
    assert plan.approval_changes == changes
    with pytest.raises(UnsafePlanError) as caught:
        plan.check_safety(min_existing=existing, max_fraction=fraction)
    message = str(caught.value)
    assert f"{changes} of {existing} existing" in message
    assert "--force" in message and "mlsync plan" in message
    plan.check_safety(min_existing=existing, max_fraction=fraction, force=True)


def test_approval_changes_without_existing_packages_are_refused_when_checked() -> None:
    # Not a plan the planner makes (updates need matched packages), but never a division by zero.
    with pytest.raises(UnsafePlanError):
        approval_plan(1, 0).check_safety(min_existing=0, max_fraction=1.0)


def test_only_approval_updates_count_toward_the_threshold() -> None:
    plan = Plan(
        actions=(
            UpdatePackage(arn(1), MODEL, "1", change=PackageUpdate(lifecycle=Lifecycle("QA", "Approved"))),
            UpdatePackage(arn(2), MODEL, "2", change=PackageUpdate(metadata_set={"a": "b"})),
            LinkVersion(MODEL, "3", {}),
        ),
        matched=tuple((MODEL, str(i), arn(i)) for i in range(10)),
    )
    assert plan.approval_changes == 0
    plan.check_safety(min_existing=1, max_fraction=0.01)


# --- JSON form, checksum, merging -------------------------------------------------------------------


def _mixed_plan() -> Plan:
    v1 = version(1, stage="Production", description="new")
    spec1 = spec_of(v1)
    v2 = version(2)
    error = MappingError(MODEL, "3", "bad tag", "fix it")
    return plan_for(
        [v1, v2, version(3)],
        [
            created(spec1, 1, approval=ApprovalStatus.PENDING, description="old"),
            created(spec1, 2),
        ],
        desired=[spec1, spec_of(v2), error],
    )


def test_the_json_form_describes_every_action_drift_and_problem() -> None:
    plan = _mixed_plan()
    spec2 = spec_of(version(2))
    data = plan.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "actions": [
            {
                "action": "update-package",
                "arn": arn(1),
                "model": MODEL,
                "version": "1",
                "approval": {"from": "PendingManualApproval", "to": "Approved"},
                "approval_reason": "mlsync: stage Production",
            },
            {
                "action": "link-version",
                "model": MODEL,
                "version": "1",
                "tags": {
                    TAG_PACKAGE_ARN: arn(1),
                    TAG_SYNC_STATUS: "synced with drift in ModelPackageDescription, duplicate",
                    TAG_SYNCED_APPROVAL: "Approved",
                },
                "stamp_approved": True,
            },
            {
                "action": "create-package",
                "group": MODEL,
                "model": MODEL,
                "version": "2",
                "approval": "PendingManualApproval",
                "approval_reason": "mlsync: stage None",
                "lifecycle": {"Stage": "Development", "StageStatus": "PendingApproval"},
                "client_token": spec2.client_token,
                "metadata_entries": len(spec2.customer_metadata),
                "documents": [spec2.run_document.s3_uri],
                "model_card": None,
            },
            {
                "action": "record-problem",
                "model": MODEL,
                "version": "3",
                "message": "failed: model 'churn' version 3: bad tag. Fix: fix it",
            },
        ],
        "drift": [
            {
                "model": MODEL,
                "version": "1",
                "arn": arn(2),
                "field": "duplicate",
                "detail": f"also mirrored as {arn(1)}; delete the extra package",
            },
            {
                "model": MODEL,
                "version": "1",
                "arn": arn(1),
                "field": "ModelPackageDescription",
                "detail": "MLflow now gives 'new', the package was created with 'old' (creation-only field)",
            },
        ],
        "problems": [{"model": MODEL, "version": "3", "problem": "bad tag", "fix": "fix it"}],
        "conflicts": [],
        "unplanned": [],
        "existing_packages": 1,
    }


def test_describe_of_the_other_actions() -> None:
    group = desired_group(SourceModel("my model"), SETTINGS)
    assert CreateGroup(group).describe() == {
        "action": "create-group",
        "group": group.name,
        "model": "my model",
    }
    spec = replace(spec_of(version(1, metrics={"rmse": 0.1})), lifecycle=None)
    described = CreatePackage(spec).describe()
    assert described["lifecycle"] is None
    assert spec.quality_statistics is not None
    assert described["documents"] == [spec.run_document.s3_uri, spec.quality_statistics.s3_uri]
    update = UpdatePackage(
        arn(1),
        MODEL,
        "1",
        change=PackageUpdate(
            approval=ApprovalStatus.REJECTED,
            lifecycle=Lifecycle("Archived", "Rejected"),
            metadata_set={"param.a": "1"},
            metadata_remove=("param.b",),
        ),
    )
    assert update.describe() == {
        "action": "update-package",
        "arn": arn(1),
        "model": MODEL,
        "version": "1",
        "approval": {"from": None, "to": "Rejected"},
        "approval_reason": "",
        "lifecycle": {"Stage": "Archived", "StageStatus": "Rejected"},
        "metadata_set": {"param.a": "1"},
        "metadata_remove": ["param.b"],
    }
    assert UpdatePackage(arn(1), MODEL, "1").describe() == {
        "action": "update-package",
        "arn": arn(1),
        "model": MODEL,
        "version": "1",
    }


def test_the_checksum_is_stable_and_tracks_content() -> None:
    first, second = _mixed_plan(), _mixed_plan()
    assert first.checksum() == second.checksum()
    assert len(first.checksum()) == 64 and all(c in "0123456789abcdef" for c in first.checksum())
    changed = replace(first, actions=first.actions[1:])
    assert changed.checksum() != first.checksum()
    assert Plan().checksum() != first.checksum()
    assert Plan().checksum() == Plan().checksum()


def test_the_checksum_does_not_depend_on_metadata_order() -> None:
    forward = Plan(
        actions=(UpdatePackage(arn(1), MODEL, "1", change=PackageUpdate(metadata_set={"a": "1", "b": "2"})),)
    )
    backward = Plan(
        actions=(UpdatePackage(arn(1), MODEL, "1", change=PackageUpdate(metadata_set={"b": "2", "a": "1"})),)
    )
    assert forward.checksum() == backward.checksum()


def test_plans_add_up_with_every_group_first() -> None:
    fraud = SourceModel("fraud", versions=(SourceVersion("fraud", "1"),))
    fraud_group = desired_group(fraud, SETTINGS)
    fraud_plan = plan_model(fraud, fraud_group, None, [spec_of(fraud.versions[0])], SOURCE)
    churn_plan = _mixed_plan()
    total = churn_plan + fraud_plan
    assert total.actions == (CreateGroup(fraud_group), *churn_plan.actions, fraud_plan.actions[1])
    assert total.drift == churn_plan.drift + fraud_plan.drift
    assert total.problems == churn_plan.problems
    assert total.matched == churn_plan.matched + fraud_plan.matched
    assert total.existing == 1
    assert (Plan() + Plan()).is_empty
    assert (Plan() + churn_plan).actions == churn_plan.actions


def test_nan_metrics_do_not_disturb_planning() -> None:
    v = version(1, metrics={"rmse": math.nan, "mae": math.inf})
    plan = plan_for([linked(v, arn(1))], [created(spec_of(v), 1)])
    assert plan.is_empty
    assert plan.drift == ()


# --- presuming packages from their summaries ----------------------------------------------------------


def summary_of(package: ObservedPackage, **overrides: Any) -> PackageSummary:
    fields = {
        "arn": package.arn,
        "package_version": package.package_version,
        "approval": package.approval,
        "lifecycle": package.lifecycle,
    }
    return PackageSummary(**{**fields, **overrides})


def test_a_version_linked_with_the_current_status_is_presumed_from_its_summary() -> None:
    v = version(1, stage="Production")
    package = created(spec_of(v), 1)
    summary = summary_of(package, approval=ApprovalStatus.REJECTED)
    synced = linked(v, arn(1), synced=ApprovalStatus.REJECTED)
    trusted = trusted_packages([synced], [spec_of(v)], [summary])
    assert trusted == {arn(1): replace(package, approval=ApprovalStatus.REJECTED)}


@pytest.mark.parametrize(
    "tags",
    [
        {},
        {TAG_PACKAGE_ARN: arn(2)},
        {TAG_PACKAGE_ARN: arn(1), TAG_SYNC_STATUS: "synced"},
        {TAG_PACKAGE_ARN: arn(1), TAG_SYNC_STATUS: "synced with drift in ModelMetrics"},
        {TAG_PACKAGE_ARN: arn(1), TAG_SYNC_STATUS: "failed: throttled"},
    ],
)
def test_a_version_whose_tags_do_not_vouch_for_its_package_is_described(tags: dict[str, str]) -> None:
    v = version(1)
    package = created(spec_of(v), 1)
    assert trusted_packages([replace(v, tags=tags)], [spec_of(v)], [summary_of(package)]) == {}


def test_a_changed_mapping_or_a_problem_is_never_presumed() -> None:
    v = linked(version(1), arn(1))
    package = created(spec_of(v), 1)
    changed = spec_of(replace(v, metrics={"accuracy": 0.5}))
    problem = MappingError(MODEL, "1", "bad", "fix")
    assert trusted_packages([v], [changed], [summary_of(package)]) == {}
    assert trusted_packages([v], [problem], [summary_of(package)]) == {}


def test_a_drifted_package_is_linked_without_the_digest_so_it_is_described_next_time() -> None:
    v = version(1)
    spec = spec_of(v)
    plan = plan_for([v], [created(spec, 1, description="edited in SageMaker")])
    (link,) = [a for a in plan.actions if isinstance(a, LinkVersion)]
    assert link.tags[TAG_SYNC_STATUS] == "synced with drift in ModelPackageDescription"
    assert trusted_packages([replace(v, tags=dict(link.tags))], [spec], [summary_of(created(spec, 1))]) == {}


# --- one registry known by two names (plugin on the server: its database; a client: its URL) --------


def test_a_package_created_under_another_name_of_the_registry_is_adopted_through_the_arn_tag() -> None:
    v = version(1, stage="Production")
    by_plugin = created(spec_of(v, source="sqlite:////srv/mlflow.db"), 1)
    from_client = replace(v, tags={TAG_PACKAGE_ARN: by_plugin.arn})
    plan = plan_for([from_client], [by_plugin], source="http://mlflow.internal:5000")
    assert plan.matched == ((MODEL, "1", arn(1)),)
    assert kinds(plan) == ["LinkVersion"]  # nothing to update: the server entry is never rewritten


def test_the_arn_tag_never_adopts_another_versions_package_under_another_name() -> None:
    v2 = version(2)
    package_of_v1 = created(spec_of(version(1), source="sqlite:////srv/mlflow.db"), 1)
    plan = plan_for(
        [replace(v2, tags={TAG_PACKAGE_ARN: package_of_v1.arn})], [package_of_v1], source="http://x"
    )
    assert kinds(plan) == ["CreatePackage"]


def test_the_sync_digest_and_run_document_do_not_depend_on_the_registrys_name() -> None:
    v = version(1, params={"a": "1"}, metrics={"accuracy": 0.5})
    one, other = spec_of(v, source="sqlite:////srv/mlflow.db"), spec_of(v, source="http://mlflow:5000")
    assert one.customer_metadata != other.customer_metadata
    assert sync_status(one) == sync_status(other)
    assert one.run_document == other.run_document


# --- two-way approval -------------------------------------------------------------------------------


def reviewed(spec: PackageSpec, number: int, approval: ApprovalStatus, **overrides: Any) -> ObservedPackage:
    """The package after a reviewer changed its approval in SageMaker."""
    review = {
        "approval_description": "looks good",
        "modified_by": "arn:aws:iam::123456789012:user/reviewer",
        "modified_time": "2026-12-01T10:00:00+00:00",
    }
    return created(spec, number, approval=approval, **{**review, **overrides})


def test_a_review_in_sagemaker_is_pulled_into_mlflow_not_undone() -> None:
    v = version(1)  # pending by the mapping
    package = reviewed(
        spec_of(v), 1, ApprovalStatus.APPROVED, lifecycle=Lifecycle("Development", "PendingApproval")
    )
    plan = plan_for([linked(v, arn(1))], [package])
    pull = PullApproval(
        MODEL,
        "1",
        arn(1),
        ApprovalStatus.APPROVED,
        ApprovalStatus.PENDING,
        {
            "sagemaker.approval": "Approved",
            TAG_REVIEW_DESCRIPTION: "looks good",
            TAG_REVIEW_BY: "arn:aws:iam::123456789012:user/reviewer",
            TAG_REVIEW_TIME: "2026-12-01T10:00:00+00:00",
            TAG_SYNCED_APPROVAL: "Approved",
        },
        stamp_approved=True,
        by="arn:aws:iam::123456789012:user/reviewer",
    )
    assert pull.text() == (
        "< mlflow  churn v1: approval PendingManualApproval -> Approved from SageMaker "
        "(by arn:aws:iam::123456789012:user/reviewer)"
    )
    # No approval write; only the lifecycle's status follows the review.
    assert plan.actions == (
        pull,
        UpdatePackage(
            arn(1), MODEL, "1", change=PackageUpdate(lifecycle=Lifecycle("Development", "Approved"))
        ),
    )
    assert plan.approval_changes == 0
    assert plan.conflicts == ()
    assert list(pull.tags)[-1] == TAG_SYNCED_APPROVAL  # written last: a crash before it pulls again


def test_a_rejection_of_a_pending_version_is_pulled_although_settling_agrees() -> None:
    v = version(1)
    plan = plan_for([linked(v, arn(1))], [reviewed(spec_of(v), 1, ApprovalStatus.REJECTED)])
    (pull, update) = plan.actions
    assert isinstance(pull, PullApproval) and pull.approval is ApprovalStatus.REJECTED
    assert pull.tags["sagemaker.approval"] == "Rejected" and not pull.stamp_approved
    assert update == UpdatePackage(
        arn(1), MODEL, "1", change=PackageUpdate(lifecycle=Lifecycle("Development", "Rejected"))
    )


def test_review_tags_left_from_an_earlier_review_are_blanked() -> None:
    v = linked(version(1), arn(1))
    v = replace(v, tags={**v.tags, TAG_REVIEW_DESCRIPTION: "old", TAG_REVIEW_BY: "someone"})
    package = reviewed(
        spec_of(v), 1, ApprovalStatus.APPROVED, approval_description="", modified_by=None, modified_time=None
    )
    (pull, _) = plan_for([v], [package]).actions
    assert isinstance(pull, PullApproval)
    assert pull.tags == {
        "sagemaker.approval": "Approved",
        TAG_REVIEW_DESCRIPTION: "",
        TAG_REVIEW_BY: "",
        TAG_SYNCED_APPROVAL: "Approved",
    }


def test_the_pull_writes_the_configured_approval_tag() -> None:
    v = version(1)
    model = SourceModel(MODEL, versions=(linked(v, arn(1)),))
    group = desired_group(model, SETTINGS)
    observed = ObservedGroup(
        group.name, group.description, (reviewed(spec_of(v), 1, ApprovalStatus.APPROVED),)
    )
    plan = plan_model(model, group, observed, [spec_of(v)], SOURCE, approval_tag="review")
    pull = plan.actions[0]
    assert isinstance(pull, PullApproval) and pull.tags["review"] == "Approved"


@pytest.mark.parametrize("policy", ["sagemaker", "mlflow"])
def test_both_sides_changed_is_a_conflict_recorded_and_won_by_the_policy(policy: str) -> None:
    v = version(1, aliases=("champion",))  # MLflow: Approved now
    synced = linked(v, arn(1), synced=ApprovalStatus.PENDING)
    package = reviewed(spec_of(v), 1, ApprovalStatus.REJECTED)  # SageMaker: Rejected now
    model = SourceModel(MODEL, versions=(synced,))
    group = desired_group(model, SETTINGS)
    observed = ObservedGroup(group.name, group.description, (package,))
    plan = plan_model(model, group, observed, [spec_of(v)], SOURCE, conflicts=policy)
    (conflict,) = plan.conflicts
    assert conflict.describe() == {
        "model": MODEL,
        "version": "1",
        "arn": arn(1),
        "base": "PendingManualApproval",
        "mlflow": "Approved",
        "sagemaker": "Rejected",
        "winner": policy,
    }
    recorded = conflict.message
    assert recorded.endswith(
        f"approval_conflicts = {policy} keeps {'Approved' if policy == 'mlflow' else 'Rejected'}"
    )
    if policy == "sagemaker":
        pull, update = plan.actions  # the back-links are current; the pull records the sync
        assert isinstance(pull, PullApproval) and pull.tags[TAG_APPROVAL_CONFLICT] == recorded
        assert isinstance(update, UpdatePackage) and update.change.approval is None
        assert update.change.lifecycle == Lifecycle("Production", "Rejected")
    else:
        update, link = plan.actions
        assert isinstance(update, UpdatePackage) and update.change.approval is ApprovalStatus.APPROVED
        assert update.change.approval_reason == (
            "mlsync: alias @champion; "
            "overrides a change to Rejected in SageMaker (approval_conflicts = mlflow)"
        )
        assert isinstance(link, LinkVersion) and link.tags[TAG_APPROVAL_CONFLICT] == recorded
        assert link.tags[TAG_SYNCED_APPROVAL] == "Approved" and link.stamp_approved
    assert plan.to_dict()["conflicts"] == [conflict.describe()]


def test_a_pull_only_plan_writes_nothing_but_pulls() -> None:
    v1, v2, v3 = version(1), version(2, aliases=("champion",)), version(3)
    packages = [
        reviewed(spec_of(v1), 1, ApprovalStatus.APPROVED),  # reviewed: pulled
        created(spec_of(v2), 2, approval=ApprovalStatus.PENDING),  # MLflow changed: left to push
    ]
    versions = [linked(v1, arn(1)), linked(v2, arn(2), synced=ApprovalStatus.PENDING), v3]  # v3: no package
    model = SourceModel(MODEL, versions=tuple(versions))
    group = desired_group(model, SETTINGS)
    observed = ObservedGroup(group.name, group.description, tuple(packages))
    plan = plan_model(model, group, observed, [spec_of(v) for v in (v1, v2, v3)], SOURCE, pull_only=True)
    assert kinds(plan) == ["PullApproval"]
    assert plan_model(model, group, None, [spec_of(v) for v in (v1, v2, v3)], SOURCE, pull_only=True).is_empty
    error = MappingError(MODEL, "3", "bad tag", "fix it")
    with_problem = plan_model(
        model, group, observed, [spec_of(v1), spec_of(v2), error], SOURCE, pull_only=True
    )
    assert kinds(with_problem) == ["PullApproval"] and with_problem.problems == (error,)


def test_a_package_whose_approval_moved_since_the_sync_is_described_not_presumed() -> None:
    v = version(1)
    package = created(spec_of(v), 1)
    moved = summary_of(package, approval=ApprovalStatus.APPROVED)
    assert trusted_packages([linked(v, arn(1))], [spec_of(v)], [moved]) == {}
    unsynced = replace(v, tags={TAG_PACKAGE_ARN: arn(1), TAG_SYNC_STATUS: sync_status(spec_of(v))})
    assert trusted_packages([unsynced], [spec_of(v)], [summary_of(package)]) == {}


def test_the_other_new_actions_describe_themselves() -> None:
    assert MoveAlias(MODEL, "1", "champion", "3").describe() == {
        "action": "move-alias",
        "model": MODEL,
        "version": "1",
        "alias": "champion",
        "from": "3",
    }
    pull = PullApproval(MODEL, "1", arn(1), ApprovalStatus.APPROVED, ApprovalStatus.PENDING, {"k": "v"})
    assert pull.describe() == {
        "action": "pull-approval",
        "model": MODEL,
        "version": "1",
        "arn": arn(1),
        "approval": {"from": "PendingManualApproval", "to": "Approved"},
        "tags": {"k": "v"},
        "stamp_approved": False,
    }


def test_a_pull_records_an_approval_both_sides_agree_on() -> None:
    """Both changed to the same value: the record follows, or a later review would look unchanged."""
    v = version(1, aliases=("champion",))
    package = reviewed(spec_of(v), 1, ApprovalStatus.APPROVED)
    model = SourceModel(MODEL, versions=(linked(v, arn(1), synced=ApprovalStatus.PENDING),))
    group = desired_group(model, SETTINGS)
    observed = ObservedGroup(group.name, group.description, (package,))
    plan = plan_model(model, group, observed, [spec_of(v)], SOURCE, pull_only=True)
    assert plan.actions == (LinkVersion(MODEL, "1", {TAG_SYNCED_APPROVAL: "Approved"}, stamp_approved=True),)


def test_a_model_that_cannot_be_read_is_recorded_on_its_versions_once() -> None:
    v1, v2 = version(1), replace(version(2), tags={TAG_SYNC_STATUS: "failed: denied"})
    plan = plan_unreadable(SourceModel(MODEL, versions=(v1, v2)), MODEL, "denied")
    assert plan.actions == (RecordProblem(MODEL, "1", "failed: denied"),)  # v2 says so already
    assert plan.unplanned == (Unplanned(MODEL, "denied"),)
    assert plan_unreadable(None, MODEL, "MLflow is down").actions == ()
    assert (plan + Plan()).to_dict()["unplanned"] == [{"model": MODEL, "error": "denied"}]


def test_metadata_stays_within_50_entries_beside_keys_added_by_hand() -> None:
    """Keys someone added in SageMaker are kept; mlsync drops its lowest-priority `param.*` keys instead."""
    v = version(1, params={f"p{i:02d}": str(i) for i in range(60)})
    spec = spec_of(v)
    assert len(spec.customer_metadata) == 48  # and two for what staging adds
    by_hand = {f"team.note{i}": "x" for i in range(5)}
    package = created(spec, 1, customer_metadata={**spec.customer_metadata, **by_hand})  # 53: as if merged
    (update,) = [a for a in plan_for([linked(v, arn(1))], [package]).actions if isinstance(a, UpdatePackage)]
    kept = {**package.customer_metadata, **update.change.metadata_set}
    kept = {k: v for k, v in kept.items() if k not in update.change.metadata_remove}
    assert len(kept) == 50 and all(key in kept for key in by_hand)
    dropped = set(spec.customer_metadata) - set(kept)
    params = sorted(k for k in spec.customer_metadata if k.startswith("param."))
    assert dropped == set(params[-3:])  # the last params in name order go first
    assert int(kept[KEY_OMITTED]) == int(spec.customer_metadata[KEY_OMITTED]) + 3
    settled = created(spec, 1, customer_metadata=kept)
    assert plan_for([linked(v, arn(1))], [settled]).actions == ()  # and it stays that way


def test_configured_metadata_keys_are_not_counted_as_keys_added_by_hand() -> None:
    """A `[metadata]` key mlsync wrote is desired, not foreign: a full budget stays as it is."""
    settings = replace(SETTINGS, metadata={"Algorithm": "param:algorithm"})
    v = version(1, params={"algorithm": "XGBoost", **{f"p{i:02d}": str(i) for i in range(60)}})
    model = SourceModel(MODEL, versions=(linked(v, arn(1)),))
    group = desired_group(model, settings)
    spec = desired_package(v, group.name, SOURCE, settings)
    assert spec.customer_metadata["Algorithm"] == "XGBoost" and len(spec.customer_metadata) == 48
    observed = ObservedGroup(group.name, group.description, (created(spec, 1),))
    actions = plan_model(model, group, observed, [spec], SOURCE).actions
    assert not [a for a in actions if isinstance(a, UpdatePackage)]  # (the tag's digest is another matter)


def test_a_group_description_changed_in_mlflow_later_is_drift_not_an_update() -> None:
    """Groups have no update API: the plan says so, and writes nothing for it."""
    v = version(1)
    model = SourceModel(
        MODEL, description="Model group for ML pipeline workshop", versions=(linked(v, arn(1)),)
    )
    group = desired_group(model, SETTINGS)
    assert group.description == "Model group for ML pipeline workshop"
    observed = ObservedGroup(group.name, "MLflow registered model churn", (created(spec_of(v), 1),))
    plan = plan_model(model, group, observed, [spec_of(v)], SOURCE)
    assert plan.actions == ()
    (drift,) = plan.drift
    assert (drift.field, drift.version) == ("ModelPackageGroupDescription", "")
    assert "Model group for ML pipeline workshop" in drift.detail


# --- model cards ------------------------------------------------------------------------------------

CARDED: dict[str, Any] = {"run_id": "r1", "params": {"depth": "3"}, "metrics": {"train_time": 12.0}}
"""A version with a run, so a card; its metric is not a model-quality one (no creation-only change)."""


def carded(number: int = 1, **fields: Any) -> SourceVersion:
    return version(number, **{**CARDED, **fields})


def moved_on(before: SourceVersion, **fields: Any) -> SourceVersion:
    """`before` as mlsync linked it, then changed in MLflow."""
    return replace(linked(before, arn(int(before.version))), **fields)


def the_update(plan: Plan) -> UpdatePackage:
    (update,) = [a for a in plan.actions if isinstance(a, UpdatePackage)]
    return update


def applied(package: ObservedPackage, update: UpdatePackage) -> ObservedPackage:
    """The package once SageMaker applied `update` (metadata merged, the card replaced)."""
    change = update.change
    metadata = {**package.customer_metadata, **change.metadata_set}
    return replace(
        package,
        approval=change.approval or package.approval,
        lifecycle=change.lifecycle or package.lifecycle,
        customer_metadata={k: v for k, v in metadata.items() if k not in change.metadata_remove},
        model_card=change.model_card or package.model_card,
    )


def test_an_unchanged_card_plans_nothing() -> None:
    v = carded()
    assert plan_for([linked(v, arn(1))], [created(spec_of(v), 1)]).is_empty


def test_a_run_changed_in_mlflow_rewrites_the_card_with_its_record_and_then_nothing() -> None:
    before = carded()
    package = created(spec_of(before), 1)
    after = moved_on(before, metrics={"train_time": 9.5})

    plan = plan_for([after], [package])

    update = the_update(plan)
    wanted = spec_of(after).model_card
    assert wanted is not None and update.change.model_card == wanted
    assert update.change.metadata_set == {
        "metric.train_time": "9.5",
        KEY_DOCUMENT: spec_of(after).run_document.s3_uri,
        KEY_MODEL_CARD: card_digest(wanted),
    }
    assert update.previous_card == package.model_card
    assert update.describe()["model_card"]["status"] == {"from": "PendingReview", "to": "PendingReview"}
    # The metric, and the run document that holds it.
    assert update.describe()["model_card"]["changed"] == ["additional_information", "evaluation_details"]
    assert update.describe()["model_card"]["content"] == wanted.sections
    assert update.text().endswith(
        "model card PendingReview -> PendingReview (additional_information, evaluation_details changed)"
    )
    assert plan.drift == ()
    (link,) = [a for a in plan.actions if isinstance(a, LinkVersion)]
    assert link.tags[TAG_SYNC_STATUS] == sync_status(spec_of(after))
    # Once applied, the next plan writes nothing.
    assert plan_for([linked(after, arn(1))], [applied(package, update)]).is_empty


def test_the_registered_models_description_reaches_every_versions_card() -> None:
    versions = [linked(carded(1), arn(1)), linked(carded(2), arn(2))]
    model = SourceModel(MODEL, description="Churn scoring", versions=tuple(versions))
    group = desired_group(model, SETTINGS)
    observed = ObservedGroup(
        group.name, group.description, tuple(created(spec_of(v), n) for n, v in enumerate(versions, 1))
    )
    desired = [desired_package(v, group.name, SOURCE, SETTINGS, model.description) for v in versions]

    plan = plan_model(model, group, observed, list(desired), SOURCE)

    updates = [a for a in plan.actions if isinstance(a, UpdatePackage)]
    assert [u.version for u in updates] == ["1", "2"]
    for update in updates:
        assert update.change.model_card is not None
        assert update.change.model_card.sections["intended_uses"] == {"purpose_of_model": "Churn scoring"}
        assert "intended_uses changed" in update.text()


def test_a_card_edited_in_sagemaker_is_left_and_reported_even_when_mlflow_changes() -> None:
    before = carded()
    mine = spec_of(before).model_card
    assert mine is not None
    edited = replace(mine, content=json.dumps({"intended_uses": {"intended_uses": "only for EU customers"}}))
    package = created(spec_of(before), 1, model_card=edited)

    unchanged = plan_for([linked(before, arn(1))], [package])
    assert not [a for a in unchanged.actions if isinstance(a, UpdatePackage)]
    (drift,) = unchanged.drift
    assert (drift.field, drift.arn) == ("ModelCard", arn(1))
    assert f"set the package's metadata {KEY_MODEL_CARD} to {card_digest(edited)}" in drift.detail
    (link,) = unchanged.actions
    assert isinstance(link, LinkVersion) and link.tags[TAG_SYNC_STATUS] == "synced with drift in ModelCard"

    changed = plan_for([moved_on(before, metrics={"train_time": 9.5})], [package])
    update = the_update(changed)
    assert update.change.model_card is None
    assert KEY_MODEL_CARD not in update.change.metadata_set  # the record stays that of mlsync's card
    assert update.change.metadata_set["metric.train_time"] == "9.5"
    assert [d.field for d in changed.drift] == ["ModelCard"]

    # Handed back to mlsync (its digest recorded, as the drift says): MLflow's card replaces it.
    handed_back = replace(
        package, customer_metadata={**package.customer_metadata, KEY_MODEL_CARD: card_digest(edited)}
    )
    assert the_update(plan_for([linked(before, arn(1))], [handed_back])).change.model_card == mine


def test_a_status_set_by_a_reviewer_is_an_edit_too() -> None:
    v = carded()
    mine = spec_of(v).model_card
    assert mine is not None
    package = created(spec_of(v), 1, model_card=replace(mine, status="Approved"))
    plan = plan_for([linked(v, arn(1))], [package])
    assert [d.field for d in plan.drift] == ["ModelCard"]
    assert not [a for a in plan.actions if isinstance(a, UpdatePackage)]


def test_a_package_without_a_card_gets_one_and_a_card_another_tool_wrote_is_left() -> None:
    v = carded()
    spec = spec_of(v)
    assert spec.model_card is not None
    unrecorded = {k: value for k, value in spec.customer_metadata.items() if k != KEY_MODEL_CARD}

    bare = created(spec, 1, model_card=None, customer_metadata=unrecorded)
    update = the_update(plan_for([linked(v, arn(1))], [bare]))
    assert update.change.model_card == spec.model_card
    assert update.change.metadata_set == {KEY_MODEL_CARD: card_digest(spec.model_card)}
    assert "model card - -> PendingReview" in update.text()

    foreign = created(
        spec, 1, model_card=ModelCard('{"intended_uses":{}}', "Draft"), customer_metadata=unrecorded
    )
    plan = plan_for([linked(v, arn(1))], [foreign])
    assert [d.field for d in plan.drift] == ["ModelCard"]
    assert not [a for a in plan.actions if isinstance(a, UpdatePackage)]


def test_an_approval_pushed_from_mlflow_moves_the_card_status_in_the_same_update() -> None:
    pending = carded()
    package = created(spec_of(pending), 1)
    promoted = moved_on(pending, stage="Production")

    update = the_update(plan_for([promoted], [package]))

    assert update.change.approval is ApprovalStatus.APPROVED
    card = update.change.model_card
    assert card is not None and card.status == "Approved"
    assert package.model_card is not None and card.content == package.model_card.content
    assert update.change.metadata_set == {KEY_MODEL_CARD: card_digest(card)}
    assert "model card PendingReview -> Approved" in update.text()


def test_a_review_pulled_from_sagemaker_moves_the_card_status_too() -> None:
    v = carded()
    package = created(spec_of(v), 1, approval=ApprovalStatus.APPROVED)  # a reviewer approved it
    plan = plan_for([linked(v, arn(1))], [package])
    assert "PullApproval" in kinds(plan)
    update = the_update(plan)
    assert update.change.approval is None
    assert update.change.model_card is not None and update.change.model_card.status == "Approved"


def test_trusted_packages_are_presumed_with_the_card_and_record_mlsync_left() -> None:
    v = linked(carded(stage="Production"), arn(1))
    spec = spec_of(v)
    summary = PackageSummary(arn(1), 1, ApprovalStatus.APPROVED, spec.lifecycle)

    presumed = trusted_packages([v], [spec], [summary])[arn(1)]

    assert spec.model_card is not None and presumed.model_card is not None
    assert presumed.model_card == replace(spec.model_card, status="Approved")
    assert presumed.customer_metadata[KEY_MODEL_CARD] == card_digest(presumed.model_card)
    plan = plan_for([v], [presumed])
    assert [a for a in plan.actions if isinstance(a, UpdatePackage)] == [] and plan.drift == ()


def test_the_sync_status_covers_the_cards_content_and_is_unchanged_without_a_card() -> None:
    assert sync_status(spec_of(carded())) != sync_status(spec_of(carded(params={"depth": "4"})))
    # Not its status, which follows approval as summaries carry it (see the trusted-package tests).
    assert sync_status(spec_of(carded())) == sync_status(spec_of(carded(stage="Production")))
    bare = spec_of(version(1, params={"depth": "3"}))
    assert bare.model_card is None
    assert sync_status(bare) == sync_status(spec_of(version(1, params={"depth": "3"}, stage="Production")))
    state = {  # the digest as it was before mlsync wrote cards
        "metadata": {k: v for k, v in bare.customer_metadata.items() if k != KEY_SERVER},
        "description": bare.description,
        "properties": dict(bare.metadata_properties),
        "statistics": None,
    }
    digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]
    assert sync_status(bare) == f"synced {digest}"


def test_an_approval_changed_in_mlflow_needs_no_describe_to_move_the_card_status() -> None:
    pending = carded()
    promoted = moved_on(pending, stage="Production")  # still linked as mlsync left it, while pending
    summary = PackageSummary(arn(1), 1, ApprovalStatus.PENDING, spec_of(pending).lifecycle)

    presumed = trusted_packages([promoted], [spec_of(promoted)], [summary])[arn(1)]

    update = the_update(plan_for([promoted], [presumed]))
    card = spec_of(pending).model_card
    assert card is not None
    assert update.change.approval is ApprovalStatus.APPROVED
    assert update.change.model_card == replace(card, status="Approved")


def test_a_review_pulled_without_the_card_has_the_card_set_right_by_the_next_push() -> None:
    """`mlsync pull` (and the Lambda handler) write only MLflow: the next push must not presume the card."""
    v = carded()
    package = created(spec_of(v), 1, approval=ApprovalStatus.APPROVED)  # a reviewer approved it
    model = SourceModel(MODEL, versions=(linked(v, arn(1)),))
    group = desired_group(model, SETTINGS)
    observed = ObservedGroup(group.name, group.description, (package,))
    (pull,) = plan_model(model, group, observed, [spec_of(v)], SOURCE, pull_only=True).actions
    assert isinstance(pull, PullApproval)
    assert pull.tags[TAG_SYNC_STATUS] == CARD_TO_FOLLOW  # written before the synced approval
    assert list(pull.tags)[-2:] == [TAG_SYNC_STATUS, TAG_SYNCED_APPROVAL]
    pulled = replace(linked(v, arn(1)), tags={**linked(v, arn(1)).tags, **pull.tags})
    summary = PackageSummary(arn(1), 1, ApprovalStatus.APPROVED, spec_of(v).lifecycle)

    assert trusted_packages([pulled], [spec_of(pulled)], [summary]) == {}  # described, not presumed
    plan = plan_for([pulled], [package])
    update = the_update(plan)
    assert update.change.model_card is not None and update.change.model_card.status == "Approved"
    (link,) = [a for a in plan.actions if isinstance(a, LinkVersion)]
    assert link.tags[TAG_SYNC_STATUS] == sync_status(spec_of(pulled))
    # A pull that needs no card change leaves the sync status alone.
    no_card = created(spec_of(version(1)), 1, approval=ApprovalStatus.APPROVED)
    bare = linked(version(1), arn(1))
    model = SourceModel(MODEL, versions=(bare,))
    observed = ObservedGroup(group.name, group.description, (no_card,))
    (pull,) = plan_model(model, group, observed, [spec_of(bare)], SOURCE, pull_only=True).actions
    assert isinstance(pull, PullApproval) and TAG_SYNC_STATUS not in pull.tags


def test_a_retired_version_s_card_follows_its_rejection() -> None:
    v = carded()
    package = created(spec_of(v), 2)
    (update,) = retire_actions(MODEL, [package], SOURCE, lambda number: True, delete=False)
    assert isinstance(update, UpdatePackage)
    assert update.change.approval is ApprovalStatus.REJECTED
    card = update.change.model_card
    assert card is not None and card.status == "Draft"
    assert update.change.metadata_set == {KEY_MODEL_CARD: card_digest(card)}


# -- the group's resource policy (share_with) -------------------------------------------------------------

POLICY_GROUP_ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/churn"
SHARED = ("222233334444", "111122223333")


def policy_actions(accounts: tuple[str, ...], held: str | None, recorded: str = "none") -> tuple[Any, ...]:
    return plan_group_policy("churn", "churn", POLICY_GROUP_ARN, accounts, held, recorded)


def test_sharing_a_group_puts_its_policy_and_records_it() -> None:
    (put,) = policy_actions(SHARED, None)

    assert isinstance(put, PutGroupPolicy) and put.write
    assert put.accounts == ("111122223333", "222233334444")
    assert put.policy == merged_policy("churn", None, own_statements(POLICY_GROUP_ARN, SHARED))
    assert put.record == policy_record(own_statements(POLICY_GROUP_ARN, SHARED))
    assert put.describe()["action"] == "put-group-policy" and put.version == ""
    assert put.text() == "~ policy  churn: share with 111122223333, 222233334444"


def test_a_change_of_share_with_updates_the_policy() -> None:
    held = merged_policy("churn", None, own_statements(POLICY_GROUP_ARN, SHARED[:1]))

    (put,) = policy_actions(SHARED, held, policy_record(own_statements(POLICY_GROUP_ARN, SHARED[:1])))

    assert isinstance(put, PutGroupPolicy) and put.write and len(put.accounts) == 2


def test_an_emptied_share_with_deletes_a_policy_that_was_only_mlsyncs() -> None:
    held = merged_policy("churn", None, own_statements(POLICY_GROUP_ARN, SHARED))

    (delete,) = policy_actions((), held, "sha256:old")

    assert isinstance(delete, DeleteGroupPolicy) and delete.write and delete.record == "none"
    assert delete.text() == "- policy  churn: shared with no account"


def test_statements_someone_else_wrote_are_kept_through_every_change() -> None:
    theirs = {"Sid": "AuditRead", "Effect": "Allow", "Action": "sagemaker:DescribeModelPackageGroup"}
    held = json.dumps({"Version": "2012-10-17", "Statement": [theirs]})

    (put,) = policy_actions(SHARED, held)
    assert json.loads(put.policy)["Statement"][0] == theirs

    (emptied,) = policy_actions((), put.policy, put.record)
    assert isinstance(emptied, PutGroupPolicy) and json.loads(emptied.policy)["Statement"] == [theirs]
    assert "others' statements kept" in emptied.text()
    assert policy_actions((), held) == ()  # never shared by mlsync: their policy is not touched


def test_nothing_is_planned_when_the_policy_and_its_record_are_current() -> None:
    own = own_statements(POLICY_GROUP_ARN, SHARED)
    held = json.dumps({"Statement": list(reversed(own)), "Version": "2012-10-17"}, indent=1)

    assert policy_actions(SHARED, held, policy_record(own)) == ()
    assert policy_actions((), None) == ()
    # SageMaker has it, only the record is behind (a run stopped between the two writes): record only.
    (record,) = policy_actions(SHARED, held)
    assert isinstance(record, PutGroupPolicy) and not record.write
    (gone,) = policy_actions((), None, policy_record(own))
    assert isinstance(gone, DeleteGroupPolicy) and not gone.write
