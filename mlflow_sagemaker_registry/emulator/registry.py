"""The Model Registry of one account in one region: groups, versioned packages, tags, idempotency tokens.

Each public method is one SageMaker operation. It receives parameters already checked against the service
model (see ``validation``) and enforces the rules the model cannot express, as SageMaker does:

- group names are unique ignoring case (a second ``MyModel`` next to ``mymodel`` is refused), while every
  lookup is exact: code that gets the case wrong fails here as it may against SageMaker;
- versions count 1, 2, 3... per group and are never reused, not even after a delete;
- a versioned package takes no ``Tags`` (it inherits the group's), and accepts its group by name or ARN;
- ``ClientToken`` makes ``CreateModelPackage`` idempotent: the same token with the same parameters returns
  the first ARN and creates nothing, with other parameters it is refused;
- ``UpdateModelPackage`` changes only what is sent, merges ``CustomerMetadataProperties`` into what is
  stored and refuses approval transitions AWS does not document (back to ``PendingManualApproval``);
- a ``ModelCard``'s content is a JSON object with only the sections of a model package's card (no
  ``model_package_details``; ``model_overview`` holds only ``model_creator`` and ``model_artifact``), and
  the content of an ``Archived`` card cannot be changed;
- a group with packages cannot be deleted;
- a group's resource policy (``PutModelPackageGroupPolicy``) must be a JSON document with a
  ``Statement``; getting or deleting a policy the group does not have is refused (the wording of that
  refusal is the emulator's: AWS's is not documented);
- a group or package records who created it (``CreatedBy``) and a package who last updated it
  (``LastModifiedBy``): the ``UserContext`` the backend sets in ``caller`` before each call;
- each create and update of a package is recorded as a ``PackageChange`` (a copy of the record and the
  members the update set), which the backend takes with ``take_changes`` to emit SageMaker's EventBridge
  event. Only applied changes are recorded: every check above runs before anything is changed.

Answers are projections of the stored records onto the output shapes of the service model, so a summary
carries exactly the members SageMaker's summary shape has (no metadata in ``ListModelPackages``).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

from botocore.model import StructureShape

from .errors import ConflictError, NotEmulatedError, ValidationError
from .paging import SortKey, page
from .validation import service_model

DEFAULT_MAX_RESULTS = 10  # small on purpose: code that ignores NextToken fails with a handful of items
MAX_METADATA_ENTRIES = 50  # CustomerMetadataMap max, also for the map left after an update
MAX_TAGS = 50  # TagList max, also for the tags left after AddTags
MAX_ADDITIONAL_SPECIFICATIONS = 15  # AdditionalInferenceSpecifications max, also after an update
APPROVAL_TRANSITIONS = {
    "PendingManualApproval": frozenset({"Approved", "Rejected"}),
    "Approved": frozenset({"Rejected"}),
    "Rejected": frozenset({"Approved"}),
}
# What UpdateModelPackage replaces when sent; metadata and additional specifications are merged instead.
REPLACED_BY_UPDATE = (
    "ModelApprovalStatus",
    "ApprovalDescription",
    "InferenceSpecification",
    "SourceUri",
    "ModelCard",
    "ModelLifeCycle",
    "ModelPackageRegistrationType",
)
# The sections of a model package's card (ModelPackageModelCard in the service model, which also says
# that model_overview holds only model_creator and model_artifact there), and the status that freezes it.
MODEL_CARD_SECTIONS = frozenset(
    {
        "model_overview",
        "intended_uses",
        "business_details",
        "training_details",
        "evaluation_details",
        "additional_information",
    }
)
MODEL_CARD_OVERVIEW = frozenset({"model_creator", "model_artifact"})
ARCHIVED_CARD = "Archived"
# A SageMaker ARN of this emulator's kinds; also how faults.py finds the group a request names.
ARN = re.compile(
    r"arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]*):(?P<account>[0-9]{12}):(?P<kind>[a-z-]*)/(?P<id>.+)"
)
_SEQUENCE = itertools.count(1)


@dataclass(frozen=True)
class PackageChange:
    """A package as it was right after a create or an update, and the members the update set."""

    fields: dict[str, Any]  # a copy of the DescribeModelPackage record
    updated_fields: list[str] | None  # None: created


@dataclass
class _Package:
    fields: dict[str, Any]  # the DescribeModelPackage answer
    sequence: int = field(default_factory=lambda: next(_SEQUENCE))

    @property
    def group_name(self) -> str:
        return str(self.fields["ModelPackageGroupName"])


@dataclass
class _Group:
    fields: dict[str, Any]  # the DescribeModelPackageGroup answer
    tags: dict[str, str]
    packages: dict[int, _Package] = field(default_factory=dict)
    next_version: int = 1
    sequence: int = field(default_factory=lambda: next(_SEQUENCE))
    policy: str | None = None  # the resource policy (PutModelPackageGroupPolicy), as sent

    @property
    def name(self) -> str:
        return str(self.fields["ModelPackageGroupName"])


class RegionRegistry:
    """The registry state of one (account, region); not thread-safe: the backend serializes calls."""

    def __init__(self, account_id: str, region: str) -> None:
        self.account_id = account_id
        self.region = region
        self.caller: dict[str, Any] = {}
        """The ``UserContext`` of the request being answered (``{}``: unknown), set by the backend."""
        self._groups: dict[str, _Group] = {}
        self._tokens: dict[str, tuple[dict[str, Any], str]] = {}
        self._changes: list[PackageChange] = []

    def take_changes(self) -> list[PackageChange]:
        """The package changes applied since the last call, oldest first, forgotten here."""
        changes, self._changes = self._changes, []
        return changes

    def _changed(self, fields: Mapping[str, Any], updated_fields: list[str] | None) -> None:
        self._changes.append(PackageChange(copy.deepcopy(dict(fields)), updated_fields))

    # -- groups -------------------------------------------------------------------------------------

    def create_model_package_group(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ModelPackageGroupName"]
        for existing in self._groups.values():
            if existing.name.lower() == name.lower():
                existing_arn = existing.fields["ModelPackageGroupArn"]
                raise ValidationError(f"Model Package Group already exists: {existing_arn}")
        arn = self._arn("model-package-group", name)
        fields = {
            "ModelPackageGroupName": name,
            "ModelPackageGroupArn": arn,
            "CreationTime": _now(),
            "CreatedBy": copy.deepcopy(self.caller),
            "ModelPackageGroupStatus": "Completed",
        }
        for optional in ("ModelPackageGroupDescription", "ManagedConfiguration"):
            if optional in params:
                fields[optional] = copy.deepcopy(params[optional])
        tags = {tag["Key"]: tag["Value"] for tag in params.get("Tags", [])}
        self._groups[name] = _Group(fields=fields, tags=tags)
        return {"ModelPackageGroupArn": arn}

    def describe_model_package_group(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._group(params["ModelPackageGroupName"])
        return _project(group.fields, "DescribeModelPackageGroupOutput")

    def list_model_package_groups(self, params: dict[str, Any]) -> dict[str, Any]:
        # Groups shared from other accounts (CrossAccount) are not emulated: there are none.
        groups = [
            group
            for group in self._groups.values()
            if params.get("CrossAccountFilterOption") != "CrossAccount"
            and params.get("NameContains", "") in group.name
            and _created_within(group.fields, params)
        ]
        return _listing(groups, lambda group: group.name, params, "ModelPackageGroupSummary")

    def delete_model_package_group(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._group(params["ModelPackageGroupName"])
        if group.packages:
            raise ConflictError(
                f"Model Package Group {group.name} still contains {len(group.packages)} model package(s); "
                "delete them before deleting the group."
            )
        del self._groups[group.name]
        return {}

    # -- group policies -----------------------------------------------------------------------------

    def put_model_package_group_policy(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._group(params["ModelPackageGroupName"])
        policy = params["ResourcePolicy"]
        try:
            document = json.loads(policy)
        except ValueError as error:
            raise ValidationError(f"ResourcePolicy is not valid JSON: {error}.") from None
        if not isinstance(document, dict) or "Statement" not in document:
            raise ValidationError("ResourcePolicy must be a JSON policy document with a Statement.")
        group.policy = policy
        return {"ModelPackageGroupArn": group.fields["ModelPackageGroupArn"]}

    def get_model_package_group_policy(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._group(params["ModelPackageGroupName"])
        if group.policy is None:
            raise ValidationError(f"The resource policy of ModelPackageGroup {group.name} does not exist.")
        return {"ResourcePolicy": group.policy}

    def delete_model_package_group_policy(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._group(params["ModelPackageGroupName"])
        if group.policy is None:
            raise ValidationError(f"The resource policy of ModelPackageGroup {group.name} does not exist.")
        group.policy = None
        return {}

    # -- packages -----------------------------------------------------------------------------------

    def create_model_package(self, params: dict[str, Any]) -> dict[str, Any]:
        _check_versioned(params)
        _check_model_card(params.get("ModelCard"), None)
        request = {name: value for name, value in params.items() if name != "ClientToken"}
        token = params.get("ClientToken")
        if token is not None and token in self._tokens:
            first_request, arn = self._tokens[token]
            if first_request != request:
                raise ValidationError(
                    f"ClientToken {token} was already used with different parameters; "
                    "use a new token for a new model package."
                )
            return {"ModelPackageArn": arn}
        group = self._group(params["ModelPackageGroupName"])
        version = group.next_version
        group.next_version += 1
        arn = self._arn("model-package", f"{group.name}/{version}")
        now = _now()
        fields = copy.deepcopy(request)
        fields.update(
            ModelPackageName=group.name,
            ModelPackageGroupName=group.name,
            ModelPackageVersion=version,
            ModelPackageArn=arn,
            CreationTime=now,
            LastModifiedTime=now,
            ModelPackageStatus="Completed",
            ModelPackageStatusDetails={"ValidationStatuses": []},
            ModelApprovalStatus=request.get("ModelApprovalStatus", "PendingManualApproval"),
            CertifyForMarketplace=request.get("CertifyForMarketplace", False),
            CreatedBy=copy.deepcopy(self.caller),
        )
        group.packages[version] = _Package(fields=fields)
        if token is not None:
            self._tokens[token] = (copy.deepcopy(request), arn)
        self._changed(fields, None)
        return {"ModelPackageArn": arn}

    def describe_model_package(self, params: dict[str, Any]) -> dict[str, Any]:
        _, package = self._package(params["ModelPackageName"])
        return _project(package.fields, "DescribeModelPackageOutput")

    def batch_describe_model_package(self, params: dict[str, Any]) -> dict[str, Any]:
        summaries: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for arn in params["ModelPackageArnList"]:
            try:
                _, package = self._package(arn)
            except ValidationError as error:
                errors[arn] = {"ErrorCode": error.code, "ErrorResponse": error.message}
            else:
                summaries[arn] = _project(package.fields, "BatchDescribeModelPackageSummary")
        return {"ModelPackageSummaries": summaries, "BatchDescribeModelPackageErrorMap": errors}

    def list_model_packages(self, params: dict[str, Any]) -> dict[str, Any]:
        kind = params.get("ModelPackageType")
        group_name = params.get("ModelPackageGroupName")
        # SageMaker lists only unversioned packages unless a group or a type asks for versioned ones.
        versioned = kind in ("Versioned", "Both") or (kind is None and group_name is not None)
        groups: Iterable[_Group] = self._groups.values()
        if group_name is not None:
            wanted = self._group_name(group_name)
            groups = [group for group in groups if group.name == wanted]
        packages = [package for group in groups for package in group.packages.values()] if versioned else []
        status = params.get("ModelApprovalStatus")
        packages = [
            package
            for package in packages
            if params.get("NameContains", "") in package.fields["ModelPackageName"]
            and status in (None, package.fields["ModelApprovalStatus"])
            and _created_within(package.fields, params)
        ]
        return _listing(packages, lambda package: package.group_name, params, "ModelPackageSummary")

    def update_model_package(self, params: dict[str, Any]) -> dict[str, Any]:
        _, package = self._package(params["ModelPackageArn"])
        fields = package.fields
        changes: dict[str, Any] = {
            name: copy.deepcopy(params[name]) for name in REPLACED_BY_UPDATE if name in params
        }
        if "ModelApprovalStatus" in changes:
            _check_transition(fields["ModelApprovalStatus"], changes["ModelApprovalStatus"])
        _check_model_card(params.get("ModelCard"), fields.get("ModelCard"))
        if "CustomerMetadataProperties" in params or "CustomerMetadataPropertiesToRemove" in params:
            changes["CustomerMetadataProperties"] = _merged_metadata(fields, params)
        if "AdditionalInferenceSpecificationsToAdd" in params:
            specifications = fields.get("AdditionalInferenceSpecifications", [])
            specifications = specifications + copy.deepcopy(params["AdditionalInferenceSpecificationsToAdd"])
            if len(specifications) > MAX_ADDITIONAL_SPECIFICATIONS:
                raise ValidationError(
                    f"A model package can have at most {MAX_ADDITIONAL_SPECIFICATIONS} additional "
                    f"inference specifications; this update would leave {len(specifications)}."
                )
            changes["AdditionalInferenceSpecifications"] = specifications
        fields.update(changes)
        if not fields.get("CustomerMetadataProperties", True):
            del fields["CustomerMetadataProperties"]
        fields["LastModifiedTime"] = _now()
        fields["LastModifiedBy"] = copy.deepcopy(self.caller)
        self._changed(fields, list(changes))
        return {"ModelPackageArn": fields["ModelPackageArn"]}

    def delete_model_package(self, params: dict[str, Any]) -> dict[str, Any]:
        group, package = self._package(params["ModelPackageName"])
        del group.packages[package.fields["ModelPackageVersion"]]
        return {}

    # -- tags ---------------------------------------------------------------------------------------

    def add_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._tagged_group(params["ResourceArn"])
        tags = dict(group.tags)
        tags.update({tag["Key"]: tag["Value"] for tag in params["Tags"]})
        if len(tags) > MAX_TAGS:
            raise ValidationError(f"A resource can have at most {MAX_TAGS} tags, not {len(tags)}.")
        group.tags = tags
        return {"Tags": copy.deepcopy(params["Tags"])}

    def list_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        # At most 50 tags exist and MaxResults is at least 50, so one page always holds them all.
        group = self._tagged_group(params["ResourceArn"])
        return {"Tags": [{"Key": key, "Value": value} for key, value in group.tags.items()]}

    def delete_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._tagged_group(params["ResourceArn"])
        group.tags = {key: value for key, value in group.tags.items() if key not in params["TagKeys"]}
        return {}

    # -- lookups ------------------------------------------------------------------------------------

    def _arn(self, kind: str, resource: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{kind}/{resource}"

    def _parse_arn(self, arn: str, kind: str) -> str | None:
        """The resource id of ``arn`` if it is an ARN of ``kind`` in this account; None if not an ARN."""
        match = ARN.fullmatch(arn)
        if match is None:
            return None
        if match["kind"] != kind:
            raise ValidationError(f"{arn} is not the ARN of a {kind}.")
        if match["region"] != self.region:
            raise ValidationError(f"ARN should be scoped to correct region: {self.region}")
        if match["account"] != self.account_id:
            raise NotEmulatedError(f"Cross-account access ({arn}) is not emulated.")
        return match["id"]

    def _group_name(self, name_or_arn: str) -> str:
        return self._parse_arn(name_or_arn, "model-package-group") or name_or_arn

    def _group(self, name_or_arn: str) -> _Group:
        name = self._group_name(name_or_arn)
        try:
            return self._groups[name]
        except KeyError:
            raise ValidationError(f"ModelPackageGroup {name} does not exist.") from None

    def _package(self, name_or_arn: str) -> tuple[_Group, _Package]:
        """Find a versioned package by ARN or by ``<group>/<version>``."""
        resource = self._parse_arn(name_or_arn, "model-package") or name_or_arn
        group_name, _, version = resource.rpartition("/")
        group = self._groups.get(group_name)
        package = group.packages.get(int(version)) if group and version.isdigit() else None
        if group is None or package is None:
            raise ValidationError(f"ModelPackage {name_or_arn} does not exist.")
        return group, package

    def _tagged_group(self, arn: str) -> _Group:
        match = ARN.fullmatch(arn)
        if match is None or match["kind"] != "model-package-group":
            raise NotEmulatedError(f"Tags are emulated for model package groups only, not for {arn}.")
        return self._group(arn)


def _check_versioned(params: Mapping[str, Any]) -> None:
    """Refuse what a versioned package cannot be created with (or what makes it unversioned)."""
    if "ModelPackageName" in params and "ModelPackageGroupName" in params:
        raise ValidationError(
            "Both ModelPackageName and ModelPackageGroupName are provided in the input. "
            "Cannot determine which one to use."
        )
    if "ModelPackageGroupName" not in params:
        if "ModelPackageName" in params:
            raise NotEmulatedError("Unversioned model packages (ModelPackageName) are not emulated.")
        raise ValidationError("Missing ARN.")
    if "Tags" in params:
        raise ValidationError(
            "Tags cannot be specified for a versioned model package: it uses the tags of its "
            "model package group. Tag the group instead."
        )


def _check_transition(current: str, wanted: str) -> None:
    if wanted != current and wanted not in APPROVAL_TRANSITIONS[current]:
        raise ValidationError(
            f"Cannot change ModelApprovalStatus from {current} to {wanted}: SageMaker documents only "
            "PendingManualApproval -> Approved | Rejected and Approved <-> Rejected."
        )


def _check_model_card(card: Mapping[str, Any] | None, stored: Mapping[str, Any] | None) -> None:
    """Refuse a card whose content is not a model package card, or that changes an archived card's
    content (an update replaces the whole card, so one without content would drop it)."""
    if card is None:
        return
    content = card.get("ModelCardContent")
    if content is not None:
        _check_card_content(content)
    if (
        stored
        and stored.get("ModelCardStatus") == ARCHIVED_CARD
        and content != stored.get("ModelCardContent")
    ):
        raise ValidationError("Model Card is in Archived state")


def _check_card_content(content: str) -> None:
    try:
        parsed = json.loads(content)
    except ValueError as error:
        raise ValidationError(f"ModelCardContent is not valid JSON: {error}.") from None
    overview = parsed.get("model_overview", {}) if isinstance(parsed, dict) else None
    if not isinstance(overview, dict):
        raise ValidationError("ModelCardContent and its model_overview must be JSON objects.")
    unknown = sorted(set(parsed) - MODEL_CARD_SECTIONS)
    unknown += sorted(f"model_overview.{name}" for name in set(overview) - MODEL_CARD_OVERVIEW)
    if unknown:
        raise ValidationError(
            f"ModelCardContent has {', '.join(unknown)}, which a model package's model card does not: "
            "see the model package model card schema."
        )


def _merged_metadata(fields: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, str]:
    added: dict[str, str] = params.get("CustomerMetadataProperties", {})
    removed: list[str] = params.get("CustomerMetadataPropertiesToRemove", [])
    both = sorted(set(added) & set(removed))
    if both:
        raise ValidationError(f"Keys both set and removed in one update: {', '.join(both)}.")
    merged = {**fields.get("CustomerMetadataProperties", {}), **added}
    merged = {key: value for key, value in merged.items() if key not in removed}
    if len(merged) > MAX_METADATA_ENTRIES:
        raise ValidationError(
            f"CustomerMetadataProperties can hold at most {MAX_METADATA_ENTRIES} entries; "
            f"this update would leave {len(merged)}."
        )
    return merged


def _project(record: Mapping[str, Any], shape_name: str) -> dict[str, Any]:
    """The members of ``record`` that the output shape ``shape_name`` has, copied."""
    shape = service_model().shape_for(shape_name)
    assert isinstance(shape, StructureShape)
    return {name: copy.deepcopy(record[name]) for name in shape.members if name in record}


def _created_within(fields: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    created = fields["CreationTime"].timestamp()
    after = params.get("CreationTimeAfter")
    before = params.get("CreationTimeBefore")
    return (after is None or created > after) and (before is None or created < before)


_Record = TypeVar("_Record", _Group, _Package)


def _listing(
    records: list[_Record], name: Callable[[_Record], str], params: Mapping[str, Any], summary_shape: str
) -> dict[str, Any]:
    """One page of a List* answer: sorted by `SortBy` (`Name` or `CreationTime`, ties in creation order),
    `MaxResults` long, with a `NextToken` when more remain; each record projected on `summary_shape`."""
    sort_by = params.get("SortBy", "CreationTime")

    def key(record: _Record) -> SortKey:
        return (
            name(record) if sort_by == "Name" else record.fields["CreationTime"].timestamp()
        ), record.sequence

    chosen, token = page(
        records,
        key,
        sort_by=sort_by,
        descending=params.get("SortOrder") == "Descending",
        max_results=params.get("MaxResults", DEFAULT_MAX_RESULTS),
        next_token=params.get("NextToken"),
    )
    answer: dict[str, Any] = {f"{summary_shape}List": [_project(r.fields, summary_shape) for r in chosen]}
    if token is not None:
        answer["NextToken"] = token
    return answer


def _now() -> datetime:
    return datetime.now(timezone.utc)
