"""Pure: what SageMaker should show about serving a model, read from its `MLmodel` file.

The MIME types are those of MLflow's scoring server (`mlflow.pyfunc.scoring_server`), which both the
pyfunc image and `mlflow models serve` run: it reads JSON, CSV and Parquet request bodies and always
answers JSON. Which request types a model really takes depends on its input signature: CSV has no way
to write a tensor or a nested value. `Task` and `Domain` use the words of SageMaker's Inference
Recommender, and are only set when the flavor says what the model does.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
RESPONSE_TYPES = (JSON,)

# MLflow column types a CSV cell can hold (mlflow.types.DataType); arrays, objects and maps cannot.
_SCALAR_TYPES = frozenset({"boolean", "integer", "long", "float", "double", "string", "binary", "datetime"})

MACHINE_LEARNING = "MACHINE_LEARNING"
NATURAL_LANGUAGE_PROCESSING = "NATURAL_LANGUAGE_PROCESSING"
COMPUTER_VISION = "COMPUTER_VISION"

# Flavors whose models are classic tabular machine learning, whatever the estimator.
_TABULAR_FLAVORS = frozenset({"sklearn", "xgboost", "lightgbm", "catboost", "statsmodels", "h2o", "spark"})
# Flavors of language models and pipelines around them.
_LANGUAGE_FLAVORS = frozenset(
    {"transformers", "sentence_transformers", "spacy", "openai", "langchain", "llama_index", "dspy"}
)
# Hugging Face pipeline tasks (the transformers flavor's `task`) -> SageMaker (Task, Domain).
_TRANSFORMERS_TASKS: Mapping[str, tuple[str, str]] = {
    "text-generation": ("TEXT_GENERATION", NATURAL_LANGUAGE_PROCESSING),
    "text2text-generation": ("TEXT_GENERATION", NATURAL_LANGUAGE_PROCESSING),
    "fill-mask": ("FILL_MASK", NATURAL_LANGUAGE_PROCESSING),
    "text-classification": ("CLASSIFICATION", NATURAL_LANGUAGE_PROCESSING),
    "zero-shot-classification": ("CLASSIFICATION", NATURAL_LANGUAGE_PROCESSING),
    "image-classification": ("IMAGE_CLASSIFICATION", COMPUTER_VISION),
    "object-detection": ("OBJECT_DETECTION", COMPUTER_VISION),
    "image-segmentation": ("IMAGE_SEGMENTATION", COMPUTER_VISION),
}


def content_types(signature_inputs: Sequence[Mapping[str, Any]] | None) -> tuple[str, ...]:
    """The request MIME types the scoring server can turn into this model's input.

    Without a signature nothing is known, so all three. Tensor inputs only as JSON (a CSV or Parquet
    table is two-dimensional, a tensor need not be); columns as Parquet too, and as CSV only when
    every column is a scalar.
    """
    if signature_inputs is None:
        return (JSON, CSV, PARQUET)
    if any(spec.get("type") == "tensor" for spec in signature_inputs):
        return (JSON,)
    if all(spec.get("type") in _SCALAR_TYPES for spec in signature_inputs):
        return (JSON, CSV, PARQUET)
    return (JSON, PARQUET)


def task_and_domain(flavors: Mapping[str, Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """SageMaker's `Task` and `Domain` for a model, each None when its flavors do not say.

    A transformers pipeline names its task; other flavors only say their domain (an sklearn model may
    classify or regress, and MLmodel does not record which).
    """
    transformers_task = flavors.get("transformers", {}).get("task")
    if isinstance(transformers_task, str) and transformers_task in _TRANSFORMERS_TASKS:
        return _TRANSFORMERS_TASKS[transformers_task]
    if _LANGUAGE_FLAVORS.intersection(flavors):
        return None, NATURAL_LANGUAGE_PROCESSING
    if _TABULAR_FLAVORS.intersection(flavors):
        return None, MACHINE_LEARNING
    return None, None


def csv_rows(request: Any) -> str | None:
    """A scoring-server request body (`serving_input_example.json`, parsed) as CSV rows without a
    header, the body SageMaker's built-in XGBoost image reads; None when it is no table of numbers
    (a tensor of higher rank, named tensors, text).

    The scoring server's forms: `dataframe_split` (columns and rows), `dataframe_records` (one object
    per row, in the first row's key order), `inputs` / `instances` (a list of rows).
    """
    if not isinstance(request, Mapping):
        return None
    rows: Any = None
    if isinstance(request.get("dataframe_split"), Mapping):
        rows = request["dataframe_split"].get("data")
    elif isinstance(request.get("dataframe_records"), list) and request["dataframe_records"]:
        records = request["dataframe_records"]
        if all(isinstance(record, Mapping) for record in records):
            rows = [[record.get(key) for key in records[0]] for record in records]
    else:
        rows = request.get("inputs", request.get("instances"))
    if not isinstance(rows, list) or not rows or not all(isinstance(row, list) for row in rows):
        return None
    if not all(isinstance(cell, (int, float)) and not isinstance(cell, bool) for row in rows for cell in row):
        return None
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()
