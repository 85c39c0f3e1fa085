"""A package's `ModelCard`, filled from MLflow: the card Studio shows on a model version.

A model package's card is a simplified model card (botocore's `ModelPackageModelCard`): its content is
JSON text of at most 100,000 characters in SageMaker's model-package card schema, which has no
`model_package_details` and only `model_creator` and `model_artifact` in `model_overview`. What mlsync
fills, and from where (docs/mapping.md, "Model card"):

- `model_overview.model_creator`: the run's user;
- `intended_uses`: the registered model's description (`purpose_of_model`) and the `intended_use` tag of
  the version, else of its run (`intended_uses`);
- `training_details`: the run and its link, the datasets not logged for evaluation, the params;
- `evaluation_details`: the run's metrics with their values, the datasets logged for evaluation;
- `additional_information`: model, version, the version's description, the run document, and what did
  not fit in the card (the run document holds everything).

The same version always gives the same text: items in name order, no timestamps, compact JSON with
sorted keys. The status follows approval (`card_status`). Whether a card SageMaker holds may be replaced
is `card_action`'s rule: mlsync records the digest of each card it writes in the package's metadata
(`KEY_MODEL_CARD`, in the same request), so a card that is neither that one nor MLflow's was edited by
someone else, and is left alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from ..domain import ApprovalStatus, Dataset, ModelCard, SourceVersion
from .limits import api_length, cut

KEY_MODEL_CARD = "mlsync.model_card"
"""The package metadata key holding the digest of the card mlsync last wrote (`card_digest`)."""

TAG_INTENDED_USE = "intended_use"
"""The version (or run) tag whose text is the card's intended use."""

MAX_CARD_CONTENT = 100_000
"""`ModelCardContent`'s maximum length (UTF-16 code units, botocore's `ModelCardContent` shape)."""

ARCHIVED = "Archived"
"""The `ModelCardStatus` after which SageMaker refuses updates of the card's content."""

CARD_STATUSES: Mapping[ApprovalStatus, str] = {
    ApprovalStatus.APPROVED: "Approved",
    ApprovalStatus.PENDING: "PendingReview",
    ApprovalStatus.REJECTED: "Draft",
}
"""`ModelCardStatus` by approval. Never `ARCHIVED`: SageMaker refuses any later content update of an
archived card, and a rejected version can be approved again (a rollback does it)."""

EVALUATION_CONTEXTS = frozenset({"evaluation", "eval", "validation", "test"})
"""Dataset contexts (`mlflow.log_input(..., context=...)`) that go to the evaluation details."""

# The schema's limits (docs/mapping.md names the sources; tests/model_package_card.schema.json checks them).
_LONG_TEXT = 2048  # intended uses, caveats
_TEXT = 1024  # model creator, training observations, custom details, dataset entries
_NAME = 255  # hyperparameter names and values, metric names: `.{1,255}`
_JOB_NAME = 63  # evaluation and metric-group names: `.{1,63}`
_MAX_HYPERPARAMETERS = 100
_MAX_TRAINING_DATASETS = 15
_MAX_EVALUATION_DATASETS = 10
_LINE_BREAKS = "\n\r\u0085\u2028\u2029"
"""What Java's `.` does not match: a name or value holding one breaks `.{1,255}`, and the content (pattern
`.*`) must not hold one raw."""
_SLACK = 1000
"""Room kept when cutting a card to size, for the section wrappers an empty list leaves out."""


class CardAction(Enum):
    """What the planner does with a package's card (`card_action`)."""

    LEAVE = "leave"
    """MLflow gives no card for the version: whatever the package holds stays."""
    IN_SYNC = "in sync"
    WRITE = "write"
    """The package has no card, or holds the one mlsync last wrote: MLflow's replaces it."""
    KEEP = "keep"
    """Someone else wrote or edited the card: it is left as it is and reported as drift."""


def card_status(approval: ApprovalStatus) -> str:
    """The `ModelCardStatus` of a package with this approval (`CARD_STATUSES`)."""
    return CARD_STATUSES[approval]


def card_digest(card: ModelCard) -> str:
    """A digest of a card's status and content; the content is compared as JSON, so a card SageMaker
    answers re-serialized (key order, spacing) is still the one mlsync wrote."""
    try:
        content = json.dumps(json.loads(card.content), sort_keys=True, separators=(",", ":"))
    except ValueError:
        content = card.content
    return hashlib.sha256(json.dumps([content, card.status]).encode()).hexdigest()[:16]


