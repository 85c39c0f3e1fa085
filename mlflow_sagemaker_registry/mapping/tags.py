"""The MLflow version tags mlsync writes: back-links, sync records, pulled reviews (docs/mapping.md)."""

from __future__ import annotations

# MLflow version tags mlsync writes (the only MLflow data it writes). The ARN tag is the one AWS's own
# MLflow auto-registration uses.
TAG_PACKAGE_ARN = "sagemaker.model_package_arn"

TAG_SYNC_STATUS = "mlsync.sync_status"

SYNCED = "synced"

# The approval SageMaker held when mlsync last synced the version: the base of the three-way merge.
TAG_SYNCED_APPROVAL = "mlsync.synced_approval"

# Why the last approval conflict (both sides changed) was settled the way it was.
TAG_APPROVAL_CONFLICT = "mlsync.approval_conflict"

# When mlsync first saw the version Approved: what `mlsync rollback` goes back to.
TAG_APPROVED_AT = "mlsync.approved_at"

# A review pulled from SageMaker: its description, who made it and when (besides the approval tag).
TAG_REVIEW_DESCRIPTION = "sagemaker.approval_description"

TAG_REVIEW_BY = "sagemaker.approval_modified_by"

TAG_REVIEW_TIME = "sagemaker.approval_modified_time"

# A registered-model tag (not a version tag): the record of the group policy statements mlsync last
# wrote (mapping/sharing.py), so a reconcile reads the group's policy only when the settings changed.
TAG_GROUP_POLICY = "mlsync.group_policy"

OWN_TAGS = frozenset(
    {
        TAG_PACKAGE_ARN,
        TAG_SYNC_STATUS,
        TAG_SYNCED_APPROVAL,
        TAG_APPROVAL_CONFLICT,
        TAG_APPROVED_AT,
        TAG_REVIEW_DESCRIPTION,
        TAG_REVIEW_BY,
        TAG_REVIEW_TIME,
    }
)
"""Version tags only mlsync writes: setting one is never news for a trigger (it would only loop).

The approval tag (`ApprovalRules.tag`, `sagemaker.approval`) is not among them: people set it too. A pull
writes it only with the value the mapping then gives, so the reconcile it may trigger writes nothing.
"""

PER_TARGET_TAGS = (
    TAG_PACKAGE_ARN,
    TAG_SYNC_STATUS,
    TAG_SYNCED_APPROVAL,
    TAG_APPROVAL_CONFLICT,
    TAG_APPROVED_AT,
)
"""The tags that describe a version's package in one target. The primary target's are the names above;
another target's are `target_tag`'s, so that back-links to several accounts never share a tag."""

TARGET_TAG_PREFIX = "mlsync.target."


def target_tag(target: str, key: str) -> str:
    """A non-primary target's name for a `PER_TARGET_TAGS` key: `mlsync.target.<target>.<last part>`,
    e.g. `mlsync.target.prod.model_package_arn` for `sagemaker.model_package_arn`."""
    return f"{TARGET_TAG_PREFIX}{target}.{key.rpartition('.')[2]}"


def is_own_tag(key: str) -> bool:
    """Whether only mlsync writes the tag `key` (`OWN_TAGS` or any target's own tags)."""
    return key in OWN_TAGS or key.startswith(TARGET_TAG_PREFIX)


MAX_TAG_VALUE = 5000
"""MLflow's limit on a tag value; statuses and pulled descriptions are cut to it."""
