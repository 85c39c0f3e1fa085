"""Settings: command-line flags > `MLSYNC_*` environment > TOML file > defaults.

This is the only module that reads `os.environ` (the others get a `Settings`), so what a run used is
always visible in one object. The TOML file is `--config PATH` / `MLSYNC_CONFIG`, else `mlsync.toml` in
the working directory, else the `[tool.mlsync]` table of `pyproject.toml` there.
AWS credentials, profile, region and `AWS_ENDPOINT_URL` are left to boto3's own chain.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .domain import ENTITY_NAME, MAX_ENTITY_NAME, ApprovalStatus
from .errors import ConfigError
from .targets import Target, parse_targets

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

ENV_PREFIX = "MLSYNC_"
PLUGIN_SCHEME_PREFIX = "mlsync+"
"""The registry-store plugin's URI schemes are `mlsync+<inner scheme>`; both URIs name one registry."""
S3_PREFIX_PATTERN = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[A-Za-z0-9_.:/=+\-@]*)?")
# The run document's URI `<prefix>/documents/<64 hex>.json` is a metadata value (at most 256 characters).
MAX_S3_PREFIX = 256 - len("/documents/") - 64 - len(".json")
ARTIFACT_MODES = frozenset({"copy", "reference"})
XGBOOST_CONTAINERS = frozenset({"pyfunc", "builtin"})
"""What serves an MLflow xgboost model: MLflow's pyfunc image, or SageMaker's built-in XGBoost image."""
ON_DELETE = frozenset({"reject", "delete"})
APPROVAL_CONFLICTS = frozenset({"sagemaker", "mlflow"})
"""Who wins when MLflow and SageMaker both changed a version's approval since the last sync."""
DEFAULT_CONCURRENCY = 16
"""Requests in flight at once per kind (SageMaker, S3, MLflow): a reconcile waits on round trips, not CPU."""
MAX_CONCURRENCY = 128
ACCOUNT_ID = re.compile(r"[0-9]{12}")
"""An AWS account id (`share_with`)."""
INSTANCE_TYPE_PATTERN = re.compile(r"ml\.[a-z0-9-]+\.[a-z0-9-]+")
APPROVAL_KEYS = frozenset({"stages", "aliases", "tag", "lifecycle_stages", "alias_lifecycle_stages"})

DEFAULT_STAGES: Mapping[str, ApprovalStatus] = {
    "Production": ApprovalStatus.APPROVED,
    "Archived": ApprovalStatus.REJECTED,
    "Staging": ApprovalStatus.PENDING,
    "None": ApprovalStatus.PENDING,
}
DEFAULT_ALIASES: Mapping[str, ApprovalStatus] = {"champion": ApprovalStatus.APPROVED}
DEFAULT_LIFECYCLE_STAGES: Mapping[str, str] = {
    "None": "Development",
    "Staging": "PreProduction",
    "Production": "Production",
    "Archived": "Archived",
}
DEFAULT_ALIAS_LIFECYCLE_STAGES: Mapping[str, str] = {"champion": "Production"}


@dataclass(frozen=True)
class ApprovalRules:
    """How an MLflow version's stage, aliases and tags become a SageMaker approval and lifecycle.

    Precedence (docs/mapping.md): the `tag` on the version, then the first alias of `aliases` (in this
    order) that the version carries, then its stage.
    """

    stages: Mapping[str, ApprovalStatus] = field(default_factory=lambda: dict(DEFAULT_STAGES))
    aliases: Mapping[str, ApprovalStatus] = field(default_factory=lambda: dict(DEFAULT_ALIASES))
    tag: str = "sagemaker.approval"
    lifecycle_stages: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LIFECYCLE_STAGES))
    alias_lifecycle_stages: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_ALIAS_LIFECYCLE_STAGES)
    )


