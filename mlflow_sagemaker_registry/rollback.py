"""Pure: plan `mlsync rollback`, going back from the deployed version of a model to an earlier one.

SageMaker's deploy templates deploy "the latest Approved" package
(`ListModelPackages(ModelApprovalStatus=Approved, SortBy=CreationTime, SortOrder=Descending)`), so a
rollback must leave the target the newest Approved package of its group:

1. the target is approved (first, so that a pipeline reacting to each change never sees no Approved
   package at all), then every Approved package newer than the target is rejected, oldest first and the
   deployed one last, so that the newest Approved package is never one in between; each with the reason;
   The model card of each (when it is mlsync's, `model_card.status_update`) follows its approval in the
   same update;
2. MLflow follows, so that the next reconcile agrees and writes nothing: the rejected versions get the
   approval tag `Rejected`, the approval aliases of the mapping (`champion` by default) on them move to
   the target, and the target gets the approval tag `Approved` only if its aliases and stage would not
   give `Approved` anyway; every touched version records its synced approval.

The default target is "the version approved before it", from mlsync's own record: each version's
`mlsync.approved_at` (the time mlsync last saw it become Approved). Versions whose approval tag says
`Rejected` (rolled back before, or rejected by a reviewer) are never a default target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .actions import Action, LinkVersion, MoveAlias, UpdatePackage
from .config import ApprovalRules
from .domain import ApprovalStatus, ObservedPackage, PackageUpdate, SourceModel, SourceVersion
from .errors import MappingError, RollbackError
from .mapping.approval import decide_approval
from .mapping.limits import MAX_APPROVAL_DESCRIPTION
from .mapping.model_card import KEY_MODEL_CARD, status_update
from .mapping.tags import (
    MAX_TAG_VALUE,
    TAG_APPROVED_AT,
    TAG_REVIEW_BY,
    TAG_REVIEW_DESCRIPTION,
    TAG_REVIEW_TIME,
    TAG_SYNC_STATUS,
    TAG_SYNCED_APPROVAL,
)
from .planner import CARD_TO_FOLLOW, Plan


def plan_rollback(
    model: SourceModel,
    packages: Mapping[str, ObservedPackage],
    rules: ApprovalRules,
    *,
    to: str | None = None,
    reason: str = "",
    sync_statuses: Mapping[str, str] | None = None,
) -> Plan:
    """The plan that makes `to` (default: the version approved before the deployed one) deployable.

    Args:
        model: the registered model as MLflow has it.
        packages: the package of each mirrored version, by MLflow version.
        rules: the approval mapping (which tag, which aliases mean Approved).
        to: the MLflow version to go back to.
        reason: why, recorded on every package it changes and on the MLflow versions.
        sync_statuses: the sync status a push would record, by MLflow version. A version a pull left
            marked `CARD_TO_FOLLOW` gets it: the rollback moves the card's status with the approval.

    Raises:
        RollbackError: nothing is deployed, the target is unknown or not mirrored, or none is recorded.
    """
    versions = {v.version: v for v in model.versions if v.version in packages}
    approved = sorted(
        (v for v in versions if packages[v].approval is ApprovalStatus.APPROVED),
        key=lambda v: packages[v].package_version,
    )
    if not approved:
        raise RollbackError(
            f"model {model.name!r} has no Approved package, so nothing is deployed to roll back from; "
            "approve one with `mlsync push` or in SageMaker"
        )
    current = approved[-1]
    target = _target(model.name, versions, current, rules, to)
    rejected = [
        v for v in approved if v == current or packages[v].package_version > packages[target].package_version
    ]
    why = " ".join(reason.split()) or "rolled back"  # ApprovalDescription allows no line breaks
    moved = [
        (alias, number)
        for number in rejected
        for alias in versions[number].aliases
        if rules.aliases.get(alias) is ApprovalStatus.APPROVED
    ]
    reasons = {number: f"mlsync rollback to version {target}: {why}" for number in rejected}
    reasons[target] = f"mlsync rollback from version {current}: {why}"
    after = {number: _rejected(versions[number], rules, moved, reasons[number]) for number in rejected}
    after[target] = _approved(versions[target], rules, [alias for alias, _ in moved], reasons[target])
    updates: list[Action] = [_update(packages[target], after[target], rules, reasons[target])]
    updates += [
        dataclasses.replace(_update(packages[n], after[n], rules, reasons[n]), after=target) for n in rejected
    ]
    mlflow: list[Action] = [MoveAlias(model.name, target, alias, number) for alias, number in moved]
    for number, version in after.items():
        tags = {key: value for key, value in version.tags.items() if versions[number].tags.get(key) != value}
        if versions[number].tags.get(TAG_SYNC_STATUS) == CARD_TO_FOLLOW and number in (sync_statuses or {}):
            tags[TAG_SYNC_STATUS] = (sync_statuses or {})[number]
        mlflow.append(LinkVersion(model.name, number, tags, stamp_approved=number == target))
    return Plan(tuple(updates + mlflow))


def _target(
    name: str, versions: Mapping[str, SourceVersion], current: str, rules: ApprovalRules, to: str | None
) -> str:
    if to is not None:
        if to not in versions:
            raise RollbackError(
                f"model {name!r} version {to} has no SageMaker package to roll back to; push it first or "
                f"choose another --to (mirrored versions: {', '.join(sorted(versions, key=int))})"
            )
        if to == current:
            raise RollbackError(
                f"model {name!r} version {to} is already the deployed (newest Approved) version"
            )
        return to
    deployed_at = versions[current].tags.get(TAG_APPROVED_AT)
    candidates = [
        (version.tags[TAG_APPROVED_AT], number)
        for number, version in versions.items()
        if number != current
        and TAG_APPROVED_AT in version.tags
        and (deployed_at is None or version.tags[TAG_APPROVED_AT] <= deployed_at)
        and version.tags.get(rules.tag, "").strip().lower() != ApprovalStatus.REJECTED.value.lower()
    ]
    if not candidates:
        raise RollbackError(
            f"model {name!r}: mlsync has no record of a version approved before version {current}; "
            "name the version to go back to with --to VERSION"
        )
    return max(candidates)[1]


def _rejected(
    version: SourceVersion, rules: ApprovalRules, moved: list[tuple[str, str]], reason: str
) -> SourceVersion:
    """The MLflow version once rolled back: approval tag Rejected, its approval aliases moved away."""
    gone = {alias for alias, number in moved if number == version.version}
    aliases = tuple(a for a in version.aliases if a not in gone)
    tags = _reviewed(version, reason) | {rules.tag: ApprovalStatus.REJECTED.value}
    return dataclasses.replace(version, aliases=aliases, tags=_synced(tags, ApprovalStatus.REJECTED))


def _approved(version: SourceVersion, rules: ApprovalRules, aliases: list[str], reason: str) -> SourceVersion:
    """The target once rolled back to: the moved aliases, and the approval tag only if still needed."""
    moved = dataclasses.replace(version, aliases=tuple(sorted({*version.aliases, *aliases})))
    tags = _reviewed(moved, reason)
    try:
        needs_tag = decide_approval(moved, rules).status is not ApprovalStatus.APPROVED
    except MappingError:  # an approval tag that is no status: replaced by one that is
        needs_tag = True
    if needs_tag:
        tags[rules.tag] = ApprovalStatus.APPROVED.value
    return dataclasses.replace(moved, tags=_synced(tags, ApprovalStatus.APPROVED))


def _reviewed(version: SourceVersion, reason: str) -> dict[str, str]:
    """The version's tags with the rollback as its last review (an earlier author and time blanked)."""
    tags = {
        key: "" if key in (TAG_REVIEW_BY, TAG_REVIEW_TIME) else value for key, value in version.tags.items()
    }
    return tags | {TAG_REVIEW_DESCRIPTION: reason[:MAX_TAG_VALUE]}


def _synced(tags: dict[str, str], status: ApprovalStatus) -> dict[str, str]:
    """Tags with the synced approval last, so that it is written after the approval tag."""
    return {key: value for key, value in tags.items() if key != TAG_SYNCED_APPROVAL} | {
        TAG_SYNCED_APPROVAL: status.value
    }


def _update(
    package: ObservedPackage, after: SourceVersion, rules: ApprovalRules, reason: str
) -> UpdatePackage:
    """Set the package's approval to what `after` maps to, with the lifecycle that goes with it."""
    decision = decide_approval(after, rules)
    record = package.customer_metadata.get(KEY_MODEL_CARD)
    card, card_record = status_update(package.model_card, record, decision.status)
    change = PackageUpdate(
        approval=decision.status,
        approval_reason=reason[:MAX_APPROVAL_DESCRIPTION],
        lifecycle=decision.lifecycle if decision.lifecycle != package.lifecycle else None,
        metadata_set=card_record,
        model_card=card,
    )
    previous_card = package.model_card if card else None
    return UpdatePackage(
        package.arn, after.model_name, after.version, change, package.approval, previous_card=previous_card
    )
