"""Pure: the three-way merge of one version's approval (MLflow's mapping, SageMaker, the last sync).

Approval is decided in two places: MLflow's mapping (stage, aliases, the `sagemaker.approval` tag) and
SageMaker, where reviewers approve and reject packages in Studio, the console or
`aws sagemaker update-model-package`. A one-way mirror would undo every review, so each reconcile merges
three values, per version:

- **base**: the approval SageMaker held when mlsync last synced the version (MLflow version tag
  `mlsync.synced_approval`; kept on the MLflow side because a pull must not write to SageMaker);
- **mlflow**: what the mapping wants now, settled (`mapping.settle_approval`: no way back to pending);
- **sagemaker**: what the package holds now.

| MLflow changed | SageMaker changed | outcome |
| --- | --- | --- |
| no | no | in sync (nothing to write) |
| yes | no | push the mapping's approval to SageMaker |
| no | yes | pull: write SageMaker's approval into MLflow's approval tag |
| yes | yes | the same value: in sync; otherwise a conflict, won by `approval_conflicts` |

"MLflow changed" means the settled mapping no longer gives the base; "SageMaker changed" means the
package no longer holds it. A pull happens even where settling would make the two agree (a reviewer
rejected a version MLflow still calls pending), so that every review is recorded in MLflow.

Without a base (packages mirrored before mlsync recorded one, or adopted ones), a package still
`PendingManualApproval` takes MLflow's approval (nobody has reviewed it), and an `Approved` or `Rejected`
package MLflow disagrees with is taken as a review and pulled: a human decision is never turned around
on first sight.

No I/O and no boto3, mlflow or click (docs/mapping.md, "Two-way approval").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .domain import ApprovalStatus, Lifecycle
from .mapping.approval import lifecycle_for, settle_approval

MLFLOW = "mlflow"
"""The `approval_conflicts` value under which MLflow's mapping wins (config.APPROVAL_CONFLICTS)."""
FOLLOW = "follow"
"""Not a setting: the policy of a target other than the primary, where MLflow's mapping always wins and
nothing is pulled (reviews are pulled from the primary target only; targets.py)."""


class Outcome(str, Enum):
    """What a reconcile does about one version's approval."""

    IN_SYNC = "in-sync"
    PUSH = "push"
    PULL = "pull"


@dataclass(frozen=True)
class ApprovalMerge:
    """The merged approval of one version and how it is reached.

    Attributes:
        outcome: push (write SageMaker), pull (write MLflow's approval tag) or in sync.
        result: the approval both sides hold once the outcome is applied.
        lifecycle: the lifecycle that goes with `result` (its StageStatus follows the approval).
        base: the approval recorded at the last sync (None: never recorded).
        mlflow: the approval the mapping wants now, settled against SageMaker's.
        sagemaker: the approval the package holds now.
        conflict: both sides changed to different values; `outcome` is the policy's winner.
    """

    outcome: Outcome
    result: ApprovalStatus
    lifecycle: Lifecycle | None
    base: ApprovalStatus | None
    mlflow: ApprovalStatus
    sagemaker: ApprovalStatus
    conflict: bool = False

    @property
    def first_sight(self) -> bool:
        """No base was recorded: the outcome follows the no-base rule of the module docstring."""
        return self.base is None


def merge_approval(
    desired: ApprovalStatus,
    lifecycle: Lifecycle | None,
    current: ApprovalStatus,
    base: ApprovalStatus | None,
    policy: str,
) -> ApprovalMerge:
    """Merge the mapping's `desired` approval, the package's `current` one and the recorded `base`.

    Args:
        desired: what the mapping gives now (before settling).
        lifecycle: the mapping's lifecycle for `desired`; its StageStatus is made to follow the result.
        current: the package's `ModelApprovalStatus` now.
        base: the approval recorded at the last sync, or None.
        policy: `sagemaker` or `mlflow`, the winner of a conflict; `follow`: MLflow's mapping, always.
    """
    mlflow, _ = settle_approval(desired, None, current)

    def outcome(kind: Outcome, result: ApprovalStatus, conflict: bool = False) -> ApprovalMerge:
        return ApprovalMerge(kind, result, lifecycle_for(lifecycle, result), base, mlflow, current, conflict)

    if policy == FOLLOW:
        return outcome(Outcome.IN_SYNC if mlflow == current else Outcome.PUSH, mlflow)
    if base is None:
        if mlflow == current:
            return outcome(Outcome.IN_SYNC, current)
        if current is ApprovalStatus.PENDING:
            return outcome(Outcome.PUSH, mlflow)
        return outcome(Outcome.PULL, current)
    if current == base:  # SageMaker did not change
        return outcome(Outcome.IN_SYNC if mlflow == current else Outcome.PUSH, mlflow)
    if settle_approval(desired, None, base)[0] == base:  # MLflow did not change
        # Pulled even when settling would agree (a reviewer rejected a pending version): the review is
        # recorded in MLflow, and MLflow's tag then says what SageMaker holds.
        return outcome(Outcome.IN_SYNC if desired == current else Outcome.PULL, current)
    if mlflow == current:  # both changed, to the same
        return outcome(Outcome.IN_SYNC, current)
    if policy == MLFLOW:
        return outcome(Outcome.PUSH, mlflow, conflict=True)
    return outcome(Outcome.PULL, current, conflict=True)
