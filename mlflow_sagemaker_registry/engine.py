"""The one composer: read MLflow -> map -> observe SageMaker -> plan -> check -> apply.

Every trigger (CLI, registry-store plugin, webhook receiver) goes through `Engine`, so a version is
mirrored the same way whichever way it arrives. `connect()` wires the real gateways; tests may build an
`Engine` over any objects that fit the ports.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .actions import Action, LinkVersion
from .approval_merge import FOLLOW
from .config import Settings
from .domain import (
    ApprovalStatus,
    GroupListing,
    GroupSpec,
    ObservedGroup,
    PackageSpec,
    SourceModel,
)
from .errors import GatewayError, MappingError, SourceError
from .executor import Executor, Report
from .mapping import desired_group, desired_package
from .mapping.approval import decide_approval, settle_approval
from .mapping.documents import headline_metric
from .mapping.identity import (
    KEY_MODEL,
    group_name,
    identity_key,
    identity_of,
    legacy_group_name,
    owner_of,
)
from .mapping.sharing import NOT_SHARED, own_statements, policy_record
from .mapping.tags import TAG_GROUP_POLICY, TAG_PACKAGE_ARN, TAG_SYNC_STATUS
from .planner import (
    Plan,
    plan_group_policy,
    plan_model,
    plan_unreadable,
    retire_actions,
    trusted_packages,
)
from .ports import Gateways, Registry
from .rollback import plan_rollback
from .targets import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusRow:
    """One line of `mlsync status`: an MLflow version next to its SageMaker package."""

    version: str
    package: str | None
    metric_name: str | None
    metric_value: float | None
    stage: str
    aliases: tuple[str, ...]
    approval: str | None
    desired_approval: str | None
    in_sync: bool
    note: str = ""
    conflict: str = ""
    package_status: str | None = None
    """SageMaker's `ModelPackageStatus` (Completed, InProgress, Failed): the Status of Studio's table."""


@dataclass(frozen=True)
class _PlanOptions:
    """How one reconcile plans (see `Engine.plan`)."""

    pull_only: bool = False
    deep: bool = False
    prune: bool = False


class GroupReads:
    """How one plan reads model package groups: one group at a time, or from the whole account's
    listing read once (`Registry.list_groups`), which answers for the groups it does not hold too."""

    def __init__(self, registry: Registry, listings: Mapping[str, GroupListing] | None = None) -> None:
        self._registry = registry
        self._listings = listings

    def listing(self, name: str) -> GroupListing | None:
        if self._listings is None:
            return self._registry.list_group(name)
        return self._listings.get(name)


class Engine:
    """Plans and applies reconciles of chosen models (or all of them) for one target.

    A target other than the `primary` (targets.py) pulls nothing: its approvals follow MLflow's mapping,
    and reviews are pulled from the primary only. Its tags are its own through the source it is given
    (`sources.target_view`).
    """

    def __init__(
        self, settings: Settings, gateways: Gateways, *, target: Target | None = None, primary: bool = True
    ) -> None:
        self.settings = settings
        self.gateways = gateways
        self.target = target or Target()
        self.primary = primary
        self.source = gateways.source
        self.registry = gateways.registry
        self.storage = gateways.storage

    def plan(
        self,
        names: Sequence[str] | None = None,
        *,
        pull_only: bool = False,
        deep: bool = False,
        prune: bool | None = None,
    ) -> Plan:
        """The plan for `names` (every registered model when None); reads only.

        With `pull_only`, only the MLflow writes that record SageMaker-side approval changes (`pull`).
        `deep` describes every package instead of presuming the ones MLflow's tags vouch for, so hand
        edits of their metadata in SageMaker are seen (and set back). `prune` (default: the `prune`
        setting) retires the packages of versions deleted in MLflow, as `on_delete` says.
        """
        if pull_only and not self.primary:
            return Plan()
        options = _PlanOptions(pull_only, deep, self.settings.prune if prune is None else prune)
        groups = self._group_reads(whole_registry=not names)
        chosen = self._names(names)
        # Each model is read and planned on its own (MLflow and SageMaker reads are round trips); the
        # plans are joined in name order, so a plan reads the same whatever finished first.
        workers = max(1, min(self.settings.concurrency, len(chosen)))  # threads are not free
        with ThreadPoolExecutor(workers, thread_name_prefix="mlsync-plan") as pool:
            plans = list(pool.map(lambda name: self._plan_isolated(name, options, groups), chosen))
        return sum(plans, Plan())

    def _group_reads(self, *, whole_registry: bool) -> GroupReads:
        """Where this plan reads group listings: the whole account's at once for a whole-registry plan
        (a few pages instead of two reads per model), else one group at a time."""
        if not whole_registry:
            return GroupReads(self.registry)
        try:
            return GroupReads(self.registry, self.registry.list_groups(self.settings.group_prefix))
        except GatewayError as exc:
            log.warning("listing every model package group failed (%s); reading one group at a time", exc)
            return GroupReads(self.registry)

    def _plan_isolated(self, name: str, options: _PlanOptions, groups: GroupReads) -> Plan:
        """One model's plan; a failure to read it (MLflow or SageMaker) becomes part of the plan, so one
        failing model (throttled past the retries, denied by IAM) never stops the others."""
        model: SourceModel | None = None
        try:
            model = self.source.read_model(name)
            if model.is_prompt:
                log.info("skipping %r: it is an MLflow prompt, not a model to deploy", name)
                return Plan()
            if self.target.only_approved and not model.versions:
                return Plan()  # no group in a production account for a model none of whose versions go
            return self._plan_model(model, options, groups)[0]
        except (SourceError, GatewayError) as exc:
            log.error(
                "model %r could not be planned: %s (recorded on its versions; the next reconcile retries)",
                name,
                exc,
            )
            return plan_unreadable(model, name, str(exc))

    def pull(
        self, names: Sequence[str] | None = None, *, progress: Callable[[Action], None] | None = None
    ) -> tuple[Plan, Report]:
        """Record SageMaker's approval changes in MLflow; never writes to SageMaker."""
        plan = self.plan(names, pull_only=True)
        return plan, self.apply(plan, progress=progress)

    def plan_rollback(self, name: str, to: str | None = None, reason: str = "") -> Plan:
        """The plan of `mlsync rollback` (rollback.py); reads only.

        Raises:
            RollbackError: nothing is deployed, or the target is unknown (the message names the fix).
        """
        plan, model, observed = self._plan_one(name)
        by_arn = {p.arn: p for p in observed.packages} if observed else {}
        packages = {version: by_arn[arn] for _, version, arn in plan.matched}
        statuses = {
            action.version: action.tags[TAG_SYNC_STATUS]
            for action in plan.actions
            if isinstance(action, LinkVersion) and TAG_SYNC_STATUS in action.tags
        }
        return plan_rollback(
            model, packages, self.settings.approval, to=to, reason=reason, sync_statuses=statuses
        )

    def push(
        self,
        names: Sequence[str] | None = None,
        *,
        force: bool = False,
        progress: Callable[[Action], None] | None = None,
        deep: bool = False,
        prune: bool | None = None,
    ) -> tuple[Plan, Report]:
        """Plan, then apply (see `plan` and `apply`)."""
        plan = self.plan(names, deep=deep, prune=prune)
        return plan, self.apply(plan, force=force, progress=progress)

    def apply(
        self, plan: Plan, *, force: bool = False, progress: Callable[[Action], None] | None = None
    ) -> Report:
        """Check the safety threshold, then apply the plan.

        Raises:
            UnsafePlanError: the plan changes too many approvals and `force` is False.
        """
        plan.check_safety(self.settings.safety_min_existing, self.settings.safety_max_fraction, force)
        executor = Executor(self.settings, self.gateways)
        return executor.apply(plan, progress)

    def status(self, name: str) -> list[StatusRow]:
        """Each version of one model with its package, approval and whether it is in sync."""
        plan, model, observed = self._plan_one(name)
        by_arn = {p.arn: p for p in observed.packages} if observed else {}
        matched = {version: arn for _, version, arn in plan.matched}
        pending = {action.version for action in plan.actions}
        problems = {p.version: str(p) for p in plan.problems}
        conflicts = {c.version: c.message for c in plan.conflicts}
        rows = []
        for version in model.versions:
            package = by_arn.get(matched.get(version.version, ""))
            metric = headline_metric(version.metrics, self.settings.headline_metric)
            try:
                wanted = decide_approval(version, self.settings.approval).status
                # Settled against what SageMaker holds: "pending" on a decided package means Rejected.
                settled = settle_approval(wanted, None, package.approval)[0] if package else wanted
                desired: str | None = settled.value
            except MappingError:
                desired = None
            rows.append(
                StatusRow(
                    version=version.version,
                    package=package.arn if package else None,
                    metric_name=metric[0] if metric else None,
                    metric_value=metric[1] if metric else None,
                    stage=version.stage,
                    aliases=version.aliases,
                    approval=package.approval.value if package else None,
                    package_status=package.status if package else None,
                    desired_approval=desired,
                    in_sync=version.version not in pending and version.version not in problems,
                    note=problems.get(version.version, ""),
                    conflict=conflicts.get(version.version, ""),
                )
            )
        return rows

    def retire(self, name: str, versions: Sequence[str] = ()) -> Report:
        """Retire the packages of MLflow versions that were deleted (every version of `name` when empty).

        A reconcile reads only the versions that exist, so it cannot notice a deletion: the registry-store
        plugin calls this when MLflow deletes versions or a model, or renames one. By default
        (`on_delete = "reject"`) the packages stay in SageMaker as history, Rejected, which stops a
        pipeline from deploying them (packages already Rejected are left alone); `on_delete = "delete"`
        deletes them. Packages mirrored from another registry are never touched. An explicit deletion is
        not a mapping rule gone wrong, so the safety threshold does not apply.
        """
        prefix = self.settings.group_prefix
        legacy = legacy_group_name(name, prefix)
        listing = self.registry.list_group(group_name(name, prefix))
        if listing is None and legacy is not None:
            listing = self.registry.list_group(legacy)  # packages are still matched by their identity
        if listing is None:
            return Report()
        wanted = set(versions)
        # Summaries suffice to skip packages already Rejected; the rest are described for their identity.
        skip = self.settings.on_delete != "delete"
        packages = [
            self.registry.describe_package(summary.arn)
            for summary in listing.summaries
            if not (skip and summary.approval is ApprovalStatus.REJECTED)
        ]
        actions = retire_actions(
            name,
            packages,
            self.source.identity(),
            lambda version: not wanted or version in wanted,
            self.settings.on_delete == "delete",
        )
        return self.apply(Plan(tuple(actions)), force=True)

    def model_of_package(self, arn: str) -> str | None:
        """The MLflow model whose version this registry's mlsync mirrored as the package `arn`, else None.

        Read from the package's metadata identity (never from an event's copy of it): a package mlsync did
        not create, or created for another MLflow registry, is not this registry's to pull.
        """
        identity = identity_of(self.registry.describe_package(arn).customer_metadata)
        if identity is None:
            return None
        _, model, version = identity
        return model if identity_key(self.source.identity(), model, version) == identity else None

    def _names(self, names: Sequence[str] | None) -> list[str]:
        return list(names) if names else self.source.model_names()

    def _plan_one(self, name: str) -> tuple[Plan, SourceModel, ObservedGroup | None]:
        """One model's plan, with what it was made from; a failure to read it raises."""
        return self._plan_model(self.source.read_model(name), _PlanOptions(), GroupReads(self.registry))

    def _plan_model(
        self, model: SourceModel, options: _PlanOptions, groups: GroupReads
    ) -> tuple[Plan, SourceModel, ObservedGroup | None]:
        source_id = self.source.identity()
        group, listing = self._group(model, groups)
        desired: list[PackageSpec | MappingError] = []
        for version in model.versions:
            try:
                desired.append(
                    desired_package(version, group.name, source_id, self.settings, model.description)
                )
            except MappingError as exc:
                desired.append(exc)
        observed = self._observe(listing, model, desired, deep=options.deep)
        plan = plan_model(
            model,
            group,
            observed,
            desired,
            source_id,
            approval_tag=self.settings.approval.tag,
            conflicts=self.settings.approval_conflicts if self.primary else FOLLOW,
            pull_only=options.pull_only,
            prune=self.settings.on_delete if options.prune else None,
        )
        creates = not options.pull_only and any(isinstance(spec, PackageSpec) for spec in desired)
        if observed is not None and not plan.matched and creates:
            self._check_owner(group)
        if not options.pull_only:
            plan = self._share(plan, model, group.name, listing, deep=options.deep)
        return plan, model, observed

    def _share(
        self, plan: Plan, model: SourceModel, group_name: str, listing: GroupListing | None, *, deep: bool
    ) -> Plan:
        """`plan` with the group's resource policy kept in step with `share_with` (mapping/sharing.py).

        Cost: no call at all while `share_with` is unset and nothing was shared; otherwise the group's
        policy is read (GetModelPackageGroupPolicy) only when the record of what mlsync last wrote (the
        model's `mlsync.group_policy` tag) differs from what the settings give now, or `deep`.
        """
        recorded = model.tags.get(TAG_GROUP_POLICY, NOT_SHARED)
        accounts = self.settings.share_with
        if not accounts and recorded == NOT_SHARED:
            return plan
        group_arn = self.registry.group_arn(group_name) if accounts else ""
        if not deep and recorded == policy_record(own_statements(group_arn, accounts)):
            return plan
        held = self.registry.get_group_policy(group_name) if listing is not None else None
        try:
            actions = plan_group_policy(model.name, group_name, group_arn, accounts, held, recorded)
        except MappingError as exc:
            return plan + Plan(problems=(exc,))
        return plan + Plan(actions=actions)

    def _group(self, model: SourceModel, groups: GroupReads) -> tuple[GroupSpec, GroupListing | None]:
        """The model's group and its listing (None when it does not exist yet).

        A name with a capital letter has its own group name now (mapping.identity.group_name); a group
        an older mlsync made under the plain name keeps being used while it exists and is this model's.
        """
        group = desired_group(model, self.settings)
        listing = groups.listing(group.name)
        legacy = legacy_group_name(model.name, self.settings.group_prefix)
        if listing is not None or legacy is None:
            return group, listing
        old = groups.listing(legacy)
        if old is None:
            return group, None
        linked = any(f":model-package/{legacy}/" in v.tags.get(TAG_PACKAGE_ARN, "") for v in model.versions)
        if linked or owner_of(self.registry.group_tags(legacy) or {}) == model.name:
            return dataclasses.replace(group, name=legacy), old
        return group, None

    def _check_owner(self, group: GroupSpec) -> None:
        """Refuse to file packages in an existing group no version of this model is in yet, unless its tag
        names this model: a group made by hand, by another tool, or for a model whose name differs only in
        case is never merged into.

        Raises:
            GatewayError: the group belongs to someone else (the message names the fix).
        """
        owner = owner_of(self.registry.group_tags(group.name) or {})
        if owner == group.model_name:
            return
        whose = (
            f"MLflow model {owner!r}" if owner else "no MLflow model (it has no mlflow.registered_model tag)"
        )
        raise GatewayError(
            f"model package group {group.name} already exists and belongs to {whose}, not to "
            f"{group.model_name!r}; mlsync never files one model's packages in another's group. Set "
            "group_prefix, or, if the group is this model's, tag it "
            f"mlflow.registered_model={group.tags[KEY_MODEL]}"
        )

    def _observe(
        self,
        listing: GroupListing | None,
        model: SourceModel,
        desired: Sequence[PackageSpec | MappingError],
        *,
        deep: bool = False,
    ) -> ObservedGroup | None:
        """The group's packages: presumed from their summaries where MLflow's tags show them current,
        described in full otherwise (new, changed, drifted, foreign or untagged ones), or every one
        `deep`."""
        if listing is None:
            return None
        trusted = {} if deep else trusted_packages(model.versions, desired, listing.summaries)
        packages = tuple(
            trusted.get(summary.arn) or self.registry.describe_package(summary.arn)
            for summary in listing.summaries
        )
        return ObservedGroup(listing.name, listing.description, packages)
