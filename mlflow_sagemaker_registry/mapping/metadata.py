"""A version's `CustomerMetadataProperties` and `MetadataProperties`, within SageMaker's limits.

Identity keys first (they are how a package is matched to its version), then the training dataset's
name and version, datasets, metrics and params while the 50-entry budget lasts; what does not fit is
only in the run document the metadata names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from ..domain import Document, SourceVersion
from .algorithm import STAGED_SOURCES, staged_keys
from .identity import KEY_MODEL, KEY_SERVER, KEY_VERSION, encode_identity
from .limits import MAX_METADATA_ENTRIES, fits_key, fits_value

KEY_RUN = "mlflow.run_id"

KEY_USER = "mlflow.user"

KEY_DOCUMENT = "mlsync.run_document"

KEY_OMITTED = "mlsync.omitted"

KEY_TRAINING_DATASET = "mlflow.training_dataset"

KEY_TRAINING_DATASET_VERSION = "mlflow.training_dataset_version"

TRAINING_CONTEXT = "training"

DATASET_VERSION_TAG = "version"
"""The input tag a dataset's version is read from (`mlflow.log_input(..., tags={"version": "v1.0"})`)."""

PARAM_PREFIX = "param."

METRIC_PREFIX = "metric."

DATASET_PREFIX = "dataset."

OWNED_PREFIXES = ("mlflow.", "mlsync.", PARAM_PREFIX, METRIC_PREFIX, DATASET_PREFIX)


def format_metric(value: float) -> str:
    """A metric as text that round-trips exactly: `repr` for finite floats, NaN/Infinity spelled out."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))


def customer_metadata(
    version: SourceVersion,
    source_id: str,
    run_document: Document,
    configured: Mapping[str, str] | None = None,
    records: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], int]:
    """The `CustomerMetadataProperties` of a version, within SageMaker's limits.

    Identity keys first (they are how a package is matched to its MLflow version), then `records`
    (mlsync's own records of what it wrote, e.g. the model card's digest), then the keys the
    `[metadata]` setting names (`configured`: key -> source, config.METADATA_SOURCES), then the training
    dataset's name and version, datasets, metrics and params in name order while the 50-entry budget
    lasts. A configured key whose source the version lacks is left out (not counted). Room is kept for
    the keys filled when the model is staged (`algorithm.staged_keys`: its flavor). Returns the map
    and how many items did not fit as they are (those are only in the run document, which the metadata
    names); a second dataset with the name of one already kept is one of those.
    """
    entries: dict[str, str] = {
        KEY_MODEL: encode_identity(version.model_name),
        KEY_VERSION: version.version,
        KEY_SERVER: encode_identity(source_id),
        KEY_DOCUMENT: run_document.s3_uri,
    }
    if version.run_id:
        entries[KEY_RUN] = version.run_id
    if version.user and fits_value(version.user):
        entries[KEY_USER] = version.user
    entries.update(records or {})
    candidates: list[tuple[str, str]] = [
        *_configured(version, configured or {}),
        *_training_dataset(version),
        # A dataset logged in two contexts (training and evaluation) is one `dataset.<name>` entry.
        *dict.fromkeys((DATASET_PREFIX + d.name, d.digest) for d in version.datasets),
        *((METRIC_PREFIX + k, format_metric(v)) for k, v in sorted(version.metrics.items())),
        *((PARAM_PREFIX + k, v) for k, v in sorted(version.params.items())),
    ]
    omitted = 0
    # One entry is kept for KEY_OMITTED, and one for each key staging fills.
    budget = MAX_METADATA_ENTRIES - len(entries) - 1 - len(staged_keys(configured or {}))
    for key, value in candidates:
        if budget > 0 and key not in entries and fits_key(key) and fits_value(value):
            entries[key] = value
            budget -= 1
        else:
            omitted += 1
    entries[KEY_OMITTED] = str(omitted)
    return entries, omitted


def _configured(version: SourceVersion, configured: Mapping[str, str]) -> list[tuple[str, str]]:
    """The `[metadata]` entries the version has a value for, in the order the setting lists them."""
    entries = []
    for key, source in configured.items():
        if source in STAGED_SOURCES:
            continue  # filled when the model is staged
        value = _source_value(version, *source.partition(":")[::2])
        if value is not None:
            entries.append((key, value))
    return entries


def _source_value(version: SourceVersion, kind: str, name: str) -> str | None:
    """One `[metadata]` source's value for the version (None when it has none); kinds as in
    config.METADATA_SOURCES, which validates them at load."""
    if kind == "metric":
        return format_metric(version.metrics[name]) if name in version.metrics else None
    named = {"param": version.params, "run_tag": version.run_tags, "tag": version.tags}
    if kind in named:
        return named[kind].get(name)
    if kind == "user":
        return version.user
    training = dict(_training_dataset(version))
    return training.get(KEY_TRAINING_DATASET if kind == "training_dataset" else KEY_TRAINING_DATASET_VERSION)


def _training_dataset(version: SourceVersion) -> list[tuple[str, str]]:
    """The name and version of the first dataset logged in the training context, as Studio users look for
    them ("training dataset version v1.0"); nothing when no input has that context."""
    training = next((d for d in version.datasets if d.context == TRAINING_CONTEXT), None)
    if training is None:
        return []
    entries = [(KEY_TRAINING_DATASET, training.name)]
    dataset_version = dict(training.tags).get(DATASET_VERSION_TAG)
    if dataset_version:
        entries.append((KEY_TRAINING_DATASET_VERSION, dataset_version))
    return entries


def metadata_properties(version: SourceVersion) -> dict[str, str]:
    """`MetadataProperties`: where the model came from (run link, git repository and commit)."""
    props = {
        "GeneratedBy": version.run_link or "",
        "Repository": version.run_tags.get("mlflow.source.git.repoURL", ""),
        "CommitId": version.run_tags.get("mlflow.source.git.commit", ""),
    }
    return {k: v[:1024] for k, v in props.items() if v}


def owned_keys(keys: Iterable[str]) -> list[str]:
    """The metadata keys among `keys` that mlsync manages (and so may remove)."""
    return sorted(k for k in keys if k.startswith(OWNED_PREFIXES))


def within_budget(desired: Mapping[str, str], foreign: int) -> dict[str, str]:
    """`desired` cut to fit the 50-entry limit beside `foreign` keys someone added by hand in SageMaker.

    Those keys are never removed (mlsync removes only keys it owns), so mlsync gives way: `param.*` keys
    go first (the last in name order first), then `metric.*`, then `dataset.*`; the identity keys always
    stay. What is dropped is counted in `mlsync.omitted` and stays in the run document.
    """
    room = MAX_METADATA_ENTRIES - foreign
    if len(desired) <= room:
        return dict(desired)
    droppable = [
        key
        for prefix in (PARAM_PREFIX, METRIC_PREFIX, DATASET_PREFIX)
        for key in sorted((k for k in desired if k.startswith(prefix)), reverse=True)
    ]
    dropped = set(droppable[: len(desired) - room])
    kept = {key: value for key, value in desired.items() if key not in dropped}
    kept[KEY_OMITTED] = str(int(desired.get(KEY_OMITTED, "0")) + len(dropped))
    return kept
