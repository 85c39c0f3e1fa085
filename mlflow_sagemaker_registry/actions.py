"""The steps of a plan: small frozen values, each saying what it changes, as data and as one line of text.

Like octodns' Create / Update / Delete changes: the planner makes them, the executor applies them (one
handler per type, in its table), and `mlsync plan` prints them. Every action names the model and the
version it is about (`version` is empty for a model-level action), so callers never need to know the
type to ask "which version?"; `describe()` is the JSON form and `text()` the line `mlsync plan` prints.

Pure: stdlib and the domain only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .domain import ApprovalStatus, Document, GroupSpec, Lifecycle, ModelCard, PackageSpec, PackageUpdate


class _Step:
    """What every action shares: whether the safety threshold counts it (most do not)."""

    @property
    def changes_approval(self) -> bool:
        """Whether the action changes what can be deployed (an approval, a deletion): what
        `Plan.check_safety` counts."""
        return False


@dataclass(frozen=True)
class CreateGroup(_Step):
    """Create the model package group of a registered model."""

    spec: GroupSpec
    NOUN: ClassVar[str] = "groups to create"

    @property
    def model_name(self) -> str:
        return self.spec.model_name

    @property
    def version(self) -> str:
        return ""

    def describe(self) -> dict[str, Any]:
        return {"action": "create-group", "group": self.spec.name, "model": self.spec.model_name}

    def text(self) -> str:
        return f"+ group   {self.spec.name} (MLflow model {self.spec.model_name!r})"


@dataclass(frozen=True)
class CreatePackage(_Step):
    """Create the package of one MLflow version (then tag the version with its ARN)."""

    spec: PackageSpec
    NOUN: ClassVar[str] = "packages to create"

    @property
    def model_name(self) -> str:
        return self.spec.model_name

    @property
    def version(self) -> str:
        return self.spec.version

    def describe(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "action": "create-package",
            "group": spec.group_name,
            "model": spec.model_name,
            "version": spec.version,
            "approval": spec.approval.value,
            "approval_reason": spec.approval_reason,
            "lifecycle": _lifecycle_dict(spec.lifecycle),
            "client_token": spec.client_token,
            "metadata_entries": len(spec.customer_metadata),
            "documents": [d.s3_uri for d in spec.documents],
            "model_card": spec.model_card.status if spec.model_card else None,
        }

    def text(self) -> str:
        spec = self.spec
        return (
            f"+ package {spec.model_name} v{spec.version} -> {spec.group_name}: "
            f"{spec.approval.value} ({_rule(spec.approval_reason)})"
        )


@dataclass(frozen=True)
class UpdatePackage(_Step):
    """Change the updatable fields of an existing package in one UpdateModelPackage call.

    `previous_approval` and `previous_card` are what the approval and the model card were (for the
    plan's "from -> to"); `documents` are the S3 documents the new metadata names, written first; `after`
    see below.
    """

    arn: str
    model_name: str
    version: str
    change: PackageUpdate = field(default_factory=PackageUpdate)
    previous_approval: ApprovalStatus | None = None
    documents: tuple[Document, ...] = ()
    after: str | None = None
    """A version of the same model whose update must have succeeded first (a rollback rejects the
    deployed version only once its target is approved, so something stays deployable)."""
    previous_card: ModelCard | None = None
    NOUN: ClassVar[str] = "packages to update"

    @property
    def changes_approval(self) -> bool:
        """Whether the update changes `ModelApprovalStatus` (what the safety threshold counts)."""
        return self.change.approval is not None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": "update-package",
            "arn": self.arn,
            "model": self.model_name,
            "version": self.version,
        }
        change = self.change
        if change.approval is not None:
            out["approval"] = {"from": _value(self.previous_approval), "to": change.approval.value}
            out["approval_reason"] = change.approval_reason
        if change.model_card is not None:
            out["model_card"] = {
                "status": {"from": _card_status(self.previous_card), "to": change.model_card.status},
                "changed": _changed_sections(self.previous_card, change.model_card),
                "content": change.model_card.sections,
            }
        # Every other field as it is (a new updatable field needs nothing here).
        for name, value in vars(change).items():
            if name not in ("approval", "approval_reason", "model_card") and value:
                out[name] = _plain(value)
        return out

    def text(self) -> str:
        change, parts = self.change, []
        if change.approval is not None:
            previous = _value(self.previous_approval) or "-"
            parts.append(f"approval {previous} -> {change.approval.value} ({_rule(change.approval_reason)})")
        if change.lifecycle is not None:
            parts.append(f"lifecycle {change.lifecycle.stage}/{change.lifecycle.stage_status}")
        if change.metadata_set or change.metadata_remove:
            parts.append(f"metadata {len(change.metadata_set)} set, {len(change.metadata_remove)} removed")
        if change.model_card is not None:
            changed = _changed_sections(self.previous_card, change.model_card)
            status = f"{_card_status(self.previous_card) or '-'} -> {change.model_card.status}"
            parts.append(f"model card {status}" + (f" ({', '.join(changed)} changed)" if changed else ""))
        return f"~ package {self.model_name} v{self.version}: {'; '.join(parts)}"


@dataclass(frozen=True)
class LinkVersion(_Step):
    """Write the back-link tags (package ARN, sync status, synced approval) on the MLflow version.

    `stamp_approved`: the version has just become Approved; the executor adds `mlsync.approved_at` with
    the time it writes, the record `mlsync rollback` goes back by.
    """

    model_name: str
    version: str
    tags: Mapping[str, str]
    stamp_approved: bool = False
    NOUN: ClassVar[str] = "MLflow versions to tag"

    def describe(self) -> dict[str, Any]:
        return {
            "action": "link-version",
            "model": self.model_name,
            "version": self.version,
            "tags": dict(self.tags),
            "stamp_approved": self.stamp_approved,
        }

    def text(self) -> str:
        return f"~ mlflow  {self.model_name} v{self.version}: tag {', '.join(sorted(self.tags))}"


@dataclass(frozen=True)
class PullApproval(_Step):
    """Write a SageMaker approval into MLflow: the approval tag (so the mapping then agrees), why, who
    and when, and last the synced approval (a crash before it leaves the pull to be done again).

    `wanted` is what the MLflow mapping gave before the pull; `by` who made the change in SageMaker.
    """

    model_name: str
    version: str
    arn: str
    approval: ApprovalStatus
    wanted: ApprovalStatus
    tags: Mapping[str, str]
    stamp_approved: bool = False
    by: str = ""
    NOUN: ClassVar[str] = "approvals to pull into MLflow"

    def describe(self) -> dict[str, Any]:
        return {
            "action": "pull-approval",
            "model": self.model_name,
            "version": self.version,
            "arn": self.arn,
            "approval": {"from": self.wanted.value, "to": self.approval.value},
            "tags": dict(self.tags),
            "stamp_approved": self.stamp_approved,
        }

    def text(self) -> str:
        return (
            f"< mlflow  {self.model_name} v{self.version}: approval {self.wanted.value} -> "
            f"{self.approval.value} from SageMaker{f' (by {self.by})' if self.by else ''}"
        )


@dataclass(frozen=True)
class MoveAlias(_Step):
    """Point an MLflow alias at another version (a rollback moves the approval alias to its target)."""

    model_name: str
    version: str
    alias: str
    previous: str
    NOUN: ClassVar[str] = "aliases to move"

    def describe(self) -> dict[str, Any]:
        return {
            "action": "move-alias",
            "model": self.model_name,
            "version": self.version,
            "alias": self.alias,
            "from": self.previous,
        }

    def text(self) -> str:
        return f"~ mlflow  {self.model_name} @{self.alias}: v{self.previous} -> v{self.version}"


@dataclass(frozen=True)
class RecordProblem(_Step):
    """Record on the MLflow version why it cannot be mirrored (its sync-status tag)."""

    model_name: str
    version: str
    message: str
    NOUN: ClassVar[str] = "MLflow versions to tag"

    def describe(self) -> dict[str, Any]:
        return {
            "action": "record-problem",
            "model": self.model_name,
            "version": self.version,
            "message": self.message,
        }

    def text(self) -> str:
        return f"~ mlflow  {self.model_name} v{self.version}: record {self.message}"


@dataclass(frozen=True)
class DeletePackage(_Step):
    """Delete the package of an MLflow version that was deleted (only with `on_delete = "delete"`)."""

    arn: str
    model_name: str
    version: str
    NOUN: ClassVar[str] = "packages to delete"

    @property
    def changes_approval(self) -> bool:
        """A deleted package can no longer be deployed: it counts toward the safety threshold like an
        approval change (octodns keeps a threshold for deletes too)."""
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "action": "delete-package",
            "arn": self.arn,
            "model": self.model_name,
            "version": self.version,
        }

    def text(self) -> str:
        return f"- package {self.model_name} v{self.version}: delete {self.arn}"


@dataclass(frozen=True)
class PutGroupPolicy(_Step):
    """Write the group's resource policy (mlsync's sharing statements merged into the held policy),
    then record what mlsync wrote on the registered model (`mlsync.group_policy`).

    `write` is False when SageMaker already holds that policy and only the record is behind (a run
    that stopped between the two writes).
    """

    model_name: str
    group_name: str
    policy: str
    accounts: tuple[str, ...]
    record: str
    write: bool = True
    NOUN: ClassVar[str] = "group policies to write"

    @property
    def version(self) -> str:
        return ""

    def describe(self) -> dict[str, Any]:
        return {
            "action": "put-group-policy",
            "group": self.group_name,
            "model": self.model_name,
            "share_with": list(self.accounts),
            "policy": self.policy,
            "write": self.write,
        }

    def text(self) -> str:
        done = "" if self.write else " (SageMaker has it; record only)"
        accounts = ", ".join(self.accounts) or "no account (others' statements kept)"
        return f"~ policy  {self.group_name}: share with {accounts}{done}"


@dataclass(frozen=True)
class DeleteGroupPolicy(_Step):
    """Delete the group's resource policy, which held only mlsync's statements (`share_with` is now
    empty), then record that on the registered model; `write` as for `PutGroupPolicy`."""

    model_name: str
    group_name: str
    record: str
    write: bool = True
    NOUN: ClassVar[str] = "group policies to delete"

    @property
    def version(self) -> str:
        return ""

    def describe(self) -> dict[str, Any]:
        return {
            "action": "delete-group-policy",
            "group": self.group_name,
            "model": self.model_name,
            "write": self.write,
        }

    def text(self) -> str:
        done = "" if self.write else " (SageMaker has none; record only)"
        return f"- policy  {self.group_name}: shared with no account{done}"


Action = (
    CreateGroup
    | CreatePackage
    | UpdatePackage
    | LinkVersion
    | PullApproval
    | MoveAlias
    | RecordProblem
    | DeletePackage
    | PutGroupPolicy
    | DeleteGroupPolicy
)
"""Every step a plan can have, in the order a summary counts them."""


def _rule(reason: str) -> str:
    """An approval reason without the `mlsync: ` that marks it in SageMaker."""
    return reason.removeprefix("mlsync: ")


def _lifecycle_dict(lifecycle: Lifecycle | None) -> dict[str, str] | None:
    return {"Stage": lifecycle.stage, "StageStatus": lifecycle.stage_status} if lifecycle else None


def _plain(value: object) -> object:
    """A field of a `PackageUpdate` as JSON data (lifecycles in SageMaker's own spelling)."""
    if isinstance(value, Lifecycle):
        return _lifecycle_dict(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _value(status: ApprovalStatus | None) -> str | None:
    return status.value if status else None


def _card_status(card: ModelCard | None) -> str | None:
    return card.status if card else None


def _changed_sections(before: ModelCard | None, after: ModelCard) -> list[str]:
    """The card sections (`intended_uses`, `evaluation_details`, ...) whose content differs."""
    old, new = before.sections if before else {}, after.sections
    return sorted(name for name in {*old, *new} if old.get(name) != new.get(name))
