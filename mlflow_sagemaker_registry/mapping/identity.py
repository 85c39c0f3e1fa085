"""Who a package belongs to: the identity mlsync records in its metadata, group names, client tokens.

A package is matched to its MLflow version by the identity in its `CustomerMetadataProperties` (source
registry, model, version), so losing an MLflow tag loses nothing; the `ClientToken` derived from the same
identity makes a retried or concurrent create one request.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
import uuid
from collections.abc import Mapping

from ..domain import ENTITY_NAME, MAX_ENTITY_NAME
from .limits import MAX_METADATA_VALUE, fits_value

ENCODED_PREFIX = "b64:"

# Metadata keys mlsync owns. Keys outside these prefixes (added by hand in SageMaker) are never removed.
KEY_MODEL = "mlflow.registered_model"

KEY_VERSION = "mlflow.version"

KEY_SERVER = "mlflow.tracking_server"

_TOKEN_NAMESPACE = uuid.UUID("6f1b7c1e-34d4-4c55-9d0f-6d6c73796e63")


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
    """The model package group for a registered model: the name itself when SageMaker accepts it and it
    has no capital letter.

    SageMaker compares group names without case (a `churn` group cannot be created beside `Churn`), so a
    name with a capital letter, like a name SageMaker would refuse, becomes a readable form (ASCII letters
    and digits, other runs of characters -> one `-`) plus `-` and 8 hex characters of the exact name's
    sha256: two MLflow names that differ in anything, case included, never share a group.
    """
    full = f"{prefix}-{model_name}" if prefix else model_name
    if _plain(full) and model_name == model_name.lower():
        return full
    ascii_name = unicodedata.normalize("NFKD", model_name).encode("ascii", "ignore").decode()
    readable = re.sub(r"[^a-zA-Z0-9]+", "-", ascii_name).strip("-")
    digest = hashlib.sha256(model_name.encode()).hexdigest()[:8]
    head = f"{prefix}-{readable}" if prefix and readable else prefix or readable
    head = head[: MAX_ENTITY_NAME - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}" if head else f"mlflow-{digest}"


def legacy_group_name(model_name: str, prefix: str = "") -> str | None:
    """The group mlsync before 0.2 used for a name with a capital letter (the name itself), else None.

    The engine keeps using such a group when it exists and its owner tag names this model, so an upgrade
    never mirrors a model a second time (docs/mapping.md, "Group names").
    """
    full = f"{prefix}-{model_name}" if prefix else model_name
    if _plain(full) and group_name(model_name, prefix) != full:
        return full
    return None


def _plain(name: str) -> bool:
    # The pattern alone lets runs of `-` make a name longer than 63 characters.
    return len(name) <= MAX_ENTITY_NAME and ENTITY_NAME.fullmatch(name) is not None


def owner_of(tags: Mapping[str, str]) -> str | None:
    """The MLflow model a group's tags say it mirrors, or None when they name none (not mlsync's group)."""
    value = tags.get(KEY_MODEL)
    return decode_identity(value) if value is not None else None


def client_token(source_id: str, model_name: str, version: str) -> str:
    """The `ClientToken` for creating this version's package: the same on every run and every machine.

    A uuid5 is 36 characters of `[a-f0-9-]`, exactly what the API allows (1-36 of `[a-zA-Z0-9-]`), so a
    retried or concurrent create of the same version is recognised by SageMaker as one request.
    """
    return str(uuid.uuid5(_TOKEN_NAMESPACE, "\0".join((source_id, model_name, version))))


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
