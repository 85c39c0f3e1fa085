"""In-memory `Source`, `Registry` and `Storage`, so the engine and executor run with no I/O at all.

The real ports are slow to stand up (a SQLite MLflow, the SageMaker emulator, moto's S3) and make
failure cases hard to reach. These fakes hold their state in dicts, answer as `MlflowSource`,
`SageMakerRegistry` and `S3Storage` answer, and keep SageMaker's rules where the engine relies on them
(tests/test_memory_ports.py runs the same scenarios against `MemoryRegistry` and the real gateway over the
emulator, so the two cannot drift apart):

- versions count 1, 2, 3... per group and are never reused, not even after a delete;
- `ClientToken` makes a create idempotent: the same token and request return the first ARN (the token
  never expires, as in the emulator), the same token with another request is refused;
- an update changes only what it sets, merges metadata, and is refused for a transition back to
  `PendingManualApproval` or for new content of an `Archived` model card; an update that sets nothing
  sends nothing;
- group names are unique ignoring case while lookups are exact; creating a group that exists is success
  only when its owner tag (`mlflow.registered_model`) names the same model, as the gateway makes it;
  deleting a package that is gone is success;
- summaries carry approval and lifecycle but no metadata; who last modified a package and when are
  reported only by `describe_package`, as the gateway reports them.

Each fake logs its calls (`calls`, `call_counts()`: SageMaker and S3 operation names, as the emulator's
call log has them, and `Source` method names) and takes a failure for the next call of an operation
(`fail_next`), raised as the gateway raises after botocore's retries gave up (`GatewayError`, or
`SourceError` for MLflow), before the call takes effect or, with `after_apply`, after it (an answer lost
on the way back). Methods that play the people around mlsync (`MemorySource.set_stage`, `set_tag`,
`MemoryRegistry.review`, ...) are neither logged nor fail: they are the test's setup, not calls of the
code under test.

Deliberately not emulated (the emulator, the gateway tests and the end-to-end tests cover these):

- request validation: name patterns, metadata characters and lengths (the mapping keeps within them);
- pagination beyond logging one `ListModelPackages` per 100 packages, as the gateway's paginator asks;
- EventBridge events, tag writes and group deletes, unversioned packages, cross-account ARNs;
- the inference specification: kept as given (`MemoryRegistry.created_with`), never checked;
- retries and throttling, credentials, STS (`default_image` names this account's image without a call);
- S3 buckets (every bucket exists), content types and multipart uploads;
- MLflow runs, experiments, stage transition rules, registration states (a version that is not READY is
  skipped, as `MlflowSource` skips it), prompts beyond their names (`add_prompt`) and webhooks;
- threads: none of the fakes is thread-safe.

Stdlib and mlsync's own core only: no boto3, mlflow or click.
"""

from __future__ import annotations

import abc
import math
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..domain import (
    ApprovalStatus,
    Dataset,
    Document,
    GroupListing,
    GroupSpec,
    Inference,
    ModelCard,
    ObservedPackage,
    PackageSpec,
    PackageSummary,
    PackageUpdate,
    SourceModel,
    SourceVersion,
)
from ..errors import GatewayError, MlsyncError, NotFoundError, SourceError
from ..mapping.identity import owner_of
from ..mapping.limits import MAX_METADATA_ENTRIES
from ..mapping.model_card import ARCHIVED
from ..ports import Gateways

if TYPE_CHECKING:
    from ..images import FrameworkImages

ACCOUNT_ID = "123456789012"
"""The account of `MemoryRegistry`'s ARNs: the emulator's and moto's default, so ARNs compare equal."""
REGION = "us-east-1"
MODEL_MLFLOW_VERSION = "3.1.0"
"""The MLflow version in the MLmodel file of a version added without a model directory."""
PYFUNC_ENVIRONMENT: Mapping[str, str] = {
    "MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function",
    "SERVING_ENVIRONMENT": "SageMaker",
}
"""What MLflow 3 gives its pyfunc serving image (`MlflowSource.serving_environment` asks MLflow itself)."""
READY = "READY"

