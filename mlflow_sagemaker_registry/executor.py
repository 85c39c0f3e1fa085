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
from typing import Any

from .actions import (
    Action,
    CreateGroup,
    CreatePackage,
    DeletePackage,
    LinkVersion,
    MoveAlias,
    PullApproval,
    RecordProblem,
    UpdatePackage,
)
from .config import Settings
from .domain import ApprovalStatus
from .errors import MlsyncError
from .mapping import sync_status
from .mapping.tags import (
    MAX_TAG_VALUE,
    TAG_APPROVED_AT,
    TAG_PACKAGE_ARN,
    TAG_SYNC_STATUS,
    TAG_SYNCED_APPROVAL,
)
from .planner import Plan
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


@dataclass
class _Run:
    """What one `apply` has done so far: the report, and what failed (so dependants are skipped)."""

    report: Report = field(default_factory=Report)
    failed_models: set[str] = field(default_factory=set)
    failed_versions: set[tuple[str, str]] = field(default_factory=set)

    def follows_a_failure(self, action: Action) -> bool:
        """An MLflow write after a failed SageMaker write of its version: what MLflow records follows
        what SageMaker holds, so the next run decides instead."""
        return (action.model_name, action.version) in self.failed_versions


class Executor:
    """Applies plans; holds nothing between calls but its collaborators.

    Each action type has one handler (`_HANDLERS`): adding an action is adding its class in actions.py,
    its handler here and the planner rule that makes it.
    """

    def __init__(self, settings: Settings, gateways: Gateways) -> None:
        self._source = gateways.source
        self._registry = gateways.registry
        self._storage = gateways.storage
        self._stager = Stager(settings, gateways)

    def apply(self, plan: Plan, progress: Callable[[Action], None] | None = None) -> Report:
        """Apply every action in order; a failed group or version skips only what depends on it."""
        run = _Run()
        # Models that could not be planned failed already; their versions' records are in the plan.
        run.report.failures.extend(Failure(u.model_name, "", "Plan", u.message) for u in plan.unplanned)
        for action in plan.actions:
            try:
                _HANDLERS[type(action)](self, action, run)
            except MlsyncError as exc:
                self._record_failure(action, exc, run)
            if progress is not None:
                progress(action)
        return run.report

    def _create_group(self, action: CreateGroup, run: _Run) -> None:
        self._registry.create_group(action.spec)
        run.report.groups_created.append(action.spec.name)

    def _create_package(self, action: CreatePackage, run: _Run) -> None:
        """Documents, then the artifact, then the package, then the MLflow back-link, in that order.

        A crash between the create and the tag leaves a package whose metadata names its version, so
        the next plan adopts it (and its ClientToken makes a retried create return the same package).
        """
        spec = action.spec
        if spec.model_name in run.failed_models:
            raise MlsyncError(f"group {spec.group_name} could not be created")
        for document in spec.documents:
            self._storage.put_document(document)
        staged = self._stager.stage(spec)
        run.report.artifacts_uploaded += staged.uploaded
        arn = self._registry.create_package(spec, staged.inference)
        tags = {
            TAG_PACKAGE_ARN: arn,
            TAG_SYNC_STATUS: sync_status(spec),
            TAG_SYNCED_APPROVAL: spec.approval.value,
        }
        stamp = spec.approval is ApprovalStatus.APPROVED
        self._source.set_version_tags(spec.model_name, spec.version, _stamped(tags, stamp))
        run.report.packages_created.append(arn)

    def _update_package(self, action: UpdatePackage, run: _Run) -> None:
        if action.after is not None and (action.model_name, action.after) in run.failed_versions:
            raise MlsyncError(
                f"not applied: updating version {action.after} failed first, and this depends on it"
            )
        for document in action.documents:
            self._storage.put_document(document)
        self._registry.update_package(action.arn, action.change)
        run.report.packages_updated.append(action.arn)

    def _delete_package(self, action: DeletePackage, run: _Run) -> None:
        self._registry.delete_package(action.arn)
        run.report.packages_deleted.append(action.arn)

    def _link_version(self, action: LinkVersion, run: _Run) -> None:
        if not run.follows_a_failure(action):
            tags = _stamped(action.tags, action.stamp_approved)
            self._source.set_version_tags(action.model_name, action.version, tags)
            run.report.versions_linked.append(f"{action.model_name}/{action.version}")

    def _pull_approval(self, action: PullApproval, run: _Run) -> None:
        if not run.follows_a_failure(action):
            tags = _stamped(action.tags, action.stamp_approved)
            self._source.set_version_tags(action.model_name, action.version, tags)
            run.report.approvals_pulled.append(f"{action.model_name}/{action.version}")

    def _move_alias(self, action: MoveAlias, run: _Run) -> None:
        if not run.follows_a_failure(action):
            self._source.set_alias(action.model_name, action.alias, action.version)
            run.report.aliases_moved.append(f"{action.model_name}@{action.alias}")

    def _record_problem(self, action: RecordProblem, run: _Run) -> None:
        self._source.set_version_tags(action.model_name, action.version, {TAG_SYNC_STATUS: action.message})

    def _record_failure(self, action: Action, exc: MlsyncError, run: _Run) -> None:
        """Remember the failure and, for a version, tag it so the MLflow UI shows why it is not mirrored."""
        model, version, name = action.model_name, action.version, type(action).__name__
        run.report.failures.append(Failure(model, version, name, str(exc)))
        if not version:  # a model-level action (its group): the model's creates are skipped
            run.failed_models.add(model)
            log.error("model %r: %s failed: %s", model, name, exc)
            return
        run.failed_versions.add((model, version))
        log.error("model %r version %s: %s failed: %s", model, version, name, exc)
        try:
            self._source.set_version_tags(model, version, {TAG_SYNC_STATUS: f"failed: {exc}"[:MAX_TAG_VALUE]})
        except MlsyncError as tag_exc:
            log.error("could not record the failure on model %r version %s: %s", model, version, tag_exc)


_HANDLERS: Mapping[type, Callable[[Executor, Any, _Run], None]] = {
    CreateGroup: Executor._create_group,
    CreatePackage: Executor._create_package,
    UpdatePackage: Executor._update_package,
    DeletePackage: Executor._delete_package,
    LinkVersion: Executor._link_version,
    PullApproval: Executor._pull_approval,
    MoveAlias: Executor._move_alias,
    RecordProblem: Executor._record_problem,
}
"""The one place an action's type decides what happens: one handler per action class."""


def _stamped(tags: Mapping[str, str], stamp_approved: bool) -> dict[str, str]:
    """`tags`, plus `mlsync.approved_at` = now (UTC, ISO 8601) when the version has just become Approved."""
    if not stamp_approved:
        return dict(tags)
    return {**tags, TAG_APPROVED_AT: datetime.now(timezone.utc).isoformat(timespec="seconds")}
