"""Pure mapping: one MLflow registered model / version -> the SageMaker group / package it should be.

No I/O and no boto3, mlflow or click: every rule here is unit-tested exhaustively and documented in
docs/mapping.md. The SageMaker limits enforced here are the real API's (botocore's sagemaker
service-2.json), which moto does not check:

- group names: `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`;
- `CustomerMetadataProperties`: at most 50 entries, keys 1-128 and values 1-256 characters, both of
  `[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]` only;
- `ModelPackageDescription`: at most 1024 characters, no control characters.

Lengths are counted as SageMaker's Java front end counts them, in UTF-16 code units (`api_length`).

What does not fit is never truncated silently: the full record goes to a JSON document in S3 and the
metadata points at it.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import ApprovalRules, Settings
from .domain import (
    ApprovalStatus,
    Document,
    GroupSpec,
    Lifecycle,
    PackageSpec,
    SourceModel,
    SourceVersion,
)
from .errors import MappingError

GROUP_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
MAX_GROUP_NAME = 63
MAX_METADATA_ENTRIES = 50
MAX_METADATA_KEY = 128
MAX_METADATA_VALUE = 256
MAX_DESCRIPTION = 1024
MAX_APPROVAL_DESCRIPTION = 1024  # `ApprovalDescription`, pattern `.*` (no line breaks)
ENCODED_PREFIX = "b64:"

# Metadata keys mlsync owns. Keys outside these prefixes (added by hand in SageMaker) are never removed.
KEY_MODEL = "mlflow.registered_model"
KEY_VERSION = "mlflow.version"
KEY_RUN = "mlflow.run_id"
KEY_SERVER = "mlflow.tracking_server"
KEY_USER = "mlflow.user"
KEY_DOCUMENT = "mlsync.run_document"
KEY_OMITTED = "mlsync.omitted"
PARAM_PREFIX = "param."
METRIC_PREFIX = "metric."
DATASET_PREFIX = "dataset."
OWNED_PREFIXES = ("mlflow.", "mlsync.", PARAM_PREFIX, METRIC_PREFIX, DATASET_PREFIX)

# MLflow version tags mlsync writes (the only MLflow data it writes). The ARN tag is the one AWS's own
# MLflow auto-registration uses.
TAG_PACKAGE_ARN = "sagemaker.model_package_arn"
TAG_SYNC_STATUS = "mlsync.sync_status"
SYNCED = "synced"
# The approval SageMaker held when mlsync last synced the version: the base of the three-way merge.
TAG_SYNCED_APPROVAL = "mlsync.synced_approval"
# Why the last approval conflict (both sides changed) was settled the way it was.
TAG_APPROVAL_CONFLICT = "mlsync.approval_conflict"
# When mlsync first saw the version Approved: what `mlsync rollback` goes back to.
TAG_APPROVED_AT = "mlsync.approved_at"
# A review pulled from SageMaker: its description, who made it and when (besides the approval tag).
TAG_REVIEW_DESCRIPTION = "sagemaker.approval_description"
TAG_REVIEW_BY = "sagemaker.approval_modified_by"
TAG_REVIEW_TIME = "sagemaker.approval_modified_time"
OWN_TAGS = frozenset(
    {
        TAG_PACKAGE_ARN,
        TAG_SYNC_STATUS,
        TAG_SYNCED_APPROVAL,
        TAG_APPROVAL_CONFLICT,
        TAG_APPROVED_AT,
        TAG_REVIEW_DESCRIPTION,
        TAG_REVIEW_BY,
        TAG_REVIEW_TIME,
    }
)
"""Version tags only mlsync writes: setting one is never news for a trigger (it would only loop).

The approval tag (`ApprovalRules.tag`, `sagemaker.approval`) is not among them: people set it too. A pull
writes it only with the value the mapping then gives, so the reconcile it may trigger writes nothing.
"""
MAX_TAG_VALUE = 5000
"""MLflow's limit on a tag value; statuses and pulled descriptions are cut to it."""

_TOKEN_NAMESPACE = uuid.UUID("6f1b7c1e-34d4-4c55-9d0f-6d6c73796e63")


def api_length(text: str) -> int:
    """A string's length as SageMaker's (Java) validation counts it: UTF-16 code units.

    A character outside the Basic Multilingual Plane (many emoji, rare CJK letters) counts twice.
    """
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def is_metadata_text(text: str) -> bool:
    """Whether `text` matches SageMaker's metadata character class `[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]`."""
    return all(ch in "_.:/=+-@" or unicodedata.category(ch)[0] in "LZN" for ch in text)


