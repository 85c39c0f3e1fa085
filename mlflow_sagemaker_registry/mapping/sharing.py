"""The resource policy that shares a model package group with other AWS accounts (`share_with`).

Pure: accounts and a group ARN in, a policy document out. AWS's other multi-account pattern is to share
the one registry instead of copying packages: a group's resource policy (PutModelPackageGroupPolicy)
lets the listed accounts read its packages and create SageMaker models from them (AWS's developer guide,
"Deploy a model version from a different account").

Ownership: mlsync owns the statements whose `Sid` starts with `SID_PREFIX`, one statement per purpose
(the group itself; its packages). Any other statement of a group's policy was written by someone else
and is kept as it is: mlsync merges its own statements into the held policy, never replaces it, and
deletes the policy only when nothing but its own statements was in it.

What mlsync last wrote is recorded as a digest of its statements (`policy_record`) in the registered
model's MLflow tag `mlsync.group_policy`, so a reconcile reads the group's policy only when that record
differs from what the settings give now (docs/deployment.md, "Sharing a group with other accounts").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from ..errors import MappingError

SID_PREFIX = "Mlsync"
"""The `Sid` prefix of the statements mlsync owns; statements with any other Sid (or none) are kept."""
SID_GROUP = f"{SID_PREFIX}ReadGroup"
SID_PACKAGES = f"{SID_PREFIX}ReadAndDeployPackages"
GROUP_ACTIONS = ("sagemaker:DescribeModelPackageGroup",)
"""What a consumer account may do with the group itself."""
PACKAGE_ACTIONS = (
    "sagemaker:CreateModel",
    "sagemaker:DescribeModelPackage",
    "sagemaker:ListModelPackages",
)
"""What a consumer account may do with the group's packages: read them and deploy them (CreateModel
from the package). Not UpdateModelPackage: approving stays the owner account's decision."""
POLICY_VERSION = "2012-10-17"
MAX_POLICY = 20480
"""`ResourcePolicy`'s maximum length (botocore's `PolicyString`)."""
NOT_SHARED = "none"
"""The record of a group mlsync shares with nobody (also what no record at all means)."""


def own_statements(group_arn: str, accounts: Sequence[str]) -> list[dict[str, Any]]:
    """mlsync's statements for a group shared with `accounts` (none when there are none).

    `group_arn` is `arn:<partition>:sagemaker:<region>:<account>:model-package-group/<name>`; the
    packages' resource is the same with `model-package/<name>/*`. Accounts are sorted and deduplicated,
    so the statements (and their record) do not depend on the order in the settings.
    """
    if not accounts:
        return []
    partition = group_arn.split(":")[1]
    principal = {"AWS": [f"arn:{partition}:iam::{account}:root" for account in sorted(set(accounts))]}
    packages = group_arn.replace(":model-package-group/", ":model-package/", 1) + "/*"
    return [
        {
            "Sid": SID_GROUP,
            "Effect": "Allow",
            "Principal": principal,
            "Action": list(GROUP_ACTIONS),
            "Resource": group_arn,
        },
        {
            "Sid": SID_PACKAGES,
            "Effect": "Allow",
            "Principal": principal,
            "Action": list(PACKAGE_ACTIONS),
            "Resource": packages,
        },
    ]


def policy_record(own: Sequence[dict[str, Any]]) -> str:
    """The record of mlsync's statements kept in MLflow: `sha256:<hex>` of their canonical JSON."""
    if not own:
        return NOT_SHARED
    return "sha256:" + hashlib.sha256(_canonical(list(own)).encode()).hexdigest()


def merged_policy(model_name: str, held: str | None, own: Sequence[dict[str, Any]]) -> str | None:
    """The policy the group should hold: the held policy's foreign statements, then mlsync's; None when
    no statement is left (the policy is to be deleted). Deterministic JSON (sorted keys, no spaces).

    Raises:
        MappingError: the held policy is not a JSON policy document, or the merged one is longer than
            SageMaker takes (the message names the model and the fix).
    """
    document = _parsed(model_name, held) if held else {}
    foreign = [s for s in _statements(document) if not str(s.get("Sid", "")).startswith(SID_PREFIX)]
    statements = [*foreign, *own]
    if not statements:
        return None
    text = _canonical({"Version": document.get("Version", POLICY_VERSION), "Statement": statements})
    if len(text) > MAX_POLICY:
        raise MappingError(
            model_name,
            "",
            f"its group's resource policy would be {len(text)} characters, more than SageMaker's "
            f"{MAX_POLICY}",
            "share the group with fewer accounts (share_with), or shorten the statements others added",
        )
    return text


def same_policy(first: str | None, second: str | None) -> bool:
    """Whether two policies grant the same (normalised: statement order, one value or a list, and the
    order of actions, resources and principals do not count), not whether their texts are equal."""
    if first is None or second is None:
        return first is second
    try:
        return bool(_normalised(json.loads(first)) == _normalised(json.loads(second)))
    except ValueError:
        return first == second


def _parsed(model_name: str, held: str) -> dict[str, Any]:
    try:
        document = json.loads(held)
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("Statement", []), (list, dict)):
        raise MappingError(
            model_name,
            "",
            "its group's resource policy is not a JSON policy document, so mlsync cannot merge its "
            "sharing statements into it",
            "fix or delete the policy (aws sagemaker delete-model-package-group-policy)",
        )
    return document


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _normalised(value: Any) -> Any:
    """A policy with every list sorted and every single value a one-item list, for comparison (a
    `Statement` may be one object or a list, an `Action` one string or a list)."""
    if isinstance(value, dict):
        return {key: _normalised(item) for key, item in value.items()}
    if isinstance(value, (list, str)):
        items = value if isinstance(value, list) else [value]
        return sorted(_canonical(_normalised(i) if isinstance(i, dict) else i) for i in items)
    return value


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
