"""Pure planning: desired packages vs what SageMaker holds -> a `Plan` of actions.

Like octodns' plan: no I/O here, a deterministic order (groups, then each model's versions in version
order), an empty plan when everything is in sync, a JSON form and checksum for review, and a safety
check that refuses to change the approval of many existing packages at once unless forced.

A package belongs to an MLflow version by the identity in its metadata (source registry, model,
version), so a package created by a run that crashed before tagging MLflow is adopted, never duplicated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .actions import (
    Action,
    CreateGroup,
    CreatePackage,
    DeleteGroupPolicy,
    DeletePackage,
    LinkVersion,
    PullApproval,
    PutGroupPolicy,
    RecordProblem,
    UpdatePackage,
)
from .approval_merge import MLFLOW, ApprovalMerge, Outcome, merge_approval
from .domain import (
    ApprovalStatus,
    GroupSpec,
    ModelCard,
    ObservedGroup,
    ObservedPackage,
    PackageSpec,
    PackageSummary,
    PackageUpdate,
    SourceModel,
    SourceVersion,
)
from .errors import MappingError, UnsafePlanError
from .mapping import sync_status
from .mapping.algorithm import held_entries
from .mapping.approval import lifecycle_for
from .mapping.identity import KEY_SERVER, identity_key, identity_of
from .mapping.limits import MAX_APPROVAL_DESCRIPTION
from .mapping.metadata import KEY_DOCUMENT, owned_keys, within_budget
from .mapping.model_card import (
    KEY_MODEL_CARD,
    CardAction,
    card_action,
    card_digest,
    card_status,
    status_update,
)
from .mapping.sharing import merged_policy, own_statements, policy_record, same_policy
from .mapping.tags import (
    MAX_TAG_VALUE,
    SYNCED,
    TAG_APPROVAL_CONFLICT,
    TAG_PACKAGE_ARN,
    TAG_REVIEW_BY,
    TAG_REVIEW_DESCRIPTION,
    TAG_REVIEW_TIME,
    TAG_SYNC_STATUS,
    TAG_SYNCED_APPROVAL,
)

DEFAULT_APPROVAL_TAG = "sagemaker.approval"
DEFAULT_CONFLICTS = "sagemaker"


@dataclass(frozen=True)
class Drift:
    """A difference SageMaker cannot update in place (creation-only fields, duplicates), or that mlsync
    must not overwrite (a model card someone edited in SageMaker): reported only."""

    model_name: str
    version: str
    arn: str
    field: str
    detail: str

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "version": self.version,
            "arn": self.arn,
            "field": self.field,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Conflict:
    """MLflow and SageMaker both changed a version's approval since the last sync, to different values.

    `winner` is the side `approval_conflicts` chose; the conflict is also recorded on the MLflow version
    (`mlsync.approval_conflict`).
    """

    model_name: str
    version: str
    arn: str
    base: ApprovalStatus | None
    mlflow: ApprovalStatus
    sagemaker: ApprovalStatus
    winner: str

    @property
    def message(self) -> str:
        """The record written on the MLflow version, and the line `plan` and `status` print."""
        kept = self.mlflow if self.winner == MLFLOW else self.sagemaker
        return (
            f"both sides changed since the last sync ({_value(self.base)}): MLflow wants "
            f"{self.mlflow.value}, SageMaker has {self.sagemaker.value}; "
            f"approval_conflicts = {self.winner} keeps {kept.value}"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "version": self.version,
            "arn": self.arn,
            "base": _value(self.base),
            "mlflow": self.mlflow.value,
            "sagemaker": self.sagemaker.value,
            "winner": self.winner,
        }


@dataclass(frozen=True)
class Unplanned:
    """A model that could not be planned: reading it from MLflow or SageMaker failed.

    The other models are planned and applied as usual; the failure is recorded on this model's versions
    (when they could be read) and reported, and the next reconcile tries again.
    """

    model_name: str
    message: str

    def describe(self) -> dict[str, Any]:
        return {"model": self.model_name, "error": self.message}


@dataclass(frozen=True)
class Plan:
    """What a push would do, in the order it would do it."""

    actions: tuple[Action, ...] = ()
    drift: tuple[Drift, ...] = ()
    problems: tuple[MappingError, ...] = ()
    matched: tuple[tuple[str, str, str], ...] = ()
    """(model, version, package ARN) of every version that already has its package."""
    conflicts: tuple[Conflict, ...] = ()
    unplanned: tuple[Unplanned, ...] = ()

    def __add__(self, other: Plan) -> Plan:
        # Groups first: a model's packages need its group, and a group-only model plans nothing else.
        groups = [a for a in (*self.actions, *other.actions) if not a.version]
        rest = [a for a in (*self.actions, *other.actions) if a.version]
        return Plan(
            actions=(*groups, *rest),
            drift=(*self.drift, *other.drift),
            problems=(*self.problems, *other.problems),
            matched=(*self.matched, *other.matched),
            conflicts=(*self.conflicts, *other.conflicts),
            unplanned=(*self.unplanned, *other.unplanned),
        )

    @property
    def existing(self) -> int:
        """How many versions already have their package (the base of the safety threshold)."""
        return len(self.matched)

    @property
    def is_empty(self) -> bool:
        """True when a push would write nothing."""
        return not self.actions

    @property
    def approval_changes(self) -> int:
        """How many existing packages would change approval."""
        return sum(1 for a in self.actions if a.changes_approval)

    def check_safety(self, min_existing: int, max_fraction: float, force: bool = False) -> None:
        """Refuse a plan that changes the approval of more than `max_fraction` of the existing packages.

        Only applies once at least `min_existing` packages exist, like octodns' update threshold: a
        wrong mapping rule or alias should not flip a whole registry's deployments in one push.

        Raises:
            UnsafePlanError: unless `force`.
        """
        changes = self.approval_changes
        if force or self.existing < min_existing or changes == 0:
            return
        # `changes / existing`, not `max_fraction * existing`: 0.29 * 100 is 28.999..., which would refuse
        # 29 changes of 100 at a 29% threshold.
        if self.existing and changes / self.existing <= max_fraction:
            return
        raise UnsafePlanError(
            f"this plan changes the approval of {changes} of {self.existing} existing model packages "
            f"(more than {max_fraction:.0%}); review it with `mlsync plan` and rerun with --force"
        )

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data (what `--output json` prints)."""
        return {
            "actions": [a.describe() for a in self.actions],
            "drift": [d.describe() for d in self.drift],
            "problems": [
                {"model": p.model_name, "version": p.version, "problem": p.problem, "fix": p.fix}
                for p in self.problems
            ],
            "conflicts": [c.describe() for c in self.conflicts],
            "unplanned": [u.describe() for u in self.unplanned],
            "existing_packages": self.existing,
        }

    def checksum(self) -> str:
        """A sha256 of the plan's JSON, so exactly the reviewed plan can be asked for."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def plan_model(
    model: SourceModel,
    group: GroupSpec,
    observed: ObservedGroup | None,
    desired: Sequence[PackageSpec | MappingError],
    source_id: str,
    *,
    approval_tag: str = DEFAULT_APPROVAL_TAG,
    conflicts: str = DEFAULT_CONFLICTS,
    pull_only: bool = False,
    prune: str | None = None,
) -> Plan:
    """Plan one registered model: `desired[i]` is the mapping of `model.versions[i]` (or why it failed).

    Approval is merged three ways (approval_merge.py); `conflicts` is the `approval_conflicts` policy and
    `approval_tag` the MLflow tag a pull writes. With `pull_only` (`mlsync pull`) the plan writes only
    MLflow: the pulls of SageMaker-side approval changes and the record of approvals both sides agree on.

    With `prune` (`reject` or `delete`, the `on_delete` setting), the packages of versions deleted in
    MLflow are retired too (`retire_actions`).
    """
    packages = observed.packages if observed else ()
    actions: list[Action] = [] if observed or pull_only else [CreateGroup(group)]
    drift: list[Drift] = []
    if observed is not None and observed.description != group.description and not pull_only:
        # Groups have no update API: a description changed in MLflow after the group was made stays.
        detail = (
            f"MLflow now gives {group.description!r}, the group was created with {observed.description!r}"
        )
        drift.append(Drift(model.name, "", observed.name, "ModelPackageGroupDescription", detail))
    problems: list[MappingError] = []
    matched: list[tuple[str, str, str]] = []
    found: list[Conflict] = []
    for version, spec in zip(model.versions, desired, strict=True):
        if isinstance(spec, MappingError):
            problems.append(spec)
            status = f"failed: {spec}"[:MAX_TAG_VALUE]
            if version.tags.get(TAG_SYNC_STATUS) != status and not pull_only:
                actions.append(RecordProblem(version.model_name, version.version, status))
            continue
        matches = _matches(version, packages, source_id)
        if not matches:
            if not pull_only:
                actions.append(CreatePackage(spec))
            continue
        package = matches[0]
        matched.append((version.model_name, version.version, package.arn))
        merge = merge_approval(
            spec.approval, spec.lifecycle, package.approval, synced_approval(version), conflicts
        )
        conflict = _conflict(spec, package, merge, conflicts)
        found.extend([conflict] if conflict else [])
        pull = _pull(version, spec, package, merge, approval_tag, conflict, pull_only)
        if pull_only:
            if pull is not None:
                actions.append(pull)
            elif merge.outcome is Outcome.IN_SYNC and merge.base is not merge.result:
                # Both sides agree on a value the record does not hold yet: record it, or a later change
                # of either side would be measured against a stale base.
                synced = _card_to_follow(package, merge) | {TAG_SYNCED_APPROVAL: merge.result.value}
                actions.append(
                    LinkVersion(version.model_name, version.version, synced, _becomes_approved(merge))
                )
            continue
        version_drift = [
            Drift(
                version.model_name,
                version.version,
                extra.arn,
                "duplicate",
                f"also mirrored as {package.arn}; delete the extra package",
            )
            for extra in matches[1:]
        ]
        version_drift.extend(_drift(spec, package))
        version_drift.extend(_card_drift(spec, package, merge))
        drift.extend(version_drift)
        update = _update(spec, package, merge)
        actions.extend(action for action in (pull, update) if action is not None)
        link = {TAG_PACKAGE_ARN: package.arn, TAG_SYNC_STATUS: _link_status(spec, version_drift)}
        if pull is None:
            # After a pull the synced approval is the pull's to write, after the approval tag.
            link |= _conflict_tags(conflict) | {TAG_SYNCED_APPROVAL: merge.result.value}
        if any(version.tags.get(k) != v for k, v in link.items()):
            stamp = pull is None and _becomes_approved(merge)
            actions.append(LinkVersion(version.model_name, version.version, link, stamp))
    if prune is not None and not pull_only:
        existing = {v.version for v in model.versions} | set(model.registering)
        actions += retire_actions(
            model.name, packages, source_id, lambda v: v not in existing, prune == "delete"
        )
    return Plan(tuple(actions), tuple(drift), tuple(problems), tuple(matched), tuple(found))


def plan_group_policy(
    model_name: str,
    group_name: str,
    group_arn: str,
    accounts: tuple[str, ...],
    held: str | None,
    recorded: str,
) -> tuple[Action, ...]:
    """The group's resource policy: mlsync's sharing statements for `accounts` merged into the `held`
    policy (others' statements kept), written when it grants something else than what is held
    (compared normalised, not as text), deleted when nothing is left; `recorded` is the record of what
    mlsync last wrote, brought up to date when only it is behind.

    Raises:
        MappingError: the held policy cannot be merged into, or the merged one is too long.
    """
    own = own_statements(group_arn, accounts)
    record = policy_record(own)
    desired = merged_policy(model_name, held, own)
    write = not same_policy(desired, held)
    if not write and recorded == record:
        return ()
    if desired is None:
        return (DeleteGroupPolicy(model_name, group_name, record, write),)
    return (PutGroupPolicy(model_name, group_name, desired, tuple(sorted(set(accounts))), record, write),)


RETIRED_REASON = "mlsync: the MLflow version was deleted"


def retire_actions(
    model_name: str,
    packages: Sequence[ObservedPackage],
    source_id: str,
    gone: Callable[[str], bool],
    delete: bool,
) -> list[Action]:
    """Retire the packages this registry mirrored from versions of `model_name` that `gone` says were
    deleted in MLflow: Rejected and kept as history (packages already Rejected are left alone), or
    deleted with `on_delete = "delete"`. Packages of another registry or model are never touched."""
    model_key = identity_key(source_id, model_name, "")[:2]
    actions: list[Action] = []
    for package in packages:
        identity = identity_of(package.customer_metadata)
        if identity is None or identity[:2] != model_key or not gone(identity[2]):
            continue
        if delete:
            actions.append(DeletePackage(package.arn, model_name, identity[2]))
        elif package.approval is not ApprovalStatus.REJECTED:
            # The lifecycle's status and the model card's follow.
            lifecycle = lifecycle_for(package.lifecycle, ApprovalStatus.REJECTED)
            record = package.customer_metadata.get(KEY_MODEL_CARD)
            card, card_record = status_update(package.model_card, record, ApprovalStatus.REJECTED)
            change = PackageUpdate(
                ApprovalStatus.REJECTED, RETIRED_REASON, lifecycle, card_record, model_card=card
            )
            previous_card = package.model_card if card else None
            actions.append(
                UpdatePackage(
                    package.arn,
                    model_name,
                    identity[2],
                    change,
                    package.approval,
                    previous_card=previous_card,
                )
            )
    return actions


def plan_unreadable(model: SourceModel | None, name: str, message: str) -> Plan:
    """The plan for a model whose reading failed: the failure, recorded on its versions when known.

    Recorded only where the tag does not already say so, so a lasting failure (access denied for one
    group) writes once, not on every reconcile.
    """
    status = f"failed: {message}"[:MAX_TAG_VALUE]
    versions = model.versions if model is not None else ()
    actions = tuple(
        RecordProblem(v.model_name, v.version, status)
        for v in versions
        if v.tags.get(TAG_SYNC_STATUS) != status
    )
    return Plan(actions=actions, unplanned=(Unplanned(name, message),))


def synced_approval(version: SourceVersion) -> ApprovalStatus | None:
    """The approval recorded at the version's last sync (the merge's base); None when there is none."""
    try:
        return ApprovalStatus(version.tags.get(TAG_SYNCED_APPROVAL, ""))
    except ValueError:
        return None


def _becomes_approved(merge: ApprovalMerge) -> bool:
    return merge.result is ApprovalStatus.APPROVED and merge.base is not ApprovalStatus.APPROVED


def _conflict(
    spec: PackageSpec, package: ObservedPackage, merge: ApprovalMerge, policy: str
) -> Conflict | None:
    if not merge.conflict:
        return None
    return Conflict(
        spec.model_name, spec.version, package.arn, merge.base, merge.mlflow, merge.sagemaker, policy
    )


def _conflict_tags(conflict: Conflict | None) -> dict[str, str]:
    return {TAG_APPROVAL_CONFLICT: conflict.message[:MAX_TAG_VALUE]} if conflict else {}


def _pull(
    version: SourceVersion,
    spec: PackageSpec,
    package: ObservedPackage,
    merge: ApprovalMerge,
    approval_tag: str,
    conflict: Conflict | None,
    pull_only: bool,
) -> PullApproval | None:
    """The MLflow tags that record a SageMaker-side approval change, or None when there is none.

    The review's description, author and time are written when SageMaker reports them; a tag left from
    an earlier review is blanked rather than left to describe this one. A pull that writes only MLflow
    leaves the model card's status to the next push (`_card_to_follow`).
    """
    if merge.outcome is not Outcome.PULL:
        return None
    review = {
        TAG_REVIEW_DESCRIPTION: package.approval_description,
        TAG_REVIEW_BY: package.modified_by or "",
        TAG_REVIEW_TIME: package.modified_time or "",
    }
    tags = {approval_tag: merge.result.value}
    tags |= {k: v[:MAX_TAG_VALUE] for k, v in review.items() if v or k in version.tags}
    follow = _card_to_follow(package, merge) if pull_only else {}
    tags |= _conflict_tags(conflict) | follow | {TAG_SYNCED_APPROVAL: merge.result.value}
    return PullApproval(
        version.model_name,
        version.version,
        package.arn,
        merge.result,
        spec.approval,
        tags,
        _becomes_approved(merge),
        package.modified_by or "",
    )


CARD_TO_FOLLOW = f"{SYNCED} but for the model card's status"
"""The sync status a pull that writes only MLflow leaves when the card's status must follow the pulled
approval: unlike any digest, so the next push describes the package and moves the card's status."""