def card_action(desired: ModelCard | None, held: ModelCard | None, record: str | None) -> CardAction:
    """Whether MLflow's card may replace the one the package holds: never undo a human's edit.

    `record` is the package's `KEY_MODEL_CARD` metadata, the digest of the card mlsync last wrote. A held
    card with another digest (or none recorded: a card some other tool wrote) was written by someone
    else, even if only its status was changed in Studio.
    """
    if desired is None:
        return CardAction.LEAVE
    if held is not None and card_digest(held) == card_digest(desired):
        return CardAction.IN_SYNC
    if held is None or card_digest(held) == record:
        return CardAction.WRITE
    return CardAction.KEEP


def status_update(
    held: ModelCard | None, record: str | None, approval: ApprovalStatus
) -> tuple[ModelCard | None, dict[str, str]]:
    """For an approval change planned without MLflow's card at hand (a rollback, a retired version): the
    card mlsync wrote with its status following `approval`, and the metadata that records it; nothing when
    the package has no card of mlsync's (`card_action`) or its status is right already."""
    if held is None:
        return None, {}
    followed = replace(held, status=card_status(approval))
    if card_action(followed, held, record) is not CardAction.WRITE:
        return None, {}
    return followed, {KEY_MODEL_CARD: card_digest(followed)}


def model_card(
    version: SourceVersion, model_description: str, approval: ApprovalStatus, run_document_uri: str
) -> ModelCard | None:
    """The card of a version (module docstring), or None when MLflow says nothing about it beyond its
    name: no run, no descriptions, no intended use."""
    intended_use = {**version.run_tags, **version.tags}.get(TAG_INTENDED_USE, "")
    if not (version.run_id or version.description or model_description or intended_use):
        return None
    params, skipped_params = _fitting(
        [{"name": k, "value": v} for k, v in sorted(version.params.items())], _MAX_HYPERPARAMETERS
    )
    finite = {k: v for k, v in version.metrics.items() if math.isfinite(v)}
    metrics, skipped_metrics = _fitting(
        [{"name": k, "type": "number", "value": v} for k, v in sorted(finite.items())], None
    )
    training, skipped_training = _dataset_list(version.datasets, evaluation=False)
    evaluation, skipped_evaluation = _dataset_list(version.datasets, evaluation=True)
    fixed = _Fixed(version, model_description, intended_use, run_document_uri, training, evaluation)
    omitted = {
        "hyperparameter": skipped_params,
        "metric": skipped_metrics + len(version.metrics) - len(finite),
        "dataset": skipped_training + skipped_evaluation,
    }
    content = _render(fixed.card(metrics, params, omitted))
    if api_length(content) > MAX_CARD_CONTENT:
        content = _cut_to_size(fixed, metrics, params, omitted)
    return ModelCard(content, card_status(approval))


@dataclass(frozen=True)
class _Fixed:
    """The parts of a card that do not depend on how many metrics and params fit."""

    version: SourceVersion
    model_description: str
    intended_use: str
    run_document_uri: str
    training_datasets: list[str]
    evaluation_datasets: list[str]

    def card(
        self, metrics: list[dict[str, Any]], params: list[dict[str, Any]], omitted: Mapping[str, int]
    ) -> dict[str, Any]:
        """The card's sections; empty fields and sections left out."""
        version = self.version
        run = f"MLflow run {version.run_id}" if version.run_id else ""
        sections = {
            "model_overview": {"model_creator": cut(version.user or "", _TEXT)},
            "intended_uses": {
                "purpose_of_model": cut(self.model_description, _LONG_TEXT),
                "intended_uses": cut(self.intended_use, _LONG_TEXT),
            },
            "training_details": {
                "training_observations": cut(
                    f"{run}: {version.run_link}" if run and version.run_link else run, _TEXT
                ),
                "training_job_details": {
                    "training_datasets": self.training_datasets,
                    "hyper_parameters": params,
                },
            },
            "evaluation_details": [
                {
                    "name": cut(run, _JOB_NAME),
                    "datasets": self.evaluation_datasets,
                    "metric_groups": [{"name": "MLflow metrics", "metric_data": metrics}] if metrics else [],
                }
            ]
            if run and (metrics or self.evaluation_datasets)
            else [],
            "additional_information": {
                "caveats_and_recommendations": cut(_omitted_note(omitted, self.run_document_uri), _LONG_TEXT),
                "custom_details": {
                    "mlflow_registered_model": cut(version.model_name, _TEXT),
                    "mlflow_version": version.version,
                    "mlflow_version_description": cut(version.description, _TEXT),
                    "mlsync_run_document": self.run_document_uri,
                },
            },
        }
        pruned: dict[str, Any] = _pruned(sections)
        return pruned


