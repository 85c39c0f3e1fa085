"""Value types shared by every layer: what MLflow holds, what SageMaker should hold, what it does hold.

Everything here is a frozen dataclass of plain Python values (stdlib only), so the pure core (mapping,
planner) can be tested without boto3 or mlflow, and a plan can be printed, serialized and compared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

ENTITY_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
"""SageMaker's `EntityName` pattern: model package group names and `ModelLifeCycle` stages and statuses."""
MAX_ENTITY_NAME = 63
"""An `EntityName`'s maximum length (the pattern alone lets runs of `-` make it longer)."""


class ApprovalStatus(str, Enum):
    """SageMaker's `ModelApprovalStatus`; only `Approved` packages can be deployed."""

    APPROVED = "Approved"
    REJECTED = "Rejected"
    PENDING = "PendingManualApproval"


@dataclass(frozen=True)
class Dataset:
    """A dataset input of the MLflow run that produced a version (`mlflow.log_input`).

    `context` is the input's `mlflow.data.context` tag ("training", "evaluation", ...; empty when none
    was given) and `tags` its other input tags, e.g. `version`; `source_type` and `source` say where
    the data came from, as MLflow recorded it (the source is a JSON text).
    """

    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    context: str = ""
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SourceVersion:
    """One MLflow model version with everything mlsync mirrors from it.

    `params`, `metrics` and `run_tags` are empty when the version has no run (registered from a bare path).
    `tags` are the version's own tags; `run_tags` those of its run (git commit, user, ...).
    """

    model_name: str
    version: str
    run_id: str | None = None
    description: str = ""
    stage: str = "None"
    aliases: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    run_tags: Mapping[str, str] = field(default_factory=dict)
    datasets: tuple[Dataset, ...] = ()
    user: str | None = None
    run_link: str | None = None


@dataclass(frozen=True)
class SourceModel:
    """An MLflow registered model and the versions of it that mlsync mirrors.

    `is_prompt`: MLflow keeps prompts as registered models too; there is no model to deploy, so every
    path skips them. `registering`: versions that exist but are not READY (still registering, or failed
    to): not mirrored yet, and never taken for deleted.
    """

    name: str
    description: str = ""
    versions: tuple[SourceVersion, ...] = ()
    is_prompt: bool = False
    registering: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    """The registered model's own tags (mlsync writes only `mlsync.group_policy` among them)."""


@dataclass(frozen=True)
class Lifecycle:
    """SageMaker's `ModelLifeCycle` (both fields must match `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`)."""

    stage: str
    stage_status: str


@dataclass(frozen=True)
class Document:
    """A JSON document mlsync writes to S3 (run record, model-quality statistics).

    `digest` is `sha256:<hex>` of `body`, the form SageMaker's `MetricsSource.ContentDigest` takes.
    """

    s3_uri: str
    body: bytes
    digest: str
    content_type: str = "application/json"


@dataclass(frozen=True)
class GroupSpec:
    """The model package group one registered model maps to."""

    name: str
    model_name: str
    description: str
    tags: Mapping[str, str]


@dataclass(frozen=True)
class ModelCard:
    """A model package's `ModelCard`: its content (JSON text, SageMaker's model-package card schema) and
    `ModelCardStatus` (`Draft`, `PendingReview`, `Approved`, `Archived`)."""

    content: str
    status: str

    @property
    def sections(self) -> dict[str, Any]:
        """The content's top-level sections (`intended_uses`, ...); empty when it is not a JSON object."""
        try:
            parsed = json.loads(self.content)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}


@dataclass(frozen=True)
class PackageSpec:
    """The desired SageMaker model package for one MLflow version.

    The creation-only fields (`description`, `metadata_properties`, `quality_statistics`) can never be
    changed after `CreateModelPackage`; the planner reports a difference in them as drift. The model's
    files are not part of it: the executor asks the source where they are (`Source.artifact_location`)
    only when the package is created.
    """

    group_name: str
    model_name: str
    version: str
    client_token: str
    approval: ApprovalStatus
    lifecycle: Lifecycle | None
    customer_metadata: Mapping[str, str]
    description: str
    metadata_properties: Mapping[str, str]
    run_document: Document
    quality_statistics: Document | None
    approval_reason: str = ""
    staged_keys: Mapping[str, str] = field(default_factory=dict)
    """Metadata keys (key -> source) whose values only the staged model says (its flavor): added to
    `customer_metadata` when the package is created, kept from the package after (mapping/algorithm.py)."""
    model_card: ModelCard | None = None
    """The card filled from MLflow, its status following `approval` (mapping/model_card.py); None when
    MLflow has nothing to say about the version."""

    @property
    def documents(self) -> tuple[Document, ...]:
        """The S3 documents the package refers to, written before it is created."""
        if self.quality_statistics is None:
            return (self.run_document,)
        return (self.run_document, self.quality_statistics)