def _card_to_follow(package: ObservedPackage, merge: ApprovalMerge) -> dict[str, str]:
    """The sync-status tag that makes the next push describe the package, when its card (mlsync's) has
    a status the merged approval no longer gives and this plan does not write it; else nothing."""
    record = package.customer_metadata.get(KEY_MODEL_CARD)
    card, _ = status_update(package.model_card, record, merge.result)
    return {TAG_SYNC_STATUS: CARD_TO_FOLLOW} if card else {}


def _link_status(spec: PackageSpec, drift: Sequence[Drift]) -> str:
    """`sync_status(spec)` when the package matches MLflow; a drifted one is never presumed in sync."""
    if not drift:
        return sync_status(spec)
    return f"{SYNCED} with drift in {', '.join(sorted({d.field for d in drift}))}"


def trusted_packages(
    versions: Sequence[SourceVersion],
    desired: Sequence[PackageSpec | MappingError],
    summaries: Sequence[PackageSummary],
) -> dict[str, ObservedPackage]:
    """The packages whose last mirror is still current, presumed from their summaries (by ARN).

    A version's tags name its package and the `sync_status` of what was mirrored; while that status
    equals what the mapping gives now, only approval and lifecycle (which the summary carries) can have
    changed, so DescribeModelPackage is not needed; the model card's status is presumed to follow that
    approval (a pull that leaves it behind marks the version: `CARD_TO_FOLLOW`). Hand edits of such a
    package's metadata in SageMaker are not seen until the MLflow side changes (docs/architecture.md).
    """
    by_arn = {summary.arn: summary for summary in summaries}
    trusted: dict[str, ObservedPackage] = {}
    for version, spec in zip(versions, desired, strict=True):
        summary = by_arn.get(version.tags.get(TAG_PACKAGE_ARN, ""))
        if isinstance(spec, MappingError) or summary is None:
            continue
        if version.tags.get(TAG_SYNC_STATUS) != sync_status(spec):
            continue
        # A package whose approval moved since the last sync may be pulled: the pull needs the review's
        # description, author and time, which only DescribeModelPackage reports.
        if synced_approval(version) is not summary.approval:
            continue
        # The card as mlsync wrote it: its status followed the approval synced, and so did its record.
        card = _card_following(spec, summary.approval)
        metadata = {**spec.customer_metadata, **({KEY_MODEL_CARD: card_digest(card)} if card else {})}
        trusted[summary.arn] = ObservedPackage(
            arn=summary.arn,
            group_name=spec.group_name,
            package_version=summary.package_version,
            approval=summary.approval,
            lifecycle=summary.lifecycle,
            customer_metadata=metadata,
            description=spec.description,
            metadata_properties=spec.metadata_properties,
            quality_statistics_digest=spec.quality_statistics.digest if spec.quality_statistics else None,
            status=summary.status,
            model_card=card,
        )
    return trusted


