"""Approval and lifecycle from an MLflow version's tag, aliases and stage (docs/mapping.md, "Approval").

The merge with SageMaker's side is approval_merge.py; this module says only what MLflow's rules want.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ApprovalRules
from ..domain import ApprovalStatus, Lifecycle, SourceVersion
from ..errors import MappingError


@dataclass(frozen=True)
class ApprovalDecision:
    """The approval and lifecycle a version should have, and the rule that decided it."""

    status: ApprovalStatus
    lifecycle: Lifecycle | None
    reason: str


_LIFECYCLE_STATUS = {
    ApprovalStatus.APPROVED: "Approved",
    ApprovalStatus.REJECTED: "Rejected",
    ApprovalStatus.PENDING: "PendingApproval",
}


def decide_approval(version: SourceVersion, rules: ApprovalRules) -> ApprovalDecision:
    """Approval by precedence: version tag, then the first configured alias it has, then its stage.

    The lifecycle stage is that of the first alias in `alias_lifecycle_stages` (configured order) the
    version has, else that of its stage; its status follows the approval.

    Raises:
        MappingError: the approval tag holds something that is not an approval status.
    """
    tagged = version.tags.get(rules.tag)
    alias = next((a for a in rules.aliases if a in version.aliases), None)
    if tagged is not None:
        status = _parse_status(tagged, version, rules.tag)
        reason = f"tag {rules.tag}={tagged.strip()}"
    elif alias is not None:
        status = rules.aliases[alias]
        reason = f"alias @{alias}"
    else:
        status = rules.stages.get(version.stage, ApprovalStatus.PENDING)
        reason = f"stage {version.stage}"
    stage = next(
        (stage for a, stage in rules.alias_lifecycle_stages.items() if a in version.aliases),
        rules.lifecycle_stages.get(version.stage),
    )
    lifecycle = Lifecycle(stage, _LIFECYCLE_STATUS[status]) if stage else None
    return ApprovalDecision(status, lifecycle, reason)


def settle_approval(
    desired: ApprovalStatus, lifecycle: Lifecycle | None, current: ApprovalStatus
) -> tuple[ApprovalStatus, Lifecycle | None]:
    """The approval to set on an existing package whose approval is `current`.

    SageMaker documents PendingManualApproval -> Approved | Rejected and Approved <-> Rejected, but no way
    back to PendingManualApproval. So a version that falls back to "pending" (the champion alias moved
    away, Production was left) is set to Rejected if it was Approved: a deployment pipeline that takes
    the latest Approved package must stop taking it. A Rejected package stays Rejected.
    """
    if desired is not ApprovalStatus.PENDING or current is ApprovalStatus.PENDING:
        return desired, lifecycle
    settled = ApprovalStatus.REJECTED
    return settled, lifecycle_for(lifecycle, settled)


def lifecycle_for(lifecycle: Lifecycle | None, status: ApprovalStatus) -> Lifecycle | None:
    """`lifecycle` with the StageStatus that goes with `status` (the stage is the mapping's)."""
    return Lifecycle(lifecycle.stage, _LIFECYCLE_STATUS[status]) if lifecycle else None


def _parse_status(value: str, version: SourceVersion, tag: str) -> ApprovalStatus:
    for status in ApprovalStatus:
        if value.strip().lower() == status.value.lower():
            return status
    choices = ", ".join(s.value for s in ApprovalStatus)
    raise MappingError(
        version.model_name,
        version.version,
        f"tag {tag}={value!r} is not a SageMaker approval status",
        f"set the tag to one of {choices}, or delete it to use the stage/alias mapping",
    )
