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
