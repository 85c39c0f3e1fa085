"""Apply a `Plan` through the ports: the only step of a push that writes anything.

Idempotent by construction: every create carries the version's deterministic `ClientToken`, documents
and artifacts are content-addressed, and MLflow tags are written only when they differ. One version's
failure never stops the others: it is recorded on the version (sync-status tag) and in the report, and
the next push plans the same work again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .config import Settings
from .domain import ApprovalStatus, Inference, PackageSpec
from .errors import MlsyncError
from .mapping import (
    MAX_TAG_VALUE,
    TAG_APPROVED_AT,
    TAG_PACKAGE_ARN,
    TAG_SYNC_STATUS,
    TAG_SYNCED_APPROVAL,
    sync_status,
)
from .planner import (
    Action,
    CreateGroup,
    CreatePackage,
    DeletePackage,
    LinkVersion,
    MoveAlias,
    Plan,
    PullApproval,
    RecordProblem,
    UpdatePackage,
    VersionAction,
)
from .ports import Gateways
from .staging import Stager

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    """One action that failed, with the version it was for."""

    model_name: str
    version: str
    action: str
    message: str


@dataclass
class Report:
    """What a push did.

    `artifacts_uploaded` counts the objects staging uploaded (`model.tar.gz` files and sample payloads);
    content-addressed keys that already exist are not uploaded again, so a re-push counts 0.
    """

    groups_created: list[str] = field(default_factory=list)
    packages_created: list[str] = field(default_factory=list)
    packages_updated: list[str] = field(default_factory=list)
    packages_deleted: list[str] = field(default_factory=list)
    versions_linked: list[str] = field(default_factory=list)
    approvals_pulled: list[str] = field(default_factory=list)
    aliases_moved: list[str] = field(default_factory=list)
    artifacts_uploaded: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, object]:
        return {
            "groups_created": self.groups_created,
            "packages_created": self.packages_created,
            "packages_updated": self.packages_updated,
            "packages_deleted": self.packages_deleted,
            "versions_linked": self.versions_linked,
            "approvals_pulled": self.approvals_pulled,
            "aliases_moved": self.aliases_moved,
            "artifacts_uploaded": self.artifacts_uploaded,
            "failures": [f.__dict__ for f in self.failures],
        }


class Executor:
    """Applies plans; holds nothing between calls but its collaborators."""

    def __init__(self, settings: Settings, gateways: Gateways) -> None:
        self._source = gateways.source
        self._registry = gateways.registry
        self._storage = gateways.storage
        self._stager = Stager(settings, gateways)

    def apply(self, plan: Plan, progress: Callable[[Action], None] | None = None) -> Report:
        """Apply every action in order; a failed group or version skips only what depends on it."""
        report = Report()
        failed_groups: set[str] = set()
        failed_versions: set[tuple[str, str]] = set()
        for action in plan.actions:
            try:
                self._apply_one(action, report, failed_groups, failed_versions)
            except MlsyncError as exc:
                self._record_failure(action, exc, report, failed_groups, failed_versions)
            if progress is not None:
                progress(action)
        return report

    def _apply_one(
        self,
        action: Action,
        report: Report,
        failed_groups: set[str],
        failed_versions: set[tuple[str, str]],
    ) -> None:
        if isinstance(action, CreateGroup):
            self._registry.create_group(action.spec)
            report.groups_created.append(action.spec.name)
        elif isinstance(action, CreatePackage):
            if action.spec.group_name in failed_groups:
                raise MlsyncError(f"group {action.spec.group_name} could not be created")
            arn = self._create(action.spec, report)
            report.packages_created.append(arn)
        elif isinstance(action, UpdatePackage):
            for document in action.documents:
                self._storage.put_document(document)
            self._registry.update_package(
                action.arn,
                approval=action.approval,
                approval_reason=action.approval_reason,
                lifecycle=action.lifecycle,
                metadata_set=action.metadata_set,
                metadata_remove=action.metadata_remove,
            )
            report.packages_updated.append(action.arn)
        elif (action.model_name, action.version) in failed_versions:
            # What MLflow records follows what SageMaker holds: after a failed write, the next run decides.
            return
        elif isinstance(action, LinkVersion):
            tags = _stamped(action.tags, action.stamp_approved)
            self._source.set_version_tags(action.model_name, action.version, tags)
            report.versions_linked.append(f"{action.model_name}/{action.version}")
        elif isinstance(action, PullApproval):
            tags = _stamped(action.tags, action.stamp_approved)
            self._source.set_version_tags(action.model_name, action.version, tags)
            report.approvals_pulled.append(f"{action.model_name}/{action.version}")
        elif isinstance(action, MoveAlias):
            self._source.set_alias(action.model_name, action.alias, action.version)
            report.aliases_moved.append(f"{action.model_name}@{action.alias}")
        elif isinstance(action, RecordProblem):
            self._source.set_version_tags(
                action.model_name, action.version, {TAG_SYNC_STATUS: action.message}
            )
        elif isinstance(action, DeletePackage):
            self._registry.delete_package(action.arn)
            report.packages_deleted.append(action.arn)

    def _create(self, spec: PackageSpec, report: Report) -> str:
        """Documents, then the artifact, then the package, then the MLflow back-link, in that order.

        A crash between the create and the tag leaves a package whose metadata names its version, so
        the next plan adopts it (and its ClientToken makes a retried create return the same package).
        """
        for document in spec.documents:
            self._storage.put_document(document)
        served = self._stage(spec, report)
        arn = self._registry.create_package(spec, served)
        tags = {
            TAG_PACKAGE_ARN: arn,
            TAG_SYNC_STATUS: sync_status(spec),
            TAG_SYNCED_APPROVAL: spec.approval.value,
        }
        stamp = spec.approval is ApprovalStatus.APPROVED
        self._source.set_version_tags(spec.model_name, spec.version, _stamped(tags, stamp))
        return arn

    def _stage(self, spec: PackageSpec, report: Report) -> Inference:
        """The model data in S3 (uploaded only when new) and how SageMaker should serve it."""
        staged = self._stager.stage(spec)
        report.artifacts_uploaded += staged.uploaded
        return staged.inference

    def _record_failure(
        self,
        action: Action,
        exc: MlsyncError,
        report: Report,
        failed_groups: set[str],
        failed_versions: set[tuple[str, str]],
    ) -> None:
        """Remember the failure and, for a version, tag it so the MLflow UI shows why it is not mirrored."""
        name = type(action).__name__
        if isinstance(action, CreateGroup):
            failed_groups.add(action.spec.name)
            report.failures.append(Failure(action.spec.model_name, "", name, str(exc)))
            log.error("creating group %s failed: %s", action.spec.name, exc)
            return
        model, version = _version_of(action)
        failed_versions.add((model, version))
        report.failures.append(Failure(model, version, name, str(exc)))
        log.error("model %r version %s: %s failed: %s", model, version, name, exc)
        try:
            self._source.set_version_tags(model, version, {TAG_SYNC_STATUS: f"failed: {exc}"[:MAX_TAG_VALUE]})
        except MlsyncError as tag_exc:
            log.error("could not record the failure on model %r version %s: %s", model, version, tag_exc)


def _version_of(action: VersionAction) -> tuple[str, str]:
    if isinstance(action, CreatePackage):
        return action.spec.model_name, action.spec.version
    return action.model_name, action.version


def _stamped(tags: Mapping[str, str], stamp_approved: bool) -> dict[str, str]:
    """`tags`, plus `mlsync.approved_at` = now (UTC, ISO 8601) when the version has just become Approved."""
    if not stamp_approved:
        return dict(tags)
    return {**tags, TAG_APPROVED_AT: datetime.now(timezone.utc).isoformat(timespec="seconds")}