@dataclass(frozen=True)
class ObservedPackage:
    """A model package as SageMaker reports it (from DescribeModelPackage)."""

    arn: str
    group_name: str
    package_version: int
    approval: ApprovalStatus
    lifecycle: Lifecycle | None
    customer_metadata: Mapping[str, str]
    description: str = ""
    metadata_properties: Mapping[str, str] = field(default_factory=dict)
    quality_statistics_digest: str | None = None
    model_data_url: str | None = None
    status: str = "Completed"
    quality_statistics_uri: str | None = None
    model_data_compressed: bool = True
    sample_payload_url: str | None = None
    approval_description: str = ""
    modified_by: str | None = None
    modified_time: str | None = None
    """Who last modified the package and when (ISO 8601, UTC): the reviewer, when a review was the last
    change. Only DescribeModelPackage reports these; a package presumed from its summary has None."""
    model_card: ModelCard | None = None


@dataclass(frozen=True)
class PackageUpdate:
    """What one UpdateModelPackage changes; a field left None or empty is left as it is in SageMaker.

    One value crosses the `Registry` port (not one keyword argument per field), so a new updatable field
    is added here, in the planner rule that fills it and in the gateway request that sends it.
    """

    approval: ApprovalStatus | None = None
    approval_reason: str = ""
    lifecycle: Lifecycle | None = None
    metadata_set: Mapping[str, str] = field(default_factory=dict)
    metadata_remove: tuple[str, ...] = ()
    model_card: ModelCard | None = None

    @property
    def is_empty(self) -> bool:
        """Nothing to send (the reason alone changes nothing)."""
        return not (
            self.approval or self.lifecycle or self.metadata_set or self.metadata_remove or self.model_card
        )


@dataclass(frozen=True)
class PackageSummary:
    """A package as ListModelPackages reports it: approval, lifecycle and status, but no metadata.

    `status` is SageMaker's `ModelPackageStatus` (Completed, InProgress, Failed, ...), what Studio's
    versions table shows as Status.
    """

    arn: str
    package_version: int
    approval: ApprovalStatus
    lifecycle: Lifecycle | None
    status: str = "Completed"


@dataclass(frozen=True)
class GroupListing:
    """A model package group and the summaries of its packages, in version order."""

    name: str
    description: str
    summaries: tuple[PackageSummary, ...] = ()


@dataclass(frozen=True)
class ObservedGroup:
    """A model package group and the packages in it."""

    name: str
    description: str
    packages: tuple[ObservedPackage, ...] = ()


@dataclass(frozen=True)
class Container:
    """The one inference container of a package: the image and the model data it serves.

    `model_data_url` is a `model.tar.gz` object when `compressed`; otherwise it is an S3 prefix (ending
    in `/`) holding the model directory as it is, which SageMaker copies to `/opt/ml/model` unchanged
    (`ModelDataSource` with `S3Prefix` and `CompressionType: None`), so a large model is never copied.
    """

    image: str
    model_data_url: str
    environment: Mapping[str, str] = field(default_factory=dict)
    framework: str | None = None
    framework_version: str | None = None
    compressed: bool = True


@dataclass(frozen=True)
class Inference:
    """How a package is served, and what SageMaker shows about serving it: all read from the model.

    `content_types` and `response_types` are the MIME types the serving container accepts and answers;
    `sample_payload_url` is a `.tar.gz` of one request body (the model's input example), which
    Inference Recommender replays; `task` and `domain` use SageMaker's words (`CLASSIFICATION`,
    `NATURAL_LANGUAGE_PROCESSING`, ...) and are None when the model does not say.
    """

    container: Container
    content_types: tuple[str, ...]
    response_types: tuple[str, ...]
    realtime_instance_types: tuple[str, ...] = ()
    transform_instance_types: tuple[str, ...] = ()
    sample_payload_url: str | None = None
    task: str | None = None
    domain: str | None = None
