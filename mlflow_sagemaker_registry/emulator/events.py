"""The EventBridge events SageMaker sends when a versioned model package is created or updated.

SageMaker publishes a ``SageMaker Model Package State Change`` event to the account's default EventBridge
bus for each create and each update of a versioned package; a Lambda function subscribed through a rule
receives it as its ``event`` argument. ``package_state_change`` builds that event from the stored
``DescribeModelPackage`` record, so an end-to-end test can hand what the emulator emitted to a handler
exactly as EventBridge would (``handler(event, None)``)::

    {"version": "0", "id": "<uuid>", "detail-type": "SageMaker Model Package State Change",
     "source": "aws.sagemaker", "account": "123456789012", "time": "2026-01-01T12:00:00Z",
     "region": "us-east-1", "resources": ["arn:aws:sagemaker:...:model-package/churn/1"],
     "detail": {"ModelPackageGroupName": "churn", "ModelPackageVersion": 1, ...,
                "CreationTime": "2026-01-01T12:00:00Z", "UpdatedModelPackageFields": [...]}}

What follows AWS's example event (developer guide, "Events that Amazon SageMaker AI sends to Amazon
EventBridge", section "SageMaker model package state change"): the envelope, ``resources`` holding the
package ARN, most ``detail`` members, and timestamps in ``detail`` as ISO-8601 UTC strings to the second
(not epoch milliseconds as in some other SageMaker events). ``ModelPackageName``, ``ApprovalDescription``,
``CustomerMetadataProperties``, ``CreatedBy`` and ``LastModifiedBy`` are not in the example; they are
sent because ``detail`` mirrors ``DescribeModelPackage``. ``UpdatedModelPackageFields`` appears in the
example of an update only; the emulator leaves it out of the event of a create. ``docs/emulator.md`` says
what is and is not confirmed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

DETAIL_TYPE = "SageMaker Model Package State Change"
SOURCE = "aws.sagemaker"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # "2021-02-24T17:00:14Z", as in AWS's example, always UTC
DETAIL_MEMBERS = (
    "ModelPackageGroupName",
    "ModelPackageVersion",
    "ModelPackageArn",
    "ModelPackageName",
    "CreationTime",
    "InferenceSpecification",
    "ModelPackageStatus",
    "ModelPackageStatusDetails",
    "CertifyForMarketplace",
    "ModelApprovalStatus",
    "ApprovalDescription",
    "MetadataProperties",
    "ModelMetrics",
    "LastModifiedTime",
    "ModelLifeCycle",
    "CustomerMetadataProperties",
    "LastModifiedBy",
    "CreatedBy",
)
"""The ``DescribeModelPackage`` members an event's ``detail`` carries, each only when stored."""
UPDATED_FIELDS = "UpdatedModelPackageFields"
Event = dict[str, Any]
"""An EventBridge event as a Lambda handler receives it: JSON types only."""


def package_state_change(
    package: Mapping[str, Any], updated_fields: Sequence[str] | None, *, account_id: str, region: str
) -> Event:
    """The event of one change of ``package`` (a stored ``DescribeModelPackage`` record), JSON-ready.

    ``updated_fields`` are the members an ``UpdateModelPackage`` set, ``None`` for a create. The event's
    ``time`` is the package's ``LastModifiedTime``: the moment of the change. The answer holds only
    JSON types (str, int, float, bool, list, dict, None), so it survives the server's control API and
    a JSON-lines file unchanged.
    """
    detail = {name: package[name] for name in DETAIL_MEMBERS if name in package}
    if updated_fields is not None:
        detail[UPDATED_FIELDS] = list(updated_fields)
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": account_id,
        "time": package["LastModifiedTime"],
        "region": region,
        "resources": [package["ModelPackageArn"]],
        "detail": detail,
    }
    ready: Event = json.loads(json.dumps(event, default=_iso))  # also a deep copy
    return ready


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime(TIME_FORMAT)
    raise TypeError(f"cannot encode {type(value).__name__} in an event")  # pragma: no cover - a backend bug
