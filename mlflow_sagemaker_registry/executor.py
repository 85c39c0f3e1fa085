"""Apply a `Plan` through the ports: the only step of a push that writes anything.

Idempotent by construction: every create carries the version's deterministic `ClientToken`, documents
and artifacts are content-addressed, and MLflow tags are written only when they differ. One version's
failure never stops the others: it is recorded on the version (sync-status tag) and in the report, and
the next push plans the same work again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any

from .actions import (
    Action,
    CreateGroup,
    CreatePackage,
    DeleteGroupPolicy,
    DeletePackage,
    LinkVersion,
    MoveAlias,
    PullApproval,
    PutGroupPolicy,
    RecordProblem,
    UpdatePackage,
)
from .config import Settings
from .domain import ApprovalStatus
from .errors import MlsyncError
from .mapping import sync_status
from .mapping.algorithm import staged_entries
from .mapping.tags import (
    MAX_TAG_VALUE,
    TAG_APPROVED_AT,
    TAG_GROUP_POLICY,
    TAG_PACKAGE_ARN,
    TAG_SYNC_STATUS,
    TAG_SYNCED_APPROVAL,
)
from .planner import Plan
from .ports import Gateways
from .staging import Staged, Stager

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
    group_policies_written: list[str] = field(default_factory=list)
    """Groups whose resource policy was put or deleted (`share_with`)."""
    artifacts_uploaded: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def extend(self, other: Report) -> None:
        """Add what `other` records after what this report records."""
        for entry in fields(self):
            mine, theirs = getattr(self, entry.name), getattr(other, entry.name)
            if isinstance(mine, list):
                mine.extend(theirs)
            else:
                setattr(self, entry.name, mine + theirs)

    def to_dict(self) -> dict[str, object]:
        return {
            "groups_created": self.groups_created,
            "packages_created": self.packages_created,
            "packages_updated": self.packages_updated,
            "packages_deleted": self.packages_deleted,
            "versions_linked": self.versions_linked,
            "approvals_pulled": self.approvals_pulled,
            "aliases_moved": self.aliases_moved,
            "group_policies_written": self.group_policies_written,
            "artifacts_uploaded": self.artifacts_uploaded,
            "failures": [f.__dict__ for f in self.failures],
        }


@dataclass
class _Run:
    """One action's part of an `apply`: its share of the report, what its staging step made, and what
    failed so far across the apply (shared by every action's `_Run`, so dependants are skipped)."""

    report: Report
    failed_models: dict[str, str]
    """The models whose group action failed, with why."""
    failed_versions: set[tuple[str, str]]
    staged: Staged | None = None

    def follows_a_failure(self, action: Action) -> bool:
        """An MLflow write after a failed SageMaker write of its version: what MLflow records follows
        what SageMaker holds, so the next run decides instead."""
        return (action.model_name, action.version) in self.failed_versions


class Executor:
    """Applies plans; holds nothing between calls but its collaborators.

    Each action type has its handlers in `_HANDLERS`, one a step (most actions are one step): adding an
    action is adding its class in actions.py, its handler here and the planner rule that makes it.
    """

    def __init__(self, settings: Settings, gateways: Gateways) -> None:
        self._concurrency = settings.concurrency
        self._source = gateways.source
        self._registry = gateways.registry
        self._stager = Stager(settings, gateways)

    def apply(self, plan: Plan, progress: Callable[[Action], None] | None = None) -> Report:
        """Apply every action, `concurrency` steps at a time, each once what it depends on is done.

        A failed group or version skips only what depends on it. `progress` is called in the calling
        thread as each action finishes; the report lists what was done in the plan's order.
        """
        failed_models: dict[str, str] = {}
        failed_versions: set[tuple[str, str]] = set()
        runs = [_Run(Report(), failed_models, failed_versions) for _ in plan.actions]
        steps = _tasks(plan.actions)
        waiting = {step: len(step.after) for step in steps}
        dependants: dict[_Task, list[_Task]] = {step: [] for step in steps}
        for step in steps:
            for before in step.after:
                dependants[before].append(step)
        workers = max(1, min(self._concurrency, len(steps)))  # threads are not free
        with ThreadPoolExecutor(workers, thread_name_prefix="mlsync-apply") as pool:
            running = {
                pool.submit(self._do, step, runs[step.index]): step for step in steps if not step.after
            }
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    step = running.pop(future)
                    future.result()
                    if step.last and progress is not None:
                        progress(step.action)
                    for next_step in dependants[step]:
                        waiting[next_step] -= 1
                        if not waiting[next_step]:
                            running[pool.submit(self._do, next_step, runs[next_step.index])] = next_step
        report = Report()
        # Models that could not be planned failed already; their versions' records are in the plan.
        report.failures.extend(Failure(u.model_name, "", "Plan", u.message) for u in plan.unplanned)
        for run in runs:
            report.extend(run.report)
        return report

    def _do(self, step: _Task, run: _Run) -> None:
        try:
            step.handler(self, step.action, run)
        except MlsyncError as exc:
            self._record_failure(step.action, exc, run)
        except Exception as exc:  # a bug, or a library's stray error: it fails one version, not all
            log.exception("unexpected error in %s", step.action.text())
            self._record_failure(step.action, MlsyncError(f"unexpected {type(exc).__name__}: {exc}"), run)
        else:
            if step.last:  # one line per action at -v: readable whatever order actions finish in
                log.info("done %s", step.action.text())

    def _create_group(self, action: CreateGroup, run: _Run) -> None:
        self._registry.create_group(action.spec)
        run.report.groups_created.append(action.spec.name)

    def _stage_package(self, action: CreatePackage, run: _Run) -> None:
        """Documents, then the artifact: the slow part of a create, done beside the other versions'."""
        if action.model_name in run.failed_models:
            why = run.failed_models[action.model_name]
            raise MlsyncError(f"group {action.spec.group_name} could not be created: {why}")
        for document in action.spec.documents:
            self._stager.put_document(document)
        run.staged = self._stager.stage(action.spec)
        run.report.artifacts_uploaded += run.staged.uploaded

    def _create_package(self, action: CreatePackage, run: _Run) -> None:
        """The package, then the MLflow back-link, once the model is staged and the group exists.

        A crash between the create and the tag leaves a package whose metadata names its version, so
        the next plan adopts it (and its ClientToken makes a retried create return the same package).
        """
        spec = action.spec
        if run.staged is None:
            return  # staging failed, and that failure is recorded
        staged = staged_entries(run.staged.algorithm, spec.staged_keys)
        created = replace(spec, customer_metadata={**spec.customer_metadata, **staged})
        arn = self._registry.create_package(created, run.staged.inference)
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
            self._stager.put_document(document)
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

    def _put_group_policy(self, action: PutGroupPolicy, run: _Run) -> None:
        """The policy, then its record on the registered model: a run stopped between the two leaves a
        record that differs, so the next plan reads the policy and writes only the record."""
        _check_group(action, run)
        if action.write:
            self._registry.put_group_policy(action.group_name, action.policy)
            run.report.group_policies_written.append(action.group_name)
        self._source.set_model_tags(action.model_name, {TAG_GROUP_POLICY: action.record})

    def _delete_group_policy(self, action: DeleteGroupPolicy, run: _Run) -> None:
        _check_group(action, run)
        if action.write:
            self._registry.delete_group_policy(action.group_name)
            run.report.group_policies_written.append(action.group_name)
        self._source.set_model_tags(action.model_name, {TAG_GROUP_POLICY: action.record})

    def _record_problem(self, action: RecordProblem, run: _Run) -> None:
        self._source.set_version_tags(action.model_name, action.version, {TAG_SYNC_STATUS: action.message})

    def _record_failure(self, action: Action, exc: MlsyncError, run: _Run) -> None:
        """Remember the failure and, for a version, tag it so the MLflow UI shows why it is not mirrored."""
        model, version, name = action.model_name, action.version, type(action).__name__
        run.report.failures.append(Failure(model, version, name, str(exc)))
        if not version:  # a model-level action; only its group's failure skips the model's creates
            if isinstance(action, CreateGroup):
                run.failed_models[model] = str(exc)
            log.error("model %r: %s failed: %s", model, name, exc)
            return
        run.failed_versions.add((model, version))
        log.error("model %r version %s: %s failed: %s", model, version, name, exc)
        try:
            self._source.set_version_tags(model, version, {TAG_SYNC_STATUS: f"failed: {exc}"[:MAX_TAG_VALUE]})
        except MlsyncError as tag_exc:
            log.error("could not record the failure on model %r version %s: %s", model, version, tag_exc)


def _check_group(action: PutGroupPolicy | DeleteGroupPolicy, run: _Run) -> None:
    """A group policy is not tried on a group whose creation failed (that failure is reported)."""
    if action.model_name in run.failed_models:
        why = run.failed_models[action.model_name]
        raise MlsyncError(f"group {action.group_name} could not be created: {why}")


_Handler = Callable[[Executor, Any, _Run], None]

_HANDLERS: Mapping[type, tuple[_Handler, ...]] = {
    CreateGroup: (Executor._create_group,),
    CreatePackage: (Executor._stage_package, Executor._create_package),
    UpdatePackage: (Executor._update_package,),
    DeletePackage: (Executor._delete_package,),
    LinkVersion: (Executor._link_version,),
    PullApproval: (Executor._pull_approval,),
    MoveAlias: (Executor._move_alias,),
    RecordProblem: (Executor._record_problem,),
    PutGroupPolicy: (Executor._put_group_policy,),
    DeleteGroupPolicy: (Executor._delete_group_policy,),
}
"""The one place an action's type decides what happens: the handlers of its steps, in order. Only the
last step waits for other actions of its model (see `_tasks`); the ones before it wait only for the
model's group, then run as soon as a worker is free."""


@dataclass(eq=False)
class _Task:
    """One handler call of one action, and the steps it must wait for."""

    index: int
    """The action's place in the plan."""
    action: Action
    handler: _Handler
    after: list[_Task]
    last: bool


def _tasks(actions: Sequence[Action]) -> list[_Task]:
    """The steps of `actions` and what each waits for, so concurrency keeps what order meant.

    An action's first step waits for its model's group action (nothing is staged for a group that
    failed). Its last step waits for its own step before it; for the previous action of the same
    version (a version's MLflow write follows its SageMaker write); for its model's group action (a
    create needs the group); for the previous create of its model (SageMaker numbers a group's
    packages in creation order, so they follow MLflow's version order); and for the version named by
    `UpdatePackage.after` (a rollback rejects only once the target is approved).
    """
    steps: list[_Task] = []
    last_of_version: dict[tuple[str, str], _Task] = {}
    group_of_model: dict[str, _Task] = {}
    last_create: dict[str, _Task] = {}
    for index, action in enumerate(actions):
        handlers = _HANDLERS[type(action)]
        model, version = action.model_name, action.version
        group = group_of_model.get(model)
        chain: list[_Task] = []
        for handler in handlers:
            after = chain[-1:] or ([group] if group is not None else [])
            chain.append(_Task(index, action, handler, after, handler is handlers[-1]))
        final = chain[-1]
        before = [
            last_of_version.get((model, version)),
            group,
            last_create.get(model) if isinstance(action, CreatePackage) else None,
            last_of_version.get((model, action.after))
            if isinstance(action, UpdatePackage) and action.after
            else None,
        ]
        final.after.extend(step for step in before if step is not None and step not in final.after)
        if version:
            last_of_version[(model, version)] = final
        elif isinstance(action, CreateGroup):  # a group policy waits for its group, nothing for it
            group_of_model[model] = final
        if isinstance(action, CreatePackage):
            last_create[model] = final
        steps.extend(chain)
    return steps


def _stamped(tags: Mapping[str, str], stamp_approved: bool) -> dict[str, str]:
    """`tags`, plus `mlsync.approved_at` = now (UTC, ISO 8601) when the version has just become Approved.

    The stamp comes first: tags are written one by one in this order, and the synced approval, last,
    is what tells the next run the version is no longer becoming Approved. A process killed between
    the two then leaves a stamp the next run writes again, never an approval without its stamp.
    """
    if not stamp_approved:
        return dict(tags)
    return {TAG_APPROVED_AT: datetime.now(timezone.utc).isoformat(timespec="seconds"), **tags}
