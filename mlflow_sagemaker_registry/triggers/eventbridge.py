"""SageMaker's EventBridge events -> the model package they are about, or why an event is ignored.

Pure (no boto3, no mlflow), so every odd input is unit-tested without I/O. It is a trigger's parser and
nothing more: it names the package; what to do about it (find its MLflow model from SageMaker's current
state, pull) is `lambda_handler`'s. Nothing else of the event is trusted: SageMaker "may send multiple
events" per change, they may arrive out of order, and none carries the previous status, so the event's
copy of the package says only that something changed, never what holds now.

The package comes from `detail.ModelPackageArn`, else `resources[0]` (AWS's documented example carries
both), and must be a versioned package ARN, `arn:aws[-a-z]*:sagemaker:<region>:<account>:
model-package/<group>/<n>`: the only kind mlsync creates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..domain import ENTITY_NAME

SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker Model Package State Change"

# `ModelPackageArn` in SageMaker's API reference: `arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]{9,16}:[0-9]{12}:
# model-package/...`; the part after `model-package/` is split below to tell the kinds apart.
_SAGEMAKER_ARN = re.compile(
    r"arn:aws[-a-z]*:sagemaker:(?P<region>[a-z0-9-]{9,16}):(?P<account>[0-9]{12}):(?P<resource>.+)"
)
_VERSIONED = re.compile(rf"model-package/(?P<group>{ENTITY_NAME.pattern})/(?P<version>[1-9][0-9]*)")


@dataclass(frozen=True)
class PackageEvent:
    """A state change of one versioned model package, as far as the event can be trusted.

    Attributes:
        arn: The package ARN, exactly as the event spells it (SageMaker's lookups are exact about case).
        group: The group name, from the ARN.
        version: The package version, from the ARN.
        updated_fields: `detail.UpdatedModelPackageFields` (e.g. `ModelApprovalStatus`), for log lines
            only; None when the event has none (a create, or an older event format).
    """

    arn: str
    group: str
    version: int
    updated_fields: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Ignored:
    """Why an event is not acted on.

    Attributes:
        reason: For the log line and the handler's answer.
        malformed: True when the event is not what the EventBridge rule can deliver (a misconfigured rule,
            a hand-made test event): worth a warning. False when it is well-formed but not mlsync's
            business (another source or detail type, an unversioned package).
    """

    reason: str
    malformed: bool


def parse_event(event: object) -> PackageEvent | Ignored:
    """The versioned package a "SageMaker Model Package State Change" event is about, or why not."""
    if not isinstance(event, Mapping):
        return Ignored(f"the event is not a JSON object but {type(event).__name__}", malformed=True)
    source, detail_type = event.get("source"), event.get("detail-type")
    if source is None or detail_type is None:
        return Ignored("not an EventBridge event: it has no 'source' or no 'detail-type'", malformed=True)
    if source != SOURCE or detail_type != DETAIL_TYPE:
        return Ignored(
            f"a {detail_type!r} event from {source!r}, not a {DETAIL_TYPE!r} event from {SOURCE}",
            malformed=False,
        )
    detail = event.get("detail", {})
    if not isinstance(detail, Mapping):
        return Ignored(f"'detail' is not a JSON object but {type(detail).__name__}", malformed=True)
    arn = detail.get("ModelPackageArn") or _first_resource(event.get("resources"))
    if not arn:
        return Ignored(
            "the event names no package: no detail.ModelPackageArn and no resources", malformed=True
        )
    if not isinstance(arn, str):
        return Ignored(f"the package ARN is not a string but {type(arn).__name__}", malformed=True)
    return _package(arn, _updated_fields(detail.get("UpdatedModelPackageFields")))


def _first_resource(resources: object) -> object:
    if isinstance(resources, list) and resources:
        return resources[0]
    return None


def _updated_fields(fields: object) -> tuple[str, ...] | None:
    if isinstance(fields, list):
        return tuple(str(field) for field in fields)
    return None


def _package(arn: str, updated_fields: tuple[str, ...] | None) -> PackageEvent | Ignored:
    """The versioned package `arn` names, or which other kind of ARN it is."""
    found = _SAGEMAKER_ARN.fullmatch(arn)
    if found is None:
        return Ignored(f"{arn!r} is not a SageMaker ARN", malformed=True)
    resource = found["resource"]
    versioned = _VERSIONED.fullmatch(resource)
    if versioned is not None:
        return PackageEvent(arn, versioned["group"], int(versioned["version"]), updated_fields)
    kind, _, name = resource.partition("/")
    if kind == "model-package-group":
        return Ignored(f"{arn} is a model package group, not a package version", malformed=True)
    if kind == "model-package" and name and "/" not in name:
        # Marketplace-style packages outside any group: they have state changes too, never mlsync's.
        return Ignored(f"{arn} is an unversioned model package (in no group)", malformed=False)
    if kind == "model-package":
        return Ignored(f"{arn} is not a valid model package ARN (<group>/<version>)", malformed=True)
    return Ignored(f"{arn} is a SageMaker {kind} ARN, not a model package", malformed=True)
