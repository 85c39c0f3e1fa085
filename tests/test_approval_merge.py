"""The three-way merge of approval: every combination of base, MLflow's wish and SageMaker's state."""

from __future__ import annotations

import itertools

import pytest

from mlflow_sagemaker_registry.approval_merge import Outcome, merge_approval
from mlflow_sagemaker_registry.domain import ApprovalStatus, Lifecycle
from mlflow_sagemaker_registry.mapping.approval import settle_approval

A, R, P = ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.PENDING
STAGE = Lifecycle("Production", "PendingApproval")


@pytest.mark.parametrize(
    ("base", "desired", "current", "outcome", "result"),
    [
        # Nothing changed since the last sync.
        (A, A, A, Outcome.IN_SYNC, A),
        (P, P, P, Outcome.IN_SYNC, P),
        (R, P, R, Outcome.IN_SYNC, R),  # pending on a decided package settles to Rejected
        # Only MLflow changed: push.
        (P, A, P, Outcome.PUSH, A),
        (A, R, A, Outcome.PUSH, R),
        (A, P, A, Outcome.PUSH, R),  # the champion alias moved away: no way back to pending
        (R, A, R, Outcome.PUSH, A),
        # Only SageMaker changed (a reviewer): pull, never undo.
        (P, P, A, Outcome.PULL, A),
        (P, P, R, Outcome.PULL, R),
        (A, A, R, Outcome.PULL, R),
        (R, R, A, Outcome.PULL, A),
        (R, P, A, Outcome.PULL, A),  # pending still settles to the base: MLflow did not change
        # Both changed to the same value: nothing to write but the record.
        (P, A, A, Outcome.IN_SYNC, A),
    ],
)
def test_one_sided_changes(
    base: ApprovalStatus,
    desired: ApprovalStatus,
    current: ApprovalStatus,
    outcome: Outcome,
    result: ApprovalStatus,
) -> None:
    merge = merge_approval(desired, None, current, base, "sagemaker")
    assert (merge.outcome, merge.result, merge.conflict) == (outcome, result, False)
    assert merge_approval(desired, None, current, base, "mlflow") == merge  # no conflict, no policy


@pytest.mark.parametrize(
    ("base", "desired", "current", "mlflow_result"),
    [(P, A, R, A), (P, R, A, R), (A, R, P, R), (R, A, P, A)],
)
def test_both_sides_changed_is_a_conflict_won_by_the_policy(
    base: ApprovalStatus, desired: ApprovalStatus, current: ApprovalStatus, mlflow_result: ApprovalStatus
) -> None:
    kept = merge_approval(desired, None, current, base, "sagemaker")
    assert (kept.outcome, kept.result, kept.conflict) == (Outcome.PULL, current, True)
    overridden = merge_approval(desired, None, current, base, "mlflow")
    assert (overridden.outcome, overridden.result, overridden.conflict) == (Outcome.PUSH, mlflow_result, True)


@pytest.mark.parametrize(
    ("desired", "current", "outcome", "result"),
    [
        (A, A, Outcome.IN_SYNC, A),
        (P, R, Outcome.IN_SYNC, R),
        (A, P, Outcome.PUSH, A),  # nobody has reviewed a pending package: MLflow's wish goes
        (R, P, Outcome.PUSH, R),
        (P, A, Outcome.PULL, A),  # a human Approved is never turned into Rejected on first sight
        (R, A, Outcome.PULL, A),
        (A, R, Outcome.PULL, R),
    ],
)
def test_without_a_base_a_decided_package_is_taken_as_a_review(
    desired: ApprovalStatus, current: ApprovalStatus, outcome: Outcome, result: ApprovalStatus
) -> None:
    for policy in ("sagemaker", "mlflow"):
        merge = merge_approval(desired, None, current, None, policy)
        assert (merge.outcome, merge.result, merge.first_sight) == (outcome, result, True)


def test_the_lifecycle_status_follows_the_merged_approval() -> None:
    assert merge_approval(P, STAGE, A, P, "sagemaker").lifecycle == Lifecycle("Production", "Approved")
    assert merge_approval(A, STAGE, A, A, "sagemaker").lifecycle == Lifecycle("Production", "Approved")
    assert merge_approval(P, STAGE, A, A, "sagemaker").lifecycle == Lifecycle("Production", "Rejected")
    assert merge_approval(P, None, A, P, "sagemaker").lifecycle is None


def test_applying_any_outcome_leaves_a_state_that_merges_in_sync() -> None:
    """Convergence of the pure rule: after the outcome is applied (a push sets SageMaker, a pull sets the
    MLflow tag so the mapping gives the result) and the base recorded, the next merge writes nothing."""
    statuses = (A, R, P)
    for base, desired, current, policy in itertools.product(
        (None, *statuses), statuses, statuses, ("sagemaker", "mlflow")
    ):
        merge = merge_approval(desired, None, current, base, policy)
        wanted_next = merge.result if merge.outcome is Outcome.PULL else desired
        again = merge_approval(wanted_next, None, merge.result, merge.result, policy)
        assert again.outcome is Outcome.IN_SYNC, (base, desired, current, policy)
        assert settle_approval(wanted_next, None, merge.result)[0] == merge.result
