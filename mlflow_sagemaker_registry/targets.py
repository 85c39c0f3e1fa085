"""Targets: the SageMaker accounts and regions one MLflow registry is mirrored into (`[[targets]]`).

Without `[[targets]]` the settings describe one target, the primary, exactly as before targets existed.
With it, each entry names an account and region (credentials by `profile` or an assumed `role_arn`), the
S3 prefix and group prefix used there, which models go there and whether only `Approved` versions do.
Values a target leaves unset are the top-level settings'. The first listed target is the **primary**:
its MLflow back-link tags are the plain ones (`sagemaker.model_package_arn`, ...), reviews are pulled
from it only, and the other targets follow MLflow's mapping (docs/configuration.md, "Targets").

Pure: parsed and validated here, turned into boto3 sessions in wiring.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from .domain import ENTITY_NAME, MAX_ENTITY_NAME
from .errors import ConfigError

DEFAULT_TARGET = "default"
"""The name of the one target that settings without `[[targets]]` describe."""

ROLE_ARN_PATTERN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
EXTERNAL_ID_PATTERN = re.compile(r"[\w+=,.@:/-]{2,1224}")

_STRINGS = ("region", "profile", "role_arn", "external_id", "s3_prefix", "group_prefix")
_KEYS = frozenset({"name", "models", "only_approved", *_STRINGS})


@dataclass(frozen=True)
class Target:
    """One SageMaker account and region to mirror into; None and empty values inherit the settings'."""

    name: str = DEFAULT_TARGET
    region: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    s3_prefix: str | None = None
    group_prefix: str | None = None
    models: tuple[str, ...] = ()
    """Model names or fnmatch patterns (`fraud-*`); empty: every model."""
    only_approved: bool = False
    """Only versions whose mapped approval is `Approved` are created here (a production account)."""

    def selects(self, model_name: str) -> bool:
        """Whether this target mirrors the model (`models` names it or a pattern matches it)."""
        return not self.models or any(fnmatchcase(model_name, pattern) for pattern in self.models)

    def where(self) -> tuple[str | None, str | None, str | None]:
        """What tells accounts and regions apart: two targets with the same would write one registry."""
        return self.region, self.profile, self.role_arn


def parse_targets(value: Any) -> tuple[Target, ...]:
    """The `[[targets]]` array of the config file, validated; each error names the target and the fix.

    Raises:
        ConfigError: not an array of tables, an unknown key, a missing, malformed or repeated name, an
            `external_id` without a `role_arn`, both `profile` and `role_arn`, or two targets that name
            the same account and region (they would share `ClientToken`s and write each other's groups).
    """
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise ConfigError('targets must be an array of tables: [[targets]] name = "prod" ...')
    targets = tuple(_target(entry, index) for index, entry in enumerate(value, start=1))
    seen: dict[str, Target] = {}
    for target in targets:
        if target.name in seen:
            raise ConfigError(f"target {target.name!r} is listed twice; give each [[targets]] its own name")
        twin = next((other for other in seen.values() if other.where() == target.where()), None)
        if twin is not None:
            raise ConfigError(
                f"targets {twin.name!r} and {target.name!r} name the same account and region (region, "
                "profile and role_arn alike); give each its own region or credentials"
            )
        seen[target.name] = target
    return targets


def _target(entry: Mapping[str, Any], index: int) -> Target:
    name = entry.get("name")
    if not isinstance(name, str) or len(name) > MAX_ENTITY_NAME or not ENTITY_NAME.fullmatch(name):
        raise ConfigError(
            f"target #{index}: name = {name!r}; each [[targets]] needs a name of 1-63 letters, digits and "
            "single '-' (e.g. prod-eu), which also names its MLflow tags"
        )
    where = f"target {name!r}"
    unknown = set(entry) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; use {', '.join(sorted(_KEYS))}")
    strings: dict[str, str] = {}
    for key in _STRINGS:
        if key in entry:
            # An empty group_prefix is a choice (no prefix in this account); an empty anything else is not.
            if not isinstance(entry[key], str) or not (entry[key] or key == "group_prefix"):
                raise ConfigError(f"{where}: {key} must be a non-empty string, got {entry[key]!r}")
            strings[key] = entry[key]
    if "profile" in strings and "role_arn" in strings:
        raise ConfigError(
            f"{where}: give profile or role_arn, not both (a role is assumed with the top-level "
            "credentials; to assume it from a profile, put role_arn and source_profile in that profile)"
        )
    if "external_id" in strings and "role_arn" not in strings:
        raise ConfigError(f"{where}: external_id is used when assuming role_arn; set role_arn too")
    if "role_arn" in strings and not ROLE_ARN_PATTERN.fullmatch(strings["role_arn"]):
        raise ConfigError(
            f"{where}: role_arn {strings['role_arn']!r} is not an IAM role ARN "
            "(arn:aws:iam::<12-digit account>:role/<name>)"
        )
    if "external_id" in strings and not EXTERNAL_ID_PATTERN.fullmatch(strings["external_id"]):
        raise ConfigError(
            f"{where}: external_id must be 2-1224 letters, digits and _ + = , . @ : / - (STS's pattern)"
        )
    models = entry.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise ConfigError(f'{where}: models must be an array of model names or patterns, e.g. ["fraud-*"]')
    approved = entry.get("only_approved", False)
    if not isinstance(approved, bool):
        raise ConfigError(f"{where}: only_approved must be true or false, got {approved!r}")
    return Target(name=name, models=tuple(models), only_approved=approved, **strings)


def chosen(targets: Sequence[Target], names: Sequence[str]) -> list[Target]:
    """The targets `--target` names (all when none are named), in their configured order.

    Raises:
        ConfigError: a name is not a configured target.
    """
    unknown = sorted(set(names) - {t.name for t in targets})
    if unknown:
        raise ConfigError(
            f"unknown target(s) {unknown}: the configured targets are {', '.join(t.name for t in targets)}"
        )
    return [t for t in targets if not names or t.name in names]