@dataclass(frozen=True)
class Settings:
    """Everything one mlsync run is configured with (see docs/configuration.md)."""

    tracking_uri: str | None = None
    registry_uri: str | None = None
    region: str | None = None
    s3_prefix: str | None = None
    source_id: str | None = None
    group_prefix: str = ""
    image: str | None = None
    images: Mapping[str, str] = field(default_factory=dict)
    artifact_mode: str = "copy"
    xgboost_container: str = "pyfunc"
    xgboost_image: str | None = None
    on_delete: str = "reject"
    realtime_instance_types: tuple[str, ...] = ()
    transform_instance_types: tuple[str, ...] = ()
    headline_metric: str | None = None
    retry_mode: str = "standard"
    max_attempts: int = 10
    concurrency: int = DEFAULT_CONCURRENCY
    safety_min_existing: int = 10
    safety_max_fraction: float = 0.3
    approval_conflicts: str = "sagemaker"
    prune: bool = False
    share_with: tuple[str, ...] = ()
    """AWS account ids the groups are shared with through a resource policy (mapping/sharing.py)."""
    approval: ApprovalRules = field(default_factory=ApprovalRules)
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Extra `CustomerMetadataProperties`: SageMaker key -> where its value comes from (`[metadata]`)."""
    # The HMAC key MLflow signs webhook deliveries with (`MLSYNC_WEBHOOK_SECRET`); kept out of repr so
    # that logging or printing settings never shows it.
    webhook_secret: str | None = field(default=None, repr=False)
    # Secrets MLflow may still sign in-flight or retried deliveries with during a rotation
    # (`MLSYNC_WEBHOOK_PREVIOUS_SECRETS`, comma-separated): `mlsync serve` accepts these too, so that no
    # delivery is refused while MLflow moves to the new `webhook_secret`. Kept out of repr likewise.
    webhook_previous_secrets: tuple[str, ...] = field(default=(), repr=False)
    # The token EventBridge API destinations send to `mlsync serve`'s `/events` route
    # (`Authorization: Bearer <token>`); unset, the route is off. Kept out of repr like the secret.
    events_token: str | None = field(default=None, repr=False)
    targets: tuple[Target, ...] = ()
    """`[[targets]]` (targets.py); empty: these settings describe one target, the primary."""

    def all_targets(self) -> tuple[Target, ...]:
        """The targets a reconcile writes, the primary first."""
        return self.targets or (Target(),)

    def for_target(self, target: Target) -> Settings:
        """The settings one target's engine runs with: its region and prefixes over the top-level ones."""
        return replace(
            self,
            region=target.region or self.region,
            s3_prefix=target.s3_prefix or self.s3_prefix,
            group_prefix=self.group_prefix if target.group_prefix is None else target.group_prefix,
            targets=(),
        )

    def require_s3_prefix(self) -> str:
        """The S3 prefix for documents and artifacts; a clear error when it is not set."""
        if not self.s3_prefix:
            raise ConfigError(
                "no S3 prefix for the documents and model artifacts mlsync writes: set MLSYNC_S3_PREFIX "
                "(e.g. s3://my-bucket/mlsync), --s3-prefix, or s3_prefix in mlsync.toml"
            )
        return self.s3_prefix.rstrip("/")

    def require_webhook_secret(self) -> str:
        """The webhook secret; a receiver or a webhook without one would accept anyone's deliveries."""
        if not self.webhook_secret:
            raise ConfigError(
                "no webhook secret: set MLSYNC_WEBHOOK_SECRET (e.g. to the output of `openssl rand -hex 32`) "
                "for both `mlsync webhook install` and `mlsync serve`"
            )
        return self.webhook_secret

    def image_for(self, model_name: str) -> str | None:
        """The serving image configured for this model, or the global override, or None (default)."""
        return self.images.get(model_name, self.image)


_TABLES = frozenset({"images", "approval", "metadata", "targets"})
"""The settings that are tables (or arrays of tables), in the file only."""

METADATA_SOURCES: Mapping[str, bool] = {
    "param": True,
    "metric": True,
    "run_tag": True,
    "tag": True,
    "user": False,
    "training_dataset": False,
    "training_dataset_version": False,
    "flavor": False,
    "algorithm": False,
    "model_class": False,
}
"""Where a `[metadata]` value may come from, and whether it names something (`param:lr`) or not (`user`)."""

# Lists of text: an array in the file, comma-separated in the environment.
_INSTANCE_TYPE_LISTS = frozenset({"realtime_instance_types", "transform_instance_types"})
_LISTS = _INSTANCE_TYPE_LISTS | {"webhook_previous_secrets", "share_with"}
_SCALARS: Mapping[str, type] = {
    f.name: str for f in fields(Settings) if f.name not in {*_TABLES, *_LISTS}
} | {
    "max_attempts": int,
    "concurrency": int,
    "safety_min_existing": int,
    "safety_max_fraction": float,
    "prune": bool,
    "group_prefix": str,
}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Merge flags > environment > TOML > defaults into validated `Settings`.

    Args:
        flags: values given on the command line; None values mean "not given". `config` names a file.
        env: the environment (defaults to `os.environ`).
        cwd: where `mlsync.toml` / `pyproject.toml` are looked for (defaults to the working directory).
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    config_path = flags.pop("config", None) or env.get(f"{ENV_PREFIX}CONFIG")
    table = _read_toml(Path(config_path) if config_path else None, cwd)

    merged: dict[str, Any] = {}
    for name, kind in _SCALARS.items():
        if name in flags:
            merged[name] = flags[name]
        elif f"{ENV_PREFIX}{name.upper()}" in env:
            merged[name] = _coerce(
                name, kind, env[f"{ENV_PREFIX}{name.upper()}"], f"{ENV_PREFIX}{name.upper()}"
            )
        elif name in table:
            merged[name] = _coerce(name, kind, table[name], "the config file")
    for name in _LISTS:
        variable = f"{ENV_PREFIX}{name.upper()}"
        if name in flags:
            merged[name] = tuple(flags[name])
        elif variable in env:
            merged[name] = tuple(item.strip() for item in env[variable].split(",") if item.strip())
        elif name in table:
            merged[name] = _str_list(table[name], name)
    unknown = set(table) - set(_SCALARS) - _LISTS - _TABLES
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {sorted(unknown)} in the config file; see docs/configuration.md for the "
            "names mlsync knows"
        )
    settings = Settings(
        **merged,
        images=_str_map(table.get("images", {}), "images"),
        metadata=_metadata_table(table.get("metadata", {})),
        targets=parse_targets(table["targets"]) if "targets" in table else (),
    )
    settings = replace(settings, approval=_approval_rules(table.get("approval", {})))
    _validate(settings)
    for target in settings.targets:
        try:
            _validate(settings.for_target(target))
        except ConfigError as exc:
            raise ConfigError(f"target {target.name!r}: {exc}") from exc
    return settings