def _matches(
    version: SourceVersion, packages: Sequence[ObservedPackage], source_id: str
) -> list[ObservedPackage]:
    """Packages of this version: by metadata identity, else by the version's ARN tag.

    The ARN tag (written only by mlsync, or by SageMaker's own auto-registration) adopts a package that
    has no mlsync identity, or whose identity names this model and version under another name of the
    registry: a plugin on the tracking server knows the registry by its database URI, a client by the
    server's URL, and both must find the one package of the version.
    """
    key = identity_key(source_id, version.model_name, version.version)
    found = [p for p in packages if identity_of(p.customer_metadata) == key]
    if not found:
        tagged = version.tags.get(TAG_PACKAGE_ARN, "").lower()
        found = [p for p in packages if p.arn.lower() == tagged and _same_version(p, key)]
    return sorted(found, key=lambda p: p.package_version)


def _same_version(package: ObservedPackage, key: tuple[str, str, str]) -> bool:
    identity = identity_of(package.customer_metadata)
    return identity is None or identity[1:] == key[1:]


def _update(spec: PackageSpec, package: ObservedPackage, merge: ApprovalMerge) -> UpdatePackage | None:
    approval = merge.result if merge.result != package.approval else None
    held = package.customer_metadata
    # What staging added (the flavor) stays: the model's files, so its flavor, never change.
    desired = {**spec.customer_metadata, **held_entries(held, spec.staged_keys)}
    card, action = _card(spec, package, merge)
    # The card's record changes only with the card: a card mlsync leaves keeps the record it has.
    desired.pop(KEY_MODEL_CARD, None)
    if card is not None and action in (CardAction.WRITE, CardAction.IN_SYNC):
        desired[KEY_MODEL_CARD] = card_digest(card)
    elif KEY_MODEL_CARD in held:
        desired[KEY_MODEL_CARD] = held[KEY_MODEL_CARD]
    # Keys someone else added count against the budget; a configured key mlsync wrote is not theirs.
    foreign = set(held) - set(owned_keys(held)) - set(desired)
    wanted = within_budget(desired, foreign=len(foreign))
    change = PackageUpdate(
        approval=approval,
        approval_reason=_reason(spec, merge) if approval else "",
        lifecycle=merge.lifecycle if merge.lifecycle not in (None, package.lifecycle) else None,
        # The source id a package was created with stays: the same registry may be known by two names.
        metadata_set={
            k: v for k, v in wanted.items() if held.get(k) != v and not (k == KEY_SERVER and k in held)
        },
        metadata_remove=tuple(k for k in owned_keys(held) if k not in wanted),
        model_card=card if action is CardAction.WRITE else None,
    )
    if change.is_empty:
        return None
    return UpdatePackage(
        arn=package.arn,
        model_name=spec.model_name,
        version=spec.version,
        change=change,
        previous_approval=package.approval if approval else None,
        documents=(spec.run_document,) if KEY_DOCUMENT in change.metadata_set else (),
        previous_card=package.model_card if change.model_card else None,
    )


