"""The MLflow registry as one target sees it: its models, its versions and its own back-link tags.

Each target is reconciled by its own `Engine`, and the engine, planner, executor and rollback all speak
of the plain tag names (`sagemaker.model_package_arn`, `mlsync.sync_status`, ...). For a target other
than the primary this view renames them both ways (`mapping.tags.target_tag`): reads show the target's
own tags under the plain names (and hide the primary's), writes go to the target's names. So every rule
that reads or writes a back-link works for every target unchanged, and the primary's tags stay exactly
those of a single-target setup. The view also holds back what the target does not take: models outside
its `models` patterns and, for `only_approved`, versions the mapping does not approve.

Pure: wraps any `ports.Source`, imports no mlflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from ..config import ApprovalRules
from ..domain import ApprovalStatus, SourceModel, SourceVersion
from ..errors import MappingError
from ..mapping.approval import decide_approval
from ..mapping.tags import PER_TARGET_TAGS, TAG_GROUP_POLICY, TAG_PACKAGE_ARN, target_tag
from ..ports import Source
from ..targets import Target


class TargetView:
    """A `ports.Source` over `inner`, as `target` sees it (see the module docstring)."""

    def __init__(self, inner: Source, target: Target, rules: ApprovalRules, *, primary: bool) -> None:
        self._inner = inner
        self._target = target
        self._rules = rules
        self._names = {} if primary else {key: target_tag(target.name, key) for key in PER_TARGET_TAGS}
        # The registered model's own record of the group policy is per target too (each has its groups).
        self._model_names = {} if primary else {TAG_GROUP_POLICY: target_tag(target.name, TAG_GROUP_POLICY)}

    def identity(self) -> str:
        return self._inner.identity()

    def model_names(self) -> list[str]:
        return [name for name in self._inner.model_names() if self._target.selects(name)]

    def read_model(self, name: str) -> SourceModel:
        """The model with its versions seen through this target's tags.

        With `only_approved`, a version the mapping does not approve is held back, unless this target
        mirrors it already (it must follow, e.g. to Rejected). A held-back version is reported among the
        ones still `registering`: it exists, so its package, if any, is never retired or pruned here.
        """
        model = self._inner.read_model(name)
        versions = tuple(replace(v, tags=_seen(v.tags, self._names)) for v in model.versions)
        model = replace(model, tags=_seen(model.tags, self._model_names), versions=versions)
        if not self._target.only_approved:
            return model
        kept = tuple(version for version in versions if self._admits(version))
        held = tuple(version.version for version in versions if not self._admits(version))
        return replace(model, versions=kept, registering=model.registering + held)

    def download_model(self, artifact_uri: str, dest: Path) -> Path:
        return self._inner.download_model(artifact_uri, dest)

    def artifact_location(self, name: str, version: str) -> str:
        return self._inner.artifact_location(name, version)

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        renamed = {self._names.get(key, key): value for key, value in tags.items()}
        self._inner.set_version_tags(name, version, renamed)

    def set_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        self._inner.set_model_tags(name, {self._model_names.get(k, k): v for k, v in tags.items()})

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._inner.set_alias(name, alias, version)

    def serving_environment(self) -> Mapping[str, str]:
        return self._inner.serving_environment()

    def _admits(self, version: SourceVersion) -> bool:
        if TAG_PACKAGE_ARN in version.tags:
            return True
        try:
            return decide_approval(version, self._rules).status is ApprovalStatus.APPROVED
        except MappingError:  # a bad approval tag is reported by the targets that take every version
            return False


def _seen(tags: Mapping[str, str], names: Mapping[str, str]) -> Mapping[str, str]:
    """`tags` with each plain key of `names` showing the target's own tag (absent when it has none)."""
    if not names:
        return tags
    seen = {key: value for key, value in tags.items() if key not in names}
    return seen | {plain: tags[own] for plain, own in names.items() if own in tags}
