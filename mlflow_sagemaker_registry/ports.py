"""The seams between the engine and the outside world, as structural protocols.

The engine and executor talk only to these; `sources/` and `gateways/` implement them over mlflow and
boto3, and tests may pass any object of the same shape. This keeps the core free of boto3 and mlflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .domain import (
    Document,
    GroupListing,
    GroupSpec,
    Inference,
    ObservedPackage,
    PackageSpec,
    PackageUpdate,
    SourceModel,
)

if TYPE_CHECKING:
    from .images import FrameworkImages


class Source(Protocol):
    """An MLflow Model Registry, read in full and written only through version tags."""

    def identity(self) -> str:
        """A stable identity of the source registry (same for every client of the same registry)."""
        ...

    def model_names(self) -> list[str]:
        """Every registered model name, in a stable order."""
        ...

    def read_model(self, name: str) -> SourceModel:
        """The registered model and all its READY versions with run params, metrics and tags."""
        ...

    def download_model(self, artifact_uri: str, dest: Path) -> Path:
        """Download the model directory at `artifact_uri` under `dest`; return the local directory."""
        ...

    def artifact_location(self, name: str, version: str) -> str:
        """Where the version's model directory is, as a concrete URI (`s3://…` for a model kept in S3);
        asked only for versions being packaged, so reading a model costs no request per version."""
        ...

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        """Set tags on one model version (back-links, sync records, pulled approvals; nothing else)."""
        ...

    def set_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        """Set tags on the registered model itself (only `mlsync.group_policy`, the sharing record)."""
        ...

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point a registered model's alias at a version (only `mlsync rollback` moves aliases)."""
        ...

    def serving_environment(self) -> Mapping[str, str]:
        """The environment MLflow's pyfunc serving image expects (as `mlflow sagemaker deploy` sets it)."""
        ...


class Registry(Protocol):
    """The SageMaker Model Registry (model package groups and versioned packages)."""

    def list_group(self, group_name: str) -> GroupListing | None:
        """The group with the summaries of its packages, or None when it does not exist."""
        ...

    def list_groups(self, name_prefix: str = "") -> dict[str, GroupListing]:
        """Every group whose name starts with `name_prefix`, with its summaries, keyed by exact name.

        What a whole-registry reconcile reads instead of one `list_group` per model: a few listing
        pages for the whole account.
        """
        ...

    def group_tags(self, group_name: str) -> Mapping[str, str] | None:
        """The group's tags (its owner is `mlflow.registered_model`), or None when it does not exist."""
        ...

    def describe_package(self, arn: str) -> ObservedPackage:
        """One package in full (metadata, creation-only fields)."""
        ...

    def create_group(self, spec: GroupSpec) -> None:
        """Create the group; succeed quietly if it already exists (a concurrent push made it)."""
        ...

    def create_package(self, spec: PackageSpec, inference: Inference) -> str:
        """Create the versioned package with `spec.client_token`; return its ARN."""
        ...

    def delete_package(self, arn: str) -> None:
        """Delete one versioned package (its S3 documents and artifacts stay)."""
        ...

    def update_package(self, arn: str, change: PackageUpdate) -> None:
        """One UpdateModelPackage call with only the fields `change` sets (SageMaker merges metadata)."""
        ...

    def group_arn(self, group_name: str) -> str:
        """The ARN a group of this name has (or will have) in this account and region; no call per group."""
        ...

    def get_group_policy(self, group_name: str) -> str | None:
        """The group's resource policy (JSON text), or None when it has none."""
        ...

    def put_group_policy(self, group_name: str, policy: str) -> None:
        """Set the group's resource policy (replacing the one it holds)."""
        ...

    def delete_group_policy(self, group_name: str) -> None:
        """Remove the group's resource policy; one already gone counts as removed."""
        ...

    def default_image(self, mlflow_version: str) -> str:
        """The MLflow pyfunc serving image in this account's ECR, as `mlflow sagemaker` names it."""
        ...


class Storage(Protocol):
    """S3, where mlsync keeps the documents and model artifacts it writes."""

    def put_document(self, document: Document) -> None:
        """Upload one JSON document (idempotent: same URI, same bytes)."""
        ...

    def upload_file(self, path: Path, s3_uri: str) -> bool:
        """Upload a local file with boto3's managed (multipart) transfer unless `s3_uri` already exists.

        Keys are content-addressed by the caller, so an existing object is the same bytes. Returns
        whether anything was uploaded.
        """
        ...

    def read(self, s3_uri: str) -> bytes:
        """The bytes of one small object (a document, an MLmodel file, an input example)."""
        ...

    def list_prefix(self, s3_uri: str) -> list[str]:
        """The keys under the prefix `s3_uri` (ending in `/`), relative to it, sorted."""
        ...

    def download_file(self, s3_uri: str, path: Path) -> None:
        """Download one object to `path` with boto3's managed transfer (streamed to disk)."""
        ...


@dataclass(frozen=True)
class Gateways:
    """The outside world one engine talks to, handed as one value to the engine, executor and stager.

    `framework_images` resolves SageMaker framework images when the optional `sagemaker` SDK is
    installed (images.py); None means MLflow's pyfunc image only.
    """

    source: Source
    registry: Registry
    storage: Storage
    framework_images: FrameworkImages | None = None