def _card(
    spec: PackageSpec, package: ObservedPackage, merge: ApprovalMerge
) -> tuple[ModelCard | None, CardAction]:
    """MLflow's card as it is to be after this plan (its status follows the merged approval), and what
    becomes of the package's (`card_action`: a card someone else edited is never replaced)."""
    card = _card_following(spec, merge.result)
    return card, card_action(card, package.model_card, package.customer_metadata.get(KEY_MODEL_CARD))


def _card_following(spec: PackageSpec, approval: ApprovalStatus) -> ModelCard | None:
    """MLflow's card with its status following `approval` (the merged one, or the one last synced)."""
    return replace(spec.model_card, status=card_status(approval)) if spec.model_card else None


def _card_drift(spec: PackageSpec, package: ObservedPackage, merge: ApprovalMerge) -> list[Drift]:
    """The card someone else wrote or edited, which mlsync leaves, and how to hand it back to mlsync."""
    _, action = _card(spec, package, merge)
    if action is not CardAction.KEEP or package.model_card is None:
        return []
    held = package.model_card
    detail = (
        f"the package's card (status {held.status or '-'}) is not the one mlsync last wrote: edited in "
        "SageMaker or written by another tool, it is left as it is. To have mlsync replace it with "
        f"MLflow's card, set the package's metadata {KEY_MODEL_CARD} to {card_digest(held)}"
    )
    return [Drift(spec.model_name, spec.version, package.arn, "ModelCard", detail)]