def _read_toml(path: Path | None, cwd: Path) -> Mapping[str, Any]:
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; fix --config / MLSYNC_CONFIG")
        return _tool_table(path) if path.name == "pyproject.toml" else _parse(path)
    if (cwd / "mlsync.toml").is_file():
        return _parse(cwd / "mlsync.toml")
    if (cwd / "pyproject.toml").is_file():
        return _tool_table(cwd / "pyproject.toml")
    return {}


def _tool_table(path: Path) -> Mapping[str, Any]:
    """The `[tool.mlsync]` table of a pyproject.toml (empty when there is none)."""
    tool = _parse(path).get("tool", {})
    table = tool.get("mlsync", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.mlsync] in {path} must be a table")
    return table


def _parse(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return data
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


_TRUTH = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _coerce(name: str, kind: type, value: Any, origin: str) -> Any:
    problem = ConfigError(f"setting {name!r} from {origin} must be a {kind.__name__}, got {value!r}")
    if kind is bool:  # `bool("false")` is True: a switch is spelled out, or a TOML boolean
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUTH:
            return _TRUTH[value.strip().lower()]
        raise problem
    # TOML values: `true` is not 1, `2.5` is not 2, and a table or array is not a string.
    if isinstance(value, (bool, dict, list)) or (kind is int and isinstance(value, float)):
        raise problem
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise problem from exc


def _str_map(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"[{name}] in the config file must be a table of strings")
    return {str(k): v for k, v in value.items()}


def _str_list(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f'{name} in the config file must be an array of strings, e.g. ["a", "b"]')
    return tuple(value)


def _status_map(value: Any, name: str) -> dict[str, ApprovalStatus]:
    result = {}
    for key, status in _str_map(value, name).items():
        try:
            result[key] = ApprovalStatus(status)
        except ValueError:
            choices = ", ".join(s.value for s in ApprovalStatus)
            raise ConfigError(f"[{name}] {key} = {status!r}: use one of {choices}") from None
    return result


def _metadata_table(table: Any) -> dict[str, str]:
    """`[metadata]`: SageMaker key -> `kind` or `kind:name` (METADATA_SOURCES), checked now so that a typo
    fails at load, naming the key and the fix, not at the first package."""
    from .mapping.limits import fits_key  # here, not at the top: mapping imports this module
    from .mapping.metadata import OWNED_PREFIXES

    sources = ", ".join(f"{kind}:<name>" if named else kind for kind, named in METADATA_SOURCES.items())
    entries = _str_map(table, "metadata")
    for key, source in entries.items():
        if not fits_key(key) or key.startswith(OWNED_PREFIXES):
            raise ConfigError(
                f"[metadata] {key!r}: a SageMaker metadata key is 1-128 letters, digits, spaces and "
                f"_ . : / = + - @, and may not start with {', '.join(OWNED_PREFIXES)} (mlsync's own keys)"
            )
        kind, _, name = source.partition(":")
        if kind not in METADATA_SOURCES or METADATA_SOURCES[kind] != bool(name):
            raise ConfigError(f"[metadata] {key!r} = {source!r}: use one of {sources}")
    return entries


def _approval_rules(table: Any) -> ApprovalRules:
    if not isinstance(table, dict):
        raise ConfigError("[approval] in the config file must be a table")
    unknown = set(table) - APPROVAL_KEYS
    if unknown:
        raise ConfigError(
            f"unknown key(s) {sorted(unknown)} in [approval]; use {', '.join(sorted(APPROVAL_KEYS))}"
        )
    defaults = ApprovalRules()
    return ApprovalRules(
        stages={**defaults.stages, **_status_map(table.get("stages", {}), "approval.stages")},
        aliases=_status_map(table["aliases"], "approval.aliases") if "aliases" in table else defaults.aliases,
        tag=str(table.get("tag", defaults.tag)),
        lifecycle_stages={
            **defaults.lifecycle_stages,
            **_str_map(table.get("lifecycle_stages", {}), "approval.lifecycle_stages"),
        },
        alias_lifecycle_stages=_str_map(
            table.get("alias_lifecycle_stages", defaults.alias_lifecycle_stages),
            "approval.alias_lifecycle_stages",
        ),
    )


def _validate(settings: Settings) -> None:
    if settings.s3_prefix and not S3_PREFIX_PATTERN.fullmatch(settings.s3_prefix.rstrip("/")):
        raise ConfigError(
            f"MLSYNC_S3_PREFIX {settings.s3_prefix!r} is not an s3://bucket/prefix URI of a valid bucket "
            "(lowercase letters, digits, '.', '-') and a prefix of letters, digits and _ . : / = + - @"
        )
    if settings.s3_prefix and len(settings.s3_prefix.rstrip("/")) > MAX_S3_PREFIX:
        raise ConfigError(
            f"MLSYNC_S3_PREFIX is {len(settings.s3_prefix.rstrip('/'))} characters; at most {MAX_S3_PREFIX} "
            "fit, because each package records its run document's S3 URI in a 256-character metadata value"
        )
    if settings.artifact_mode not in ARTIFACT_MODES:
        raise ConfigError(
            f"artifact_mode {settings.artifact_mode!r}: use copy (package model.tar.gz into s3_prefix) or "
            "reference (serve models MLflow keeps in S3 from where they are, uncompressed)"
        )
    if settings.xgboost_container not in XGBOOST_CONTAINERS:
        raise ConfigError(
            f"xgboost_container {settings.xgboost_container!r}: use pyfunc (MLflow's serving image, any "
            "flavor) or builtin (SageMaker's XGBoost image serves MLflow xgboost models)"
        )
    if settings.on_delete not in ON_DELETE:
        raise ConfigError(
            f"on_delete {settings.on_delete!r}: use reject (keep the packages of deleted MLflow versions, "
            "Rejected) or delete (delete them from SageMaker)"
        )
    if any(not secret.strip() for secret in settings.webhook_previous_secrets):
        # An HMAC key of nothing is one anybody can sign with.
        raise ConfigError("webhook_previous_secrets: a previous webhook secret is empty; remove it")
    for name in sorted(_INSTANCE_TYPE_LISTS):
        for instance_type in getattr(settings, name):
            if not INSTANCE_TYPE_PATTERN.fullmatch(instance_type):
                raise ConfigError(
                    f"{name}: {instance_type!r} is not a SageMaker instance type (ml.<family>.<size>, "
                    "e.g. ml.m5.large)"
                )
    for account in settings.share_with:
        if not ACCOUNT_ID.fullmatch(account):
            raise ConfigError(
                f"share_with: {account!r} is not an AWS account id (12 digits, e.g. 111122223333); list "
                "the accounts the model package groups are shared with"
            )
    if settings.approval_conflicts not in APPROVAL_CONFLICTS:
        raise ConfigError(
            f"approval_conflicts {settings.approval_conflicts!r}: use sagemaker (a review made in SageMaker "
            "wins over an MLflow change since the last sync) or mlflow (the MLflow mapping wins)"
        )
    if settings.retry_mode not in {"standard", "adaptive", "legacy"}:
        raise ConfigError(f"retry_mode {settings.retry_mode!r}: use standard or adaptive")
    if not 1 <= settings.concurrency <= MAX_CONCURRENCY:
        raise ConfigError(
            f"concurrency {settings.concurrency}: use 1 (one request at a time) to {MAX_CONCURRENCY}"
        )
    if settings.group_prefix and (
        len(settings.group_prefix) > 31
        or not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,30}", settings.group_prefix)
    ):
        raise ConfigError(
            f"group_prefix {settings.group_prefix!r} must be letters, digits and '-', starting and ending "
            "with a letter or digit (SageMaker's group-name pattern), at most 31 characters"
        )
    if not 0 < settings.safety_max_fraction <= 1:
        raise ConfigError("safety_max_fraction must be in (0, 1]")
    rules = settings.approval
    for table, stages in (
        ("lifecycle_stages", rules.lifecycle_stages),
        ("alias_lifecycle_stages", rules.alias_lifecycle_stages),
    ):
        for key, stage in stages.items():
            if len(stage) > MAX_ENTITY_NAME or not ENTITY_NAME.fullmatch(stage):
                raise ConfigError(
                    f"[approval.{table}] {key} = {stage!r}: a SageMaker lifecycle stage is 1-63 letters, "
                    "digits and single '-' (e.g. PreProduction), no spaces"
                )
