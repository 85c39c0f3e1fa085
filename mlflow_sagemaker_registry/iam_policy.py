"""The least-privilege IAM policy for mlsync's settings: what `mlsync iam-policy` prints.

Derived from the settings rather than written by hand, so the policy follows the S3 prefix, the group
prefix and the features in use (`on_delete = "delete"` needs `DeleteModelPackage`, `share_with` the
group policy calls). docs/deployment.md
shows the document this gives for its example settings, and a test keeps the two the same.
"""

from __future__ import annotations

from typing import Any

from .config import Settings

WRITE_AND_READ_ACTIONS = (
    "sagemaker:CreateModelPackageGroup",
    "sagemaker:DescribeModelPackageGroup",
    "sagemaker:AddTags",
    "sagemaker:CreateModelPackage",
    "sagemaker:DescribeModelPackage",
    "sagemaker:UpdateModelPackage",
    "sagemaker:ListTags",
)
"""The calls on mlsync's own groups and packages (push, pull, plan, status, verify, rollback)."""

LIST_ACTIONS = ("sagemaker:ListModelPackageGroups", "sagemaker:ListModelPackages")
"""Whole-account listings: IAM gives these no resource ARN, hence `"*"`."""

DELETE_ACTION = "sagemaker:DeleteModelPackage"

SHARING_ACTIONS = (
    "sagemaker:GetModelPackageGroupPolicy",
    "sagemaker:PutModelPackageGroupPolicy",
    "sagemaker:DeleteModelPackageGroupPolicy",
)
"""The group resource policy calls, needed with `share_with` (mapping/sharing.py)."""


def iam_policy(settings: Settings, account: str = "*") -> dict[str, Any]:
    """The policy document for `settings`, for the AWS `account` (`*`: any).

    Raises:
        ConfigError: no S3 prefix is configured (the policy names it).
    """
    bucket, _, key = settings.require_s3_prefix().removeprefix("s3://").partition("/")
    objects = f"arn:aws:s3:::{bucket}/{key}/*" if key else f"arn:aws:s3:::{bucket}/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            *sagemaker_statements(settings, account),
            {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": objects},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"},
            {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
        ],
    }


def sagemaker_statements(settings: Settings, account: str = "*") -> list[dict[str, Any]]:
    """The policy's SageMaker statements: every SageMaker call mlsync makes, with its resources.

    Apart from `iam_policy` because they need no S3 prefix: `mlsync doctor` checks each action they
    list even when the prefix is missing.
    """
    region = settings.region or "*"
    groups = f"{settings.group_prefix}-*" if settings.group_prefix else "*"
    actions = [*WRITE_AND_READ_ACTIONS]
    if settings.on_delete == "delete":
        actions.append(DELETE_ACTION)
    if settings.share_with:
        actions.extend(SHARING_ACTIONS)
    return [
        {
            "Effect": "Allow",
            "Action": actions,
            "Resource": [
                f"arn:aws:sagemaker:{region}:{account}:model-package-group/{groups}",
                f"arn:aws:sagemaker:{region}:{account}:model-package/{groups}",
            ],
        },
        {"Effect": "Allow", "Action": list(LIST_ACTIONS), "Resource": "*"},
    ]