def _reason(spec: PackageSpec, merge: ApprovalMerge) -> str:
    """The `ApprovalDescription` of a pushed approval: the mapping's rule, and why it differs if it does."""
    notes = []
    if merge.result != spec.approval:
        notes.append("was Approved and SageMaker has no way back to PendingManualApproval")
    if merge.conflict:
        notes.append(
            f"overrides a change to {merge.sagemaker.value} in SageMaker (approval_conflicts = mlflow)"
        )
    return "; ".join([spec.approval_reason, *notes])[:MAX_APPROVAL_DESCRIPTION]


def _drift(spec: PackageSpec, package: ObservedPackage) -> list[Drift]:
    """Creation-only fields that differ: SageMaker cannot update them, and a second package is wrong."""
    desired_digest = spec.quality_statistics.digest if spec.quality_statistics else None
    checks = (
        ("ModelPackageDescription", spec.description, package.description),
        ("MetadataProperties", dict(spec.metadata_properties), dict(package.metadata_properties)),
        ("ModelMetrics", desired_digest, package.quality_statistics_digest),
    )
    return [
        Drift(
            spec.model_name,
            spec.version,
            package.arn,
            name,
            f"MLflow now gives {want!r}, the package was created with {have!r} (creation-only field)",
        )
        for name, want, have in checks
        if want != have
    ]


def _value(status: ApprovalStatus | None) -> str | None:
    return status.value if status else None