_MINIMAL_MLMODEL = f"""\
flavors:
  python_function: {{loader_module: mlflow.pyfunc.model, python_version: 3.11.7}}
mlflow_version: {MODEL_MLFLOW_VERSION}
"""
_PACKAGES_PER_LIST = 100  # the page size `SageMakerRegistry` asks its listings for
_VALIDATION = "ValidationException"


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Fault:
    error: MlsyncError
    remaining: int
    after_apply: bool


class _Fake(abc.ABC):
    """What the three fakes share: the call log and failures injected by operation name."""

    OPERATIONS: ClassVar[frozenset[str]]
    """The operation names this fake logs and can fail."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        """Every operation called, oldest first (failed calls included, as in the emulator's log)."""
        self._faults: dict[str, list[_Fault]] = {}
        # An engine calls its ports from several threads at once; one call at a time keeps each fake's
        # state (and its call log) as consistent as the real service's.
        self._lock = threading.RLock()

    def call_counts(self) -> Counter[str]:
        """How many times each operation was called."""
        return Counter(self.calls)

    def clear_calls(self) -> None:
        self.calls.clear()

    def fail_next(
        self,
        operation: str,
        error: MlsyncError | None = None,
        *,
        times: int = 1,
        after_apply: bool = False,
    ) -> None:
        """Raise `error` (default: what the real port raises once retries gave up) from the next `times`
        calls of `operation`; with `after_apply` the call takes effect first.

        Raises:
            ValueError: this fake has no such operation (a typo would otherwise never fire).
        """
        if operation not in self.OPERATIONS:
            known = ", ".join(sorted(self.OPERATIONS))
            raise ValueError(f"{type(self).__name__} has no operation {operation!r}; it has {known}")
        fault = _Fault(error or self._default_error(operation), times, after_apply)
        self._faults.setdefault(operation, []).append(fault)

    @abc.abstractmethod
    def _default_error(self, operation: str) -> MlsyncError:
        """The error an injected failure raises when the test names none."""

    @contextmanager
    def _call(self, operation: str) -> Iterator[None]:
        """Log one call of `operation` and raise its injected failure before or after the body runs."""
        with self._lock:
            self.calls.append(operation)
            fault = next((f for f in self._faults.get(operation, []) if f.remaining > 0), None)
            if fault is not None:
                fault.remaining -= 1
                if not fault.after_apply:
                    raise fault.error.with_traceback(None)
            yield
            if fault is not None:
                raise fault.error.with_traceback(None)


def _aws_error(operation: str, resource: str, message: str, code: str) -> GatewayError:
    """A refusal worded as `gateways.aws.aws_errors` words it (NotFoundError for what is missing)."""
    text = f"{operation} {resource} failed: {message} ({code})"
    missing = code in ("404", "NoSuchKey") or "does not exist" in message
    return (NotFoundError if missing else GatewayError)(text, code=code)


# -- MLflow ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagWrite:
    """One version tag written through `Source.set_version_tags` (only tags whose value changed)."""

    model_name: str
    version: str
    key: str
    value: str


@dataclass(frozen=True)
class AliasWrite:
    """One alias pointed at a version through `Source.set_alias`."""

    model_name: str
    alias: str
    version: str


@dataclass
class _Model:
    description: str = ""
    is_prompt: bool = False
    versions: dict[str, SourceVersion] = field(default_factory=dict)
    """Stored with empty `aliases` (MLflow keeps aliases on the model) and replaced, never mutated."""
    registering: set[str] = field(default_factory=set)
    """Versions that are not READY: not read, and never taken for deleted."""
    aliases: dict[str, str] = field(default_factory=dict)
    next_version: int = 1
    tags: dict[str, str] = field(default_factory=dict)
    """The registered model's own tags."""


class MemorySource(_Fake):
    """An MLflow Model Registry in memory, answering as `MlflowSource` does.

    Versions are added with `add_version` and changed as a data scientist changes them (`set_stage`,
    `set_tag`, `delete_tag`, `set_alias`, `delete_alias`, `delete_version`). What mlsync writes through
    the port is recorded in `tag_writes` and `alias_writes`; `set_alias` is also the port's method, so
    an alias set up through it is recorded too (`clear_writes` after the setup).

    Args:
        identity: what `identity()` answers (MlflowSource gives the normalized registry URI).
        environment: what `serving_environment()` answers.
    """

    OPERATIONS = frozenset(
        {
            "model_names",
            "read_model",
            "download_model",
            "artifact_location",
            "set_version_tags",
            "set_model_tags",
            "set_alias",
        }
    )

    def __init__(
        self, identity: str = "memory://mlflow", environment: Mapping[str, str] = PYFUNC_ENVIRONMENT
    ) -> None:
        super().__init__()
        self._identity = identity
        self._environment = dict(environment)
        self._models: dict[str, _Model] = {}
        self._model_dirs: dict[str, Path | None] = {}
        self._locations: dict[tuple[str, str], str] = {}
        self.tag_writes: list[TagWrite] = []
        self.alias_writes: list[AliasWrite] = []
        self.model_tag_writes: list[tuple[str, str]] = []
        """(key, value) of each registered-model tag mlsync wrote (`set_model_tags`)."""

    # -- the people around mlsync ----------------------------------------------------------------------

    def add_model(self, name: str, *, description: str = "") -> None:
        """Register a model (`add_version` registers one on its own; this one may have no versions)."""
        if name in self._models:
            raise ValueError(f"model {name!r} is already registered")
        self._models[name] = _Model(description)

    def add_prompt(self, name: str) -> None:
        """Register an MLflow prompt: read as `is_prompt`, left out of `model_names`, as MLflow 3 does."""
        if name in self._models:
            raise ValueError(f"{name!r} is already registered")
        self._models[name] = _Model(is_prompt=True)

    def add_version(
        self,
        model: str,
        version: str | None = None,
        *,
        stage: str = "None",
        aliases: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        run_tags: Mapping[str, str] | None = None,
        datasets: Sequence[Dataset] = (),
        description: str = "",
        run_id: str | None = None,
        user: str | None = None,
        status: str = READY,
        artifact_uri: str | None = None,
        model_dir: Path | None = None,
    ) -> str:
        """Register a version (the next number unless `version` is given) and return its number.

        `model_dir` is what `download_model` copies; without one it writes the smallest MLflow model, an
        MLmodel file naming `MODEL_MLFLOW_VERSION`. `artifact_uri` defaults to a `memory://` URI; give an
        `s3://` one (and its objects to `MemoryStorage`) for `artifact_mode = "reference"`.
        """
        entry = self._models.setdefault(model, _Model())
        number = version or str(entry.next_version)
        if number in entry.versions:
            raise ValueError(f"model {model!r} already has version {number}")
        entry.next_version = max(entry.next_version, int(number) + 1)
        uri = artifact_uri or f"memory://{model}/{number}"
        self._model_dirs[uri] = model_dir
        self._locations[model, number] = uri
        entry.versions[number] = SourceVersion(
            model_name=model,
            version=number,
            run_id=run_id,
            description=description,
            stage=stage,
            tags=dict(tags or {}),
            params=dict(params or {}),
            metrics=dict(metrics or {}),
            run_tags=dict(run_tags or {}),
            datasets=tuple(datasets),
            user=user,
            run_link=f"runs:/{run_id}" if run_id else None,
        )
        if status != READY:
            entry.registering.add(number)
        for alias in aliases:
            entry.aliases[alias] = number
        return number

    def set_stage(self, model: str, version: str, stage: str) -> None:
        self._put(replace(self._version(model, version), stage=stage))

    def set_tag(self, model: str, version: str, key: str, value: str) -> None:
        """Set a version tag as a person would (not recorded in `tag_writes`)."""
        current = self._version(model, version)
        self._put(replace(current, tags={**current.tags, key: value}))

    def delete_tag(self, model: str, version: str, key: str) -> None:
        current = self._version(model, version)
        self._put(replace(current, tags={k: v for k, v in current.tags.items() if k != key}))

    def delete_alias(self, model: str, alias: str) -> None:
        self._model(model).aliases.pop(alias, None)

    def delete_version(self, model: str, version: str) -> None:
        """Delete a version (its aliases go with it, as in MLflow); its number is never reused."""
        entry = self._model(model)
        self._version(model, version)
        del entry.versions[version]
        entry.registering.discard(version)
        entry.aliases = {alias: number for alias, number in entry.aliases.items() if number != version}

    def get_version(self, model: str, version: str) -> SourceVersion:
        """One version as `read_model` would give it (aliases included), READY or not; not logged."""
        return self._read(self._model(model), self._version(model, version))

    def clear_writes(self) -> None:
        self.tag_writes.clear()
        self.alias_writes.clear()
        self.model_tag_writes.clear()

    # -- the Source port -------------------------------------------------------------------------------

    def identity(self) -> str:
        return self._identity

    def model_names(self) -> list[str]:
        with self._call("model_names"):
            return sorted(name for name, model in self._models.items() if not model.is_prompt)

    def read_model(self, name: str) -> SourceModel:
        """The model and its READY versions sorted by number, each with its aliases (sorted) and tags;
        the numbers of the others in `registering`."""
        with self._call("read_model"):
            model = self._model(name)
            if model.is_prompt:
                return SourceModel(name=name, is_prompt=True)
            versions = sorted(model.versions.values(), key=lambda v: int(v.version))
            return SourceModel(
                name=name,
                description=model.description,
                versions=tuple(self._read(model, v) for v in versions if v.version not in model.registering),
                registering=tuple(v.version for v in versions if v.version in model.registering),
                tags=dict(model.tags),
            )

    def download_model(self, artifact_uri: str, dest: Path) -> Path:
        """Copy the version's model directory to `dest` (or write the smallest model there)."""
        with self._call("download_model"):
            if artifact_uri not in self._model_dirs:
                raise SourceError(f"MLflow (memory): downloading {artifact_uri} failed: no such artifact")
            model_dir = self._model_dirs[artifact_uri]
            if model_dir is not None:
                return Path(shutil.copytree(model_dir, dest, dirs_exist_ok=True))
            dest.mkdir(parents=True, exist_ok=True)
            (dest / "MLmodel").write_text(_MINIMAL_MLMODEL, encoding="utf-8")
            return dest

    def artifact_location(self, name: str, version: str) -> str:
        with self._call("artifact_location"):
            self._version(name, version)  # a version that does not exist fails as MLflow would
            return self._locations[name, version]

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        """Write only the tags whose value differs, each recorded in `tag_writes`; none: no call at all."""
        if not tags:
            return
        with self._call("set_version_tags"):
            current = self._version(name, version)
            changed = {key: value for key, value in tags.items() if current.tags.get(key) != value}
            self.tag_writes.extend(TagWrite(name, version, key, value) for key, value in changed.items())
            self._put(replace(current, tags={**current.tags, **changed}))

    def set_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        """Write the registered model's tags whose value differs (recorded in `model_tag_writes`)."""
        with self._call("set_model_tags"):
            model = self._model(name)
            changed = {key: value for key, value in tags.items() if model.tags.get(key) != value}
            self.model_tag_writes.extend(changed.items())
            model.tags.update(changed)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point `alias` at `version`, moving it off any other version (recorded in `alias_writes`)."""
        with self._call("set_alias"):
            self._version(name, version)
            self._model(name).aliases[alias] = version
            self.alias_writes.append(AliasWrite(name, alias, version))

    def serving_environment(self) -> Mapping[str, str]:
        return dict(self._environment)

    def _default_error(self, operation: str) -> MlsyncError:
        return SourceError(f"MLflow (memory): {operation} failed: injected failure")

    def _model(self, name: str) -> _Model:
        try:
            return self._models[name]
        except KeyError:
            raise SourceError(f"MLflow (memory): registered model {name!r} does not exist") from None

    def _version(self, name: str, version: str) -> SourceVersion:
        try:
            return self._model(name).versions[version]
        except KeyError:
            raise SourceError(f"MLflow (memory): model {name!r} has no version {version}") from None

    def _put(self, version: SourceVersion) -> None:
        self._model(version.model_name).versions[version.version] = version

    @staticmethod
    def _read(model: _Model, version: SourceVersion) -> SourceVersion:
        aliases = sorted(alias for alias, number in model.aliases.items() if number == version.version)
        return replace(version, aliases=tuple(aliases), tags=dict(version.tags))


# -- SageMaker -------------------------------------------------------------------------------------------


@dataclass
class _Group:
    spec: GroupSpec
    next_version: int = 1


class MemoryRegistry(_Fake):
    """The SageMaker Model Registry in memory, answering as `SageMakerRegistry` over SageMaker does.

    Args:
        account_id, region: what ARNs and `default_image` name.
        caller: who `describe_package` reports as having last modified a package mlsync updated (the
            emulator reports `arn:aws:iam::<account>:user/<access key id>`).
        clock: the time of creates, updates and reviews (`modified_time`).
    """

    OPERATIONS = frozenset(
        {
            "CreateModelPackageGroup",
            "DescribeModelPackageGroup",
            "ListModelPackageGroups",
            "ListModelPackages",
            "ListTags",
            "CreateModelPackage",
            "DescribeModelPackage",
            "UpdateModelPackage",
            "DeleteModelPackage",
            "GetModelPackageGroupPolicy",
            "PutModelPackageGroupPolicy",
            "DeleteModelPackageGroupPolicy",
        }
    )
    WRITE_OPERATIONS = frozenset(
        {
            "CreateModelPackageGroup",
            "CreateModelPackage",
            "UpdateModelPackage",
            "DeleteModelPackage",
            "PutModelPackageGroupPolicy",
            "DeleteModelPackageGroupPolicy",
        }
    )
    """The operations among `OPERATIONS` that change the registry."""

    def __init__(
        self,
        *,
        account_id: str = ACCOUNT_ID,
        region: str = REGION,
        caller: str | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        super().__init__()
        self.account_id = account_id
        self.region = region
        self.caller = caller or f"arn:aws:iam::{account_id}:user/mlsync"
        self._clock = clock
        self._groups: dict[str, _Group] = {}
        self._packages: dict[str, ObservedPackage] = {}
        self._created: dict[str, tuple[PackageSpec, Inference]] = {}
        self.policies: dict[str, str] = {}
        """Each group's resource policy, by group name (a test may set one as someone else would)."""
        self._tokens: dict[str, tuple[tuple[object, ...], str]] = {}

    # -- the people around mlsync, and questions for assertions (neither logged nor failing) -----------

    def review(
        self, arn: str, status: ApprovalStatus, description: str = "", *, by: str = "reviewer"
    ) -> None:
        """A reviewer's approval change in Studio or the CLI: approval, and the description when given.

        Raises:
            GatewayError: SageMaker refuses the transition (back to PendingManualApproval).
            NotFoundError: there is no such package.
        """
        operation = "UpdateModelPackage"
        package = self._package(operation, arn)
        _check_transition(operation, arn, package.approval, status)
        self._packages[arn] = replace(
            package,
            approval=status,
            approval_description=description or package.approval_description,
            modified_by=by,
            modified_time=self._time(),
        )

    def edit_card(self, arn: str, card: ModelCard, *, by: str = "reviewer") -> None:
        """A reviewer's edit of the package's model card in Studio (its content, its status or both).

        Raises:
            NotFoundError: there is no such package.
        """
        package = self._package("UpdateModelPackage", arn)
        self._packages[arn] = replace(package, model_card=card, modified_by=by, modified_time=self._time())

    def writes(self) -> list[str]:
        """The logged calls that change the registry, oldest first."""
        return [call for call in self.calls if call in self.WRITE_OPERATIONS]

    def group(self, name: str) -> GroupSpec | None:
        """The group created under exactly `name`, or None."""
        group = self._groups.get(name)
        return group.spec if group else None

    def package(self, arn: str) -> ObservedPackage:
        """What `describe_package` would answer, without logging a call."""
        return self._package("DescribeModelPackage", arn)

    def packages(self, group_name: str) -> tuple[ObservedPackage, ...]:
        """The packages of a group in version order (deleted ones left out)."""
        found = [p for p in self._packages.values() if p.group_name == group_name]
        return tuple(sorted(found, key=lambda p: p.package_version))

    def created_with(self, arn: str) -> tuple[PackageSpec, Inference]:
        """The spec and inference a package was created with (the container, the sample payload...)."""
        return self._created[arn]

    # -- the Registry port -----------------------------------------------------------------------------

    def list_group(self, group_name: str) -> GroupListing | None:
        with self._call("DescribeModelPackageGroup"):
            group = self._groups.get(group_name)
        if group is None:
            return None
        listing = self._listing(group_name)
        self._count_pages("ListModelPackages", len(listing.summaries))
        return listing

    def list_groups(self, name_prefix: str = "") -> dict[str, GroupListing]:
        # SageMaker filters by substring (`NameContains`); the gateway keeps the names that start with it.
        self._count_pages("ListModelPackageGroups", sum(name_prefix in name for name in self._groups))
        listings = {
            name: self._listing(name) for name in sorted(self._groups) if name.startswith(name_prefix)
        }
        self._count_pages("ListModelPackages", sum(len(g.summaries) for g in listings.values()))
        return listings

    def _listing(self, group_name: str) -> GroupListing:
        spec = self._groups[group_name].spec
        summaries = tuple(
            PackageSummary(p.arn, p.package_version, p.approval, p.lifecycle)
            for p in self.packages(group_name)
        )
        return GroupListing(spec.name, spec.description, summaries)

    def _count_pages(self, operation: str, items: int) -> None:
        """One call of `operation` per page of `items` (an empty listing is one page too)."""
        for _ in range(max(1, math.ceil(items / _PACKAGES_PER_LIST))):
            with self._call(operation):
                pass

    def describe_package(self, arn: str) -> ObservedPackage:
        with self._call("DescribeModelPackage"):
            return self._package("DescribeModelPackage", arn)

    def group_tags(self, group_name: str) -> Mapping[str, str] | None:
        """The tags the group was created with (its owner among them), or None when it does not exist."""
        with self._call("DescribeModelPackageGroup"):
            group = self._groups.get(group_name)
        if group is None:
            return None
        with self._call("ListTags"):
            return dict(group.spec.tags)

    def create_group(self, spec: GroupSpec) -> None:
        """Create the group; one that exists (names compare without case) is success only when it is
        this model's, by its owner tag: a concurrent push made it.

        Raises:
            GatewayError: the name is taken by another model's group, or by one mlsync did not make.
        """
        operation = "CreateModelPackageGroup"
        with self._call(operation):
            taken = next((name for name in self._groups if name.lower() == spec.name.lower()), None)
            if taken is None:
                self._groups[spec.name] = _Group(spec)
                return
        if owner_of(self.group_tags(spec.name) or {}) != spec.model_name:
            message = (
                f"Model Package Group already exists: {taken}; it is not MLflow model {spec.model_name!r}'s"
            )
            raise _aws_error(operation, spec.name, message, "Conflict")

    def create_package(self, spec: PackageSpec, inference: Inference) -> str:
        operation = "CreateModelPackage"
        resource = f"{spec.group_name} (model {spec.model_name!r} version {spec.version})"
        with self._call(operation):
            request = _create_request(spec, inference)
            if spec.client_token in self._tokens:
                first, arn = self._tokens[spec.client_token]
                if first != request:
                    message = f"ClientToken {spec.client_token} was already used with different parameters"
                    raise _aws_error(operation, resource, message, _VALIDATION)
                return arn
            group = self._groups.get(spec.group_name)
            if group is None:
                message = f"ModelPackageGroup {spec.group_name} does not exist."
                raise _aws_error(operation, resource, message, _VALIDATION)
            version, group.next_version = group.next_version, group.next_version + 1
            arn = (
                f"arn:aws:sagemaker:{self.region}:{self.account_id}:model-package/{spec.group_name}/{version}"
            )
            self._packages[arn] = _created_package(arn, version, spec, inference, self._time())
            self._created[arn] = (spec, inference)
            self._tokens[spec.client_token] = (request, arn)
            return arn

    def delete_package(self, arn: str) -> None:
        """Delete the package; one already gone is success. Its version number is never reused."""
        with self._call("DeleteModelPackage"):
            self._packages.pop(arn, None)

    def update_package(self, arn: str, change: PackageUpdate) -> None:
        """Apply what `change` sets (metadata merged); nothing set sends no request, as in the gateway."""
        if change.is_empty and not change.approval_reason:
            return
        operation = "UpdateModelPackage"
        with self._call(operation):
            package = self._package(operation, arn)
            if change.approval is not None:
                _check_transition(operation, arn, package.approval, change.approval)
            _check_card(operation, arn, package.model_card, change.model_card)
            self._packages[arn] = replace(
                package,
                approval=change.approval or package.approval,
                approval_description=change.approval_reason or package.approval_description,
                lifecycle=change.lifecycle or package.lifecycle,
                customer_metadata=_merged_metadata(operation, arn, package.customer_metadata, change),
                model_card=change.model_card or package.model_card,
                modified_by=self.caller,
                modified_time=self._time(),
            )

    def group_arn(self, group_name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:model-package-group/{group_name}"

    def get_group_policy(self, group_name: str) -> str | None:
        """None for a group without a policy, or without a group (as `SageMakerRegistry` answers)."""
        with self._call("GetModelPackageGroupPolicy"):
            return self.policies.get(group_name)

    def put_group_policy(self, group_name: str, policy: str) -> None:
        with self._call("PutModelPackageGroupPolicy"):
            self._policy_group("PutModelPackageGroupPolicy", group_name)
            self.policies[group_name] = policy

    def delete_group_policy(self, group_name: str) -> None:
        with self._call("DeleteModelPackageGroupPolicy"):
            self.policies.pop(group_name, None)

    def _policy_group(self, operation: str, group_name: str) -> None:
        if group_name not in self._groups:
            message = f"ModelPackageGroup {group_name} does not exist."
            raise _aws_error(operation, group_name, message, _VALIDATION)

    def default_image(self, mlflow_version: str) -> str:
        """This account's `mlflow-pyfunc` image, as `SageMakerRegistry` names it (no STS call here)."""
        domain = "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com"
        return f"{self.account_id}.dkr.ecr.{self.region}.{domain}/mlflow-pyfunc:{mlflow_version}"

    def _default_error(self, operation: str) -> MlsyncError:
        return GatewayError(f"{operation} failed: Rate exceeded (ThrottlingException)", "ThrottlingException")

    def _package(self, operation: str, arn: str) -> ObservedPackage:
        try:
            return self._packages[arn]
        except KeyError:
            raise _aws_error(operation, arn, f"ModelPackage {arn} does not exist.", _VALIDATION) from None

    def _time(self) -> str:
        return self._clock().astimezone(timezone.utc).isoformat(timespec="seconds")


def _create_request(spec: PackageSpec, inference: Inference) -> tuple[object, ...]:
    """What CreateModelPackage is sent for `spec` besides its token (a replay must send the same)."""
    statistics = spec.quality_statistics
    return (
        spec.group_name,
        spec.approval,
        spec.lifecycle,
        dict(spec.customer_metadata),
        spec.description,
        {key: value for key, value in spec.metadata_properties.items() if value},
        (statistics.s3_uri, statistics.digest, statistics.content_type) if statistics else None,
        inference,
        spec.model_card,
    )


def _created_package(
    arn: str, version: int, spec: PackageSpec, inference: Inference, now: str
) -> ObservedPackage:
    """A new package as DescribeModelPackage reports it: no ApprovalDescription, no LastModifiedBy yet."""
    statistics = spec.quality_statistics
    return ObservedPackage(
        arn=arn,
        group_name=spec.group_name,
        package_version=version,
        approval=spec.approval,
        lifecycle=spec.lifecycle,
        customer_metadata=dict(spec.customer_metadata),
        description=spec.description,
        metadata_properties={key: value for key, value in spec.metadata_properties.items() if value},
        quality_statistics_digest=statistics.digest if statistics else None,
        model_data_url=inference.container.model_data_url,
        quality_statistics_uri=statistics.s3_uri if statistics else None,
        model_data_compressed=inference.container.compressed,
        sample_payload_url=inference.sample_payload_url,
        modified_time=now,
        model_card=spec.model_card,
    )


def _check_transition(operation: str, arn: str, current: ApprovalStatus, wanted: ApprovalStatus) -> None:
    """SageMaker documents every transition between approvals except the ones back to pending."""
    if wanted is ApprovalStatus.PENDING and current is not ApprovalStatus.PENDING:
        message = (
            f"Cannot change ModelApprovalStatus from {current.value} to {wanted.value}: SageMaker documents "
            "only PendingManualApproval -> Approved | Rejected and Approved <-> Rejected."
        )
        raise _aws_error(operation, arn, message, _VALIDATION)


def _check_card(operation: str, arn: str, held: ModelCard | None, sent: ModelCard | None) -> None:
    """SageMaker refuses new content for an archived model card."""
    if sent and held and held.status == ARCHIVED and sent.content != held.content:
        raise _aws_error(operation, arn, "Model Card is in Archived state", _VALIDATION)


def _merged_metadata(
    operation: str, arn: str, stored: Mapping[str, str], change: PackageUpdate
) -> dict[str, str]:
    """`stored` with `change`'s keys set and removed, as SageMaker merges `CustomerMetadataProperties`."""
    both = sorted(set(change.metadata_set) & set(change.metadata_remove))
    if both:
        message = f"Keys both set and removed in one update: {', '.join(both)}."
        raise _aws_error(operation, arn, message, _VALIDATION)
    merged = {
        key: value
        for key, value in {**stored, **change.metadata_set}.items()
        if key not in change.metadata_remove
    }
    if len(merged) > MAX_METADATA_ENTRIES:
        message = f"CustomerMetadataProperties can hold at most {MAX_METADATA_ENTRIES} entries"
        raise _aws_error(operation, arn, message, _VALIDATION)
    return merged


# -- S3 --------------------------------------------------------------------------------------------------


class MemoryStorage(_Fake):
    """S3 as a dict of `s3://` URIs to bytes, answering as `S3Storage` does.

    Every bucket exists and URIs are keys as given. `upload_file` asks first whether the key exists
    (HeadObject) and uploads only when it does not, as `S3Storage` does.
    """

    OPERATIONS = frozenset({"PutObject", "HeadObject", "Upload", "GetObject", "ListObjectsV2", "Download"})

    def __init__(self, objects: Mapping[str, bytes] | None = None) -> None:
        super().__init__()
        self.objects: dict[str, bytes] = dict(objects or {})

    def put_document(self, document: Document) -> None:
        with self._call("PutObject"):
            self.objects[document.s3_uri] = document.body

    def upload_file(self, path: Path, s3_uri: str) -> bool:
        with self._call("HeadObject"):
            exists = s3_uri in self.objects
        if exists:
            return False
        with self._call("Upload"):
            self.objects[s3_uri] = path.read_bytes()
        return True

    def read(self, s3_uri: str) -> bytes:
        with self._call("GetObject"):
            return self._object("GetObject", s3_uri, "NoSuchKey")

    def list_prefix(self, s3_uri: str) -> list[str]:
        with self._call("ListObjectsV2"):
            return sorted(uri[len(s3_uri) :] for uri in self.objects if uri.startswith(s3_uri))

    def download_file(self, s3_uri: str, path: Path) -> None:
        with self._call("Download"):
            path.write_bytes(self._object("Download", s3_uri, "404"))

    def _default_error(self, operation: str) -> MlsyncError:
        return GatewayError(f"{operation} failed: Please reduce your request rate. (SlowDown)", "SlowDown")

    def _object(self, operation: str, s3_uri: str, code: str) -> bytes:
        try:
            return self.objects[s3_uri]
        except KeyError:
            raise _aws_error(operation, s3_uri, "The specified key does not exist.", code) from None


def memory_gateways(
    source: MemorySource | None = None,
    registry: MemoryRegistry | None = None,
    storage: MemoryStorage | None = None,
    *,
    framework_images: FrameworkImages | None = None,
) -> Gateways:
    """The ports of one engine over these fakes (new, empty ones for those not given)."""
    return Gateways(
        source if source is not None else MemorySource(),
        registry if registry is not None else MemoryRegistry(),
        storage if storage is not None else MemoryStorage(),
        framework_images,
    )