def _cut_to_size(
    fixed: _Fixed, metrics: list[dict[str, Any]], params: list[dict[str, Any]], omitted: Mapping[str, int]
) -> str:
    """A card over the size limit, with the params (at most 100, so they never take all the room) and
    then the metrics that fit, each in name order; the rest counted as omitted."""
    worst = {
        **omitted,
        "metric": omitted["metric"] + len(metrics),
        "hyperparameter": omitted["hyperparameter"] + len(params),
    }
    room = MAX_CARD_CONTENT - api_length(_render(fixed.card([], [], worst))) - _SLACK
    kept_params, room = _within(params, room)
    kept_metrics, _ = _within(metrics, room)
    final = {
        **omitted,
        "metric": omitted["metric"] + len(metrics) - len(kept_metrics),
        "hyperparameter": omitted["hyperparameter"] + len(params) - len(kept_params),
    }
    content = _render(fixed.card(kept_metrics, kept_params, final))
    assert api_length(content) <= MAX_CARD_CONTENT, "the fixed parts of a card are far below its limit"
    return content


def _within(items: list[dict[str, Any]], room: int) -> tuple[list[dict[str, Any]], int]:
    """The first items whose JSON (and a comma each) fits in `room` characters, and the room left."""
    count = 0
    for item in items:
        size = api_length(_render(item)) + 1
        if size > room:
            break
        room -= size
        count += 1
    return items[:count], room


def _fitting(items: list[dict[str, Any]], limit: int | None) -> tuple[list[dict[str, Any]], int]:
    """The items whose name (and text value) the schema takes as they are, at most `limit` of them, and
    how many were left out."""
    fits = [
        item
        for item in items
        if _is_name(item["name"]) and (not isinstance(item["value"], str) or _is_name(item["value"]))
    ]
    kept = fits if limit is None else fits[:limit]
    return kept, len(items) - len(kept)


def _is_name(text: str) -> bool:
    """Whether `text` matches the schema's `.{1,255}`: 1 to 255 characters, no line break."""
    return 1 <= len(text) <= _NAME and not any(ch in _LINE_BREAKS for ch in text)


def _dataset_list(datasets: Sequence[Dataset], *, evaluation: bool) -> tuple[list[str], int]:
    """The training (or evaluation) datasets as the card lists them, each once, within the schema's count;
    and how many did not fit."""
    limit = _MAX_EVALUATION_DATASETS if evaluation else _MAX_TRAINING_DATASETS
    chosen = [_dataset_text(d) for d in datasets if (d.context in EVALUATION_CONTEXTS) is evaluation]
    unique = list(dict.fromkeys(chosen))
    return unique[:limit], len(unique[limit:])


def _dataset_text(dataset: Dataset) -> str:
    """`name (digest d, version v1.0)`: the dataset and its input tags, as Studio shows one line."""
    details = [f"digest {dataset.digest}", *(f"{key} {value}" for key, value in sorted(dataset.tags))]
    return cut(f"{dataset.name} ({', '.join(details)})", _TEXT)


def _omitted_note(omitted: Mapping[str, int], run_document_uri: str) -> str:
    parts = [f"{count} {kind}{'s' if count != 1 else ''}" for kind, count in omitted.items() if count]
    if not parts:
        return ""
    return (
        f"Left out of this card (SageMaker's limits on a card, or not a finite number): {', '.join(parts)} "
        f"of the MLflow run. The run document {run_document_uri} holds every one."
    )


def _pruned(value: Any) -> Any:
    """`value` without empty strings, lists and objects, at any depth."""
    if isinstance(value, dict):
        kept = {key: _pruned(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in ("", [], {})}
    if isinstance(value, list):
        return [item for item in (_pruned(item) for item in value) if item not in ("", [], {})]
    return value


def _render(value: Any) -> str:
    """Compact JSON with sorted keys and no raw line break of any kind (Java's `.*` refuses U+2028...)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for ch in _LINE_BREAKS[2:]:
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text