def fits_value(text: str) -> bool:
    """Whether `text` can be a `CustomerMetadataProperties` value as it is."""
    return 1 <= api_length(text) <= MAX_METADATA_VALUE and is_metadata_text(text)


def fits_key(text: str) -> bool:
    """Whether `text` can be a `CustomerMetadataProperties` key as it is."""
    return 1 <= api_length(text) <= MAX_METADATA_KEY and is_metadata_text(text)


def encode_identity(text: str) -> str:
    """An identity value (model name, source id) as metadata: raw when it fits, else `b64:` + base64.

    Base64's alphabet (`A-Za-z0-9+/=`) is inside the metadata character class, and a raw value that
    itself starts with `b64:` is encoded too, so decoding is never ambiguous.
    """
    if fits_value(text) and not text.startswith(ENCODED_PREFIX):
        return text
    encoded = ENCODED_PREFIX + base64.b64encode(text.encode()).decode()
    if len(encoded) > MAX_METADATA_VALUE:
        return ENCODED_PREFIX + "sha256=" + hashlib.sha256(text.encode()).hexdigest()
    return encoded


def decode_identity(value: str) -> str:
    """Inverse of `encode_identity` (a hashed over-long value cannot be decoded and stays as it is)."""
    if value.startswith(ENCODED_PREFIX) and not value.startswith(ENCODED_PREFIX + "sha256="):
        return base64.b64decode(value[len(ENCODED_PREFIX) :]).decode()
    return value


def identity_key(source_id: str, model_name: str, version: str) -> tuple[str, str, str]:
    """What `identity_of` returns for the package of this version.

    Equal to `(source_id, model_name, version)` unless a value is too long to encode: then it is the
    hashed form `encode_identity` records, which `decode_identity` leaves as it is.
    """
    source, model = (decode_identity(encode_identity(text)) for text in (source_id, model_name))
    return source, model, version


def group_name(model_name: str, prefix: str = "") -> str:
    """The model package group for a registered model: the name itself when SageMaker accepts it.

    Otherwise a readable form (ASCII letters and digits, other runs of characters -> one `-`) plus `-`
    and 8 hex characters of the name's sha256, so two MLflow names never share a group.
    """
    full = f"{prefix}-{model_name}" if prefix else model_name
    # The pattern alone lets runs of `-` make a name longer than 63 characters.
    if len(full) <= MAX_GROUP_NAME and GROUP_NAME.fullmatch(full):
        return full
    ascii_name = unicodedata.normalize("NFKD", model_name).encode("ascii", "ignore").decode()
    readable = re.sub(r"[^a-zA-Z0-9]+", "-", ascii_name).strip("-")
    digest = hashlib.sha256(model_name.encode()).hexdigest()[:8]
    head = f"{prefix}-{readable}" if prefix and readable else prefix or readable
    head = head[: MAX_GROUP_NAME - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}" if head else f"mlflow-{digest}"


def client_token(source_id: str, model_name: str, version: str) -> str:
    """The `ClientToken` for creating this version's package: the same on every run and every machine.

    A uuid5 is 36 characters of `[a-f0-9-]`, exactly what the API allows (1-36 of `[a-zA-Z0-9-]`), so a
    retried or concurrent create of the same version is recognised by SageMaker as one request.
    """
    return str(uuid.uuid5(_TOKEN_NAMESPACE, "\0".join((source_id, model_name, version))))


