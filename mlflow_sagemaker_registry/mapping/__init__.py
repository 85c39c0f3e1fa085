"""Pure mapping: one MLflow registered model / version -> the SageMaker group / package it should be.

Split by concern: `limits` (SageMaker's text limits), `identity` (package identity, group names, client
tokens), `metadata` (`CustomerMetadataProperties`), `algorithm` (the flavor, filled at staging),
`documents` (S3 documents, quality statistics), `approval` (approval and lifecycle rules), `model_card`
(the package's `ModelCard`), `tags` (the MLflow tags mlsync writes). This module composes
them into a desired group and package and re-exports their public names.

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

import hashlib
import json

from ..config import Settings
from ..domain import GroupSpec, PackageSpec, SourceModel, SourceVersion
from .algorithm import DEFAULT_STAGED, staged_keys
from .approval import decide_approval
from .documents import make_document, quality_statistics, run_record
from .identity import KEY_MODEL, KEY_SERVER, client_token, encode_identity, group_name
from .limits import MAX_APPROVAL_DESCRIPTION, clean_description
from .metadata import customer_metadata, metadata_properties
from .model_card import KEY_MODEL_CARD, card_digest, model_card
from .tags import SYNCED


def desired_group(model: SourceModel, settings: Settings) -> GroupSpec:
    """The group for a registered model: its description is the registered model's own (what Studio
    shows on the group), or names the model when MLflow has none; the exact name is in a tag."""
    name = group_name(model.name, settings.group_prefix)
    description = clean_description(model.description or f"MLflow registered model {model.name}")
    return GroupSpec(
        name=name,
        model_name=model.name,
        description=description,
        tags={KEY_MODEL: encode_identity(model.name)},
    )


def desired_package(
    version: SourceVersion, group: str, source_id: str, settings: Settings, model_description: str = ""
) -> PackageSpec:
    """The package one MLflow version should be mirrored as (`model_description`: the registered
    model's, for the model card).

    Raises:
        MappingError: the version cannot be mirrored as it is (the message names the fix).
    """
    prefix = settings.require_s3_prefix()
    decision = decide_approval(version, settings.approval)
    run_document = make_document(prefix, run_record(version))
    # The problem type may be tagged on the version or its run; the version's tag wins.
    statistics = quality_statistics(version.metrics, {**version.run_tags, **version.tags})
    card = model_card(version, model_description, decision.status, run_document.s3_uri)
    records = {KEY_MODEL_CARD: card_digest(card)} if card else {}
    metadata, _ = customer_metadata(version, source_id, run_document, settings.metadata, records)
    description = clean_description(version.description)
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
        approval_reason=f"mlsync: {decision.reason}"[:MAX_APPROVAL_DESCRIPTION],
        staged_keys=staged_keys(settings.metadata),
        model_card=card,
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
        # The card's record (its digest, status included) is left out: its content is covered below.
        "metadata": {
            k: v for k, v in spec.customer_metadata.items() if k not in (KEY_SERVER, KEY_MODEL_CARD)
        },
        "description": spec.description,
        "properties": dict(spec.metadata_properties),
        "statistics": spec.quality_statistics.digest if spec.quality_statistics else None,
    }
    if dict(spec.staged_keys) not in ({}, dict(DEFAULT_STAGED)):
        # A `[metadata]` key filled at staging was added or removed: the package is described again, so
        # the key is set from the flavor it holds. (Left out otherwise: a digest that covered mlsync's
        # own staged keys would have changed every version's status once.)
        state["staged"] = dict(spec.staged_keys)
    if spec.model_card is not None:
        # Its content: its status follows approval, which summaries carry (a pull that leaves the status
        # behind marks the version, planner.CARD_TO_FOLLOW). Left out for a version without a card,
        # whose status stays what it was before mlsync wrote cards.
        state["card"] = spec.model_card.content
    digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]
    return f"{SYNCED} {digest}"
