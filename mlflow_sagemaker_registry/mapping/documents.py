"""The JSON documents mlsync writes to S3: the lossless run record and SageMaker's model-quality statistics.

Content-addressed (`document_uri`), so a URI once written never changes under a reader, and the digest
recorded in `ModelMetrics` (which cannot be updated) stays true.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from ..domain import Document, SourceVersion
from .metadata import format_metric


def json_metric(value: float) -> float | str:
    """A metric for strict JSON: finite floats as numbers (exact), NaN and infinities as strings."""
    return value if math.isfinite(value) else format_metric(value)


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
        "datasets": [
            {
                "name": d.name,
                "digest": d.digest,
                "source_type": d.source_type,
                "source": d.source,
                "context": d.context,
                "tags": dict(d.tags),
            }
            for d in version.datasets
        ],
        "user": version.user,
        "run_link": version.run_link,
    }


# MLflow metric names (autolog and mlflow.evaluate spellings, with or without a `training_`/`test_` or
# `val_` prefix) -> (kind, SageMaker metric name). Classification names go to the binary or the
# multiclass section, as the problem type says (`problem_type`).
_REGRESSION = "regression_metrics"
_BINARY = "binary_classification_metrics"
_MULTICLASS = "multiclass_classification_metrics"
_CLASSIFICATION = "classification"

PROBLEM_TYPES: Mapping[str, str] = {
    "regression": _REGRESSION,
    "binary_classification": _BINARY,
    "multiclass_classification": _MULTICLASS,
}
"""The values of the `problem_type` tag, and the model-quality section each one fills."""

_QUALITY_NAMES: Mapping[str, tuple[str, str]] = {
    "mae": (_REGRESSION, "mae"),
    "mean_absolute_error": (_REGRESSION, "mae"),
    "mse": (_REGRESSION, "mse"),
    "mean_squared_error": (_REGRESSION, "mse"),
    "rmse": (_REGRESSION, "rmse"),
    "root_mean_squared_error": (_REGRESSION, "rmse"),
    "r2": (_REGRESSION, "r2"),
    "r2_score": (_REGRESSION, "r2"),
    "accuracy": (_CLASSIFICATION, "accuracy"),
    "accuracy_score": (_CLASSIFICATION, "accuracy"),
    "precision": (_CLASSIFICATION, "precision"),
    "precision_score": (_CLASSIFICATION, "precision"),
    "recall": (_CLASSIFICATION, "recall"),
    "recall_score": (_CLASSIFICATION, "recall"),
    "f1": (_CLASSIFICATION, "f1"),
    "f1_score": (_CLASSIFICATION, "f1"),
    "auc": (_CLASSIFICATION, "auc"),
    "roc_auc": (_CLASSIFICATION, "auc"),
    "log_loss": (_CLASSIFICATION, "log_loss"),
    # Averaged over classes: only a multiclass problem logs these (sklearn and mlflow.evaluate spellings).
    "weighted_precision": (_MULTICLASS, "weighted_precision"),
    "precision_weighted": (_MULTICLASS, "weighted_precision"),
    "weighted_recall": (_MULTICLASS, "weighted_recall"),
    "recall_weighted": (_MULTICLASS, "weighted_recall"),
    "weighted_f1": (_MULTICLASS, "weighted_f1"),
    "f1_weighted": (_MULTICLASS, "weighted_f1"),
    "f1_score_weighted": (_MULTICLASS, "weighted_f1"),
}

_METRIC_PREFIXES = ("", "test_", "eval_", "val_", "validation_", "training_", "train_")

TAG_PROBLEM_TYPE = "problem_type"
"""A version (or run) tag naming the problem type, when the metric names cannot tell (PROBLEM_TYPES)."""


def problem_section(metrics: Mapping[str, float], tags: Mapping[str, str]) -> str | None:
    """The model-quality section a version's metrics fill (docs/mapping.md, "Model quality").

    The `problem_type` tag wins. Else a metric averaged over classes (`weighted_f1`, ...) means
    multiclass; else classification names mean binary, regression names regression, and the kind
    with more recognised names wins when both appear. None when no name is recognised.
    """
    if tags.get(TAG_PROBLEM_TYPE) in PROBLEM_TYPES:
        return PROBLEM_TYPES[tags[TAG_PROBLEM_TYPE]]
    kinds = [kind for kind, _ in _recognised(metrics).values()]
    if _MULTICLASS in kinds:
        return _MULTICLASS
    if not kinds:
        return None
    classification = sum(kind == _CLASSIFICATION for kind in kinds)
    return _BINARY if classification >= len(kinds) - classification else _REGRESSION


def quality_statistics(
    metrics: Mapping[str, float], tags: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """SageMaker's model-quality statistics JSON from MLflow metrics, plus the raw metrics.

    One section, the problem's (`problem_section`), holding the recognised metrics that belong in it:
    classification metrics in either classification section, regression metrics in the regression one.
    Held-out metrics (`test_`, `eval_`, `val_`) win over training ones for the same SageMaker name.
    Returns None when no metric name is recognised.
    """
    section = problem_section(metrics, tags or {})
    if section is None:
        return None
    wanted = {_REGRESSION} if section == _REGRESSION else {_CLASSIFICATION, section}
    chosen = {
        sm_name: {"value": json_metric(metrics[name]), "standard_deviation": "NaN"}
        for sm_name, (kind, name) in _recognised(metrics).items()
        if kind in wanted
    }
    return {section: chosen, "mlflow_metrics": {k: json_metric(v) for k, v in sorted(metrics.items())}}


def _recognised(metrics: Mapping[str, float]) -> dict[str, tuple[str, str]]:
    """SageMaker name -> (kind, MLflow name) of each recognised metric, held-out spellings first."""
    found: dict[str, tuple[str, str]] = {}
    for prefix in _METRIC_PREFIXES:
        for name in sorted(metrics):
            if name.startswith(prefix) and name[len(prefix) :] in _QUALITY_NAMES:
                kind, sm_name = _QUALITY_NAMES[name[len(prefix) :]]
                found.setdefault(sm_name, (kind, name))
    return found


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