def format_metric(value: float) -> str:
    """A metric as text that round-trips exactly: `repr` for finite floats, NaN/Infinity spelled out."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))


def json_metric(value: float) -> float | str:
    """A metric for strict JSON: finite floats as numbers (exact), NaN and infinities as strings."""
    return value if math.isfinite(value) else format_metric(value)


@dataclass(frozen=True)
class ApprovalDecision:
    """The approval and lifecycle a version should have, and the rule that decided it."""

    status: ApprovalStatus
    lifecycle: Lifecycle | None
    reason: str


_LIFECYCLE_STATUS = {
    ApprovalStatus.APPROVED: "Approved",
    ApprovalStatus.REJECTED: "Rejected",
    ApprovalStatus.PENDING: "PendingApproval",
}


def decide_approval(version: SourceVersion, rules: ApprovalRules) -> ApprovalDecision:
    """Approval by precedence: version tag, then the first configured alias it has, then its stage.

    The lifecycle stage is that of the first alias in `alias_lifecycle_stages` (configured order) the
    version has, else that of its stage; its status follows the approval.

    Raises:
        MappingError: the approval tag holds something that is not an approval status.
    """
    tagged = version.tags.get(rules.tag)
    alias = next((a for a in rules.aliases if a in version.aliases), None)
    if tagged is not None:
        status = _parse_status(tagged, version, rules.tag)
        reason = f"tag {rules.tag}={tagged.strip()}"
    elif alias is not None:
        status = rules.aliases[alias]
        reason = f"alias @{alias}"
    else:
        status = rules.stages.get(version.stage, ApprovalStatus.PENDING)
        reason = f"stage {version.stage}"
    stage = next(
        (stage for a, stage in rules.alias_lifecycle_stages.items() if a in version.aliases),
        rules.lifecycle_stages.get(version.stage),
    )
    lifecycle = Lifecycle(stage, _LIFECYCLE_STATUS[status]) if stage else None
    return ApprovalDecision(status, lifecycle, reason)


def settle_approval(
    desired: ApprovalStatus, lifecycle: Lifecycle | None, current: ApprovalStatus
) -> tuple[ApprovalStatus, Lifecycle | None]:
    """The approval to set on an existing package whose approval is `current`.

    SageMaker documents PendingManualApproval -> Approved | Rejected and Approved <-> Rejected, but no way
    back to PendingManualApproval. So a version that falls back to "pending" (the champion alias moved
    away, Production was left) is set to Rejected if it was Approved: a deployment pipeline that takes
    the latest Approved package must stop taking it. A Rejected package stays Rejected.
    """
    if desired is not ApprovalStatus.PENDING or current is ApprovalStatus.PENDING:
        return desired, lifecycle
    settled = ApprovalStatus.REJECTED
    return settled, lifecycle_for(lifecycle, settled)


def lifecycle_for(lifecycle: Lifecycle | None, status: ApprovalStatus) -> Lifecycle | None:
    """`lifecycle` with the StageStatus that goes with `status` (the stage is the mapping's)."""
    return Lifecycle(lifecycle.stage, _LIFECYCLE_STATUS[status]) if lifecycle else None


def _parse_status(value: str, version: SourceVersion, tag: str) -> ApprovalStatus:
    for status in ApprovalStatus:
        if value.strip().lower() == status.value.lower():
            return status
    choices = ", ".join(s.value for s in ApprovalStatus)
    raise MappingError(
        version.model_name,
        version.version,
        f"tag {tag}={value!r} is not a SageMaker approval status",
        f"set the tag to one of {choices}, or delete it to use the stage/alias mapping",
    )


def desired_group(model: SourceModel, settings: Settings) -> GroupSpec:
    """The group for a registered model; the exact MLflow name is kept in its description and a tag."""
    name = group_name(model.name, settings.group_prefix)
    description = _clean_description(f"MLflow registered model {model.name}")
    return GroupSpec(
        name=name,
        model_name=model.name,
        description=description,
        tags={KEY_MODEL: encode_identity(model.name)},
    )


def document_uri(s3_prefix: str, body: bytes) -> str:
    """Documents are content-addressed, so a URI written once never changes under a reader.

    `ModelMetrics` cannot be updated after creation; a per-version key rewritten later would make the
    digest recorded in the package wrong.
    """
    return f"{s3_prefix}/documents/{hashlib.sha256(body).hexdigest()}.json"


def make_document(s3_prefix: str, payload: Mapping[str, Any]) -> Document:
    """A JSON document with its content-addressed URI and `sha256:` digest."""
    body = json.dumps(payload, sort_keys=True, allow_nan=False, ensure_ascii=False, indent=1).encode()
    return Document(document_uri(s3_prefix, body), body, "sha256:" + hashlib.sha256(body).hexdigest())


def run_record(version: SourceVersion) -> dict[str, Any]:
    """Everything mirrored from the version, losslessly: the S3 document behind the metadata.

    It leaves out the source registry's identity on purpose: the same registry may be known by two
    names (a plugin on the server sees its database, a client sees its URL), and the document, like
    the sync digest, must not differ between them.
    """
    return {
        "format": "mlsync.run/1",
        "registered_model": version.model_name,
        "version": version.version,
        "run_id": version.run_id,
        "description": version.description,
        "params": dict(sorted(version.params.items())),
        "metrics": {k: json_metric(v) for k, v in sorted(version.metrics.items())},
        "datasets": [{"name": d.name, "digest": d.digest} for d in version.datasets],
        "user": version.user,
        "run_link": version.run_link,
    }


# MLflow metric names (autolog and mlflow.evaluate spellings, with or without a `training_`/`test_` or
# `val_` prefix) -> (SageMaker model-quality section, metric name).
_REGRESSION = "regression_metrics"
_BINARY = "binary_classification_metrics"
_QUALITY_NAMES: Mapping[str, tuple[str, str]] = {
    "mae": (_REGRESSION, "mae"),
    "mean_absolute_error": (_REGRESSION, "mae"),
    "mse": (_REGRESSION, "mse"),
    "mean_squared_error": (_REGRESSION, "mse"),
    "rmse": (_REGRESSION, "rmse"),
    "root_mean_squared_error": (_REGRESSION, "rmse"),
    "r2": (_REGRESSION, "r2"),
    "r2_score": (_REGRESSION, "r2"),
    "accuracy": (_BINARY, "accuracy"),
    "accuracy_score": (_BINARY, "accuracy"),
    "precision": (_BINARY, "precision"),
    "precision_score": (_BINARY, "precision"),
    "recall": (_BINARY, "recall"),
    "recall_score": (_BINARY, "recall"),
    "f1": (_BINARY, "f1"),
    "f1_score": (_BINARY, "f1"),
    "auc": (_BINARY, "auc"),
    "roc_auc": (_BINARY, "auc"),
    "log_loss": (_BINARY, "log_loss"),
}
_METRIC_PREFIXES = ("", "test_", "eval_", "val_", "validation_", "training_", "train_")


def quality_statistics(metrics: Mapping[str, float]) -> dict[str, Any] | None:
    """SageMaker's model-quality statistics JSON from MLflow metrics, plus the raw metrics.

    The problem type is the section most recognised names fall into (classification metrics go to
    `binary_classification_metrics`; a `multiclass` tag-driven split is left to configuration later).
    Held-out metrics (`test_`, `eval_`, `val_`) win over training ones for the same SageMaker name.
    Returns None when no metric name is recognised.
    """
    sections: dict[str, dict[str, dict[str, float | str]]] = {}
    for prefix in _METRIC_PREFIXES:
        for name, value in sorted(metrics.items()):
            if not name.startswith(prefix) or name[len(prefix) :] not in _QUALITY_NAMES:
                continue
            section, sm_name = _QUALITY_NAMES[name[len(prefix) :]]
            sections.setdefault(section, {}).setdefault(
                sm_name, {"value": json_metric(value), "standard_deviation": "NaN"}
            )
    if not sections:
        return None
    main = max(sections, key=lambda s: len(sections[s]))
    return {main: sections[main], "mlflow_metrics": {k: json_metric(v) for k, v in sorted(metrics.items())}}


_HEADLINE_ORDER = ("accuracy", "auc", "f1", "r2", "rmse", "mae", "mse", "precision", "recall", "log_loss")


def headline_metric(metrics: Mapping[str, float], preferred: str | None = None) -> tuple[str, float] | None:
    """The one metric `mlsync status` shows: the configured one, else the first recognised quality
    metric (held-out before training), else None."""
    if preferred:
        return (preferred, metrics[preferred]) if preferred in metrics else None
    for wanted in _HEADLINE_ORDER:
        for prefix in _METRIC_PREFIXES:
            for name, value in sorted(metrics.items()):
                if name.startswith(prefix) and _QUALITY_NAMES.get(name[len(prefix) :], ("", ""))[1] == wanted:
                    return name, value
    return None


def customer_metadata(
    version: SourceVersion, source_id: str, run_document: Document
) -> tuple[dict[str, str], int]:
    """The `CustomerMetadataProperties` of a version, within SageMaker's limits.

    Identity keys first (they are how a package is matched to its MLflow version), then datasets,
    metrics and params in name order while the 50-entry budget lasts. Returns the map and how many
    items did not fit as they are (those are only in the run document, which the metadata names); a
    second dataset with the name of one already kept is one of those.
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
    candidates: list[tuple[str, str]] = [
        *((DATASET_PREFIX + d.name, d.digest) for d in version.datasets),
        *((METRIC_PREFIX + k, format_metric(v)) for k, v in sorted(version.metrics.items())),
        *((PARAM_PREFIX + k, v) for k, v in sorted(version.params.items())),
    ]
    omitted = 0
    budget = MAX_METADATA_ENTRIES - len(entries) - 1  # one entry is kept for KEY_OMITTED
    for key, value in candidates:
        if budget > 0 and key not in entries and fits_key(key) and fits_value(value):
            entries[key] = value
            budget -= 1
        else:
            omitted += 1
    entries[KEY_OMITTED] = str(omitted)
    return entries, omitted


def metadata_properties(version: SourceVersion) -> dict[str, str]:
    """`MetadataProperties`: where the model came from (run link, git repository and commit)."""
    props = {
        "GeneratedBy": version.run_link or "",
        "Repository": version.run_tags.get("mlflow.source.git.repoURL", ""),
        "CommitId": version.run_tags.get("mlflow.source.git.commit", ""),
    }
    return {k: v[:1024] for k, v in props.items() if v}


def _clean_description(text: str) -> str:
    """A description SageMaker accepts: control characters (newlines) folded into spaces, <= 1024 UTF-16
    code units (cut with a trailing `…` when longer)."""
    folded = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text)
    folded = re.sub(r" {2,}", " ", folded).strip()
    if api_length(folded) <= MAX_DESCRIPTION:
        return folded
    # Running lengths only grow, so this keeps a prefix, and never half of a surrogate pair.
    lengths = itertools.accumulate(api_length(ch) for ch in folded)
    kept = (ch for ch, length in zip(folded, lengths, strict=True) if length <= MAX_DESCRIPTION - 1)
    return "".join(kept) + "…"


def desired_package(version: SourceVersion, group: str, source_id: str, settings: Settings) -> PackageSpec:
    """The package one MLflow version should be mirrored as.

    Raises:
        MappingError: the version cannot be mirrored as it is (the message names the fix).
    """
    prefix = settings.require_s3_prefix()
    decision = decide_approval(version, settings.approval)
    run_document = make_document(prefix, run_record(version))
    statistics = quality_statistics(version.metrics)
    metadata, _ = customer_metadata(version, source_id, run_document)
    description = _clean_description(version.description)
    return PackageSpec(
        group_name=group,
        model_name=version.model_name,
        version=version.version,
        client_token=client_token(source_id, version.model_name, version.version),
        approval=decision.status,
        lifecycle=decision.lifecycle,
        customer_metadata=metadata,
        description=description,
        metadata_properties=metadata_properties(version),
        run_document=run_document,
        quality_statistics=make_document(prefix, statistics) if statistics else None,
        artifact_uri=version.artifact_uri,
        approval_reason=f"mlsync: {decision.reason}"[:MAX_APPROVAL_DESCRIPTION],
    )


def sync_status(spec: PackageSpec) -> str:
    """The sync-status tag of a version mirrored as `spec` with no drift: `synced <digest>`.

    The digest covers every field the planner compares apart from approval and lifecycle, which
    ListModelPackages summaries carry, and the source registry's name (see `run_record`). While a
    version's tag still equals this value and its ARN tag names a listed package, the engine presumes
    that package's metadata instead of asking DescribeModelPackage: a no-op reconcile costs a few list
    calls, not one describe per version.
    """
    state = {
        "metadata": {k: v for k, v in spec.customer_metadata.items() if k != KEY_SERVER},
        "description": spec.description,
        "properties": dict(spec.metadata_properties),
        "statistics": spec.quality_statistics.digest if spec.quality_statistics else None,
    }
    digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]
    return f"{SYNCED} {digest}"


def identity_of(metadata: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(source id, model name, version) recorded in a package's metadata, or None if not mlsync's."""
    try:
        return (
            decode_identity(metadata[KEY_SERVER]),
            decode_identity(metadata[KEY_MODEL]),
            metadata[KEY_VERSION],
        )
    except (KeyError, ValueError):
        return None


def owned_keys(keys: Iterable[str]) -> list[str]:
    """The metadata keys among `keys` that mlsync manages (and so may remove)."""
    return sorted(k for k in keys if k.startswith(OWNED_PREFIXES))
