"""SageMaker's limits on the text mlsync sends, as the real API enforces them (moto checks none).

From botocore's sagemaker service-2.json: `CustomerMetadataProperties` holds at most 50 entries, keys of
1-128 and values of 1-256 characters, both of `[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]` only; descriptions are at most
1024 characters without control characters. Lengths are counted as SageMaker's Java front end counts
them, in UTF-16 code units (`api_length`). Group names: `domain.ENTITY_NAME`, at most 63 characters.
"""

from __future__ import annotations

import itertools
import re
import unicodedata

MAX_METADATA_ENTRIES = 50

MAX_METADATA_KEY = 128

MAX_METADATA_VALUE = 256

MAX_DESCRIPTION = 1024

MAX_APPROVAL_DESCRIPTION = 1024  # `ApprovalDescription`, pattern `.*` (no line breaks)


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


def clean_description(text: str) -> str:
    """A description SageMaker accepts: control characters (newlines) folded into spaces, <= 1024 UTF-16
    code units (cut with a trailing `…` when longer)."""
    folded = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text)
    return cut(re.sub(r" {2,}", " ", folded).strip(), MAX_DESCRIPTION)


def cut(text: str, limit: int) -> str:
    """`text` if it is at most `limit` UTF-16 code units long, else its longest prefix that fits with a
    trailing `…`."""
    if api_length(text) <= limit:
        return text
    # Running lengths only grow, so this keeps a prefix, and never half of a surrogate pair.
    lengths = itertools.accumulate(api_length(ch) for ch in text)
    kept = (ch for ch, length in zip(text, lengths, strict=True) if length <= limit - 1)
    return "".join(kept) + "…"
