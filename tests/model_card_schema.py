"""SageMaker's model-package card schema (the copy in model_package_card.schema.json) as a test check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from mlflow_sagemaker_registry.mapping.limits import api_length
from mlflow_sagemaker_registry.mapping.model_card import MAX_CARD_CONTENT

SCHEMA = json.loads((Path(__file__).parent / "model_package_card.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def valid_card(text: str) -> dict[str, Any]:
    """`ModelCardContent` parsed, after checking it against the schema and SageMaker's own text rules:
    at most 100,000 UTF-16 code units and, for the pattern `.*` (Java), no raw line terminator."""
    assert api_length(text) <= MAX_CARD_CONTENT
    assert not any(ch in text for ch in "\n\r\u0085\u2028\u2029")
    parsed: dict[str, Any] = json.loads(text)
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in VALIDATOR.iter_errors(parsed)]
    assert not errors, errors
    return parsed
