"""Which algorithm a version's model is, as metadata Studio shows ("Algorithm: XGBoost").

Only the model's `MLmodel` file says which library saved it (its flavors); MLflow 3 keeps no flavor on the
run or the logged model. Reading that file for every version at plan time would cost one artifact
download per version on every reconcile, so the flavor is read when the version is staged (the stager
reads the MLmodel file anyway) and written with the package's metadata then. A version's files never
change, so neither does its flavor: later plans take it from the package SageMaker holds
(`held_entries`), and a package that has none (created before mlsync recorded it) keeps having none.

The keys filled at staging are `mlflow.flavor` (the flavor's name, `xgboost`), `mlflow.model_class` (the
estimator class, when the MLmodel says it: the xgboost and lightgbm flavors do) and the `[metadata]`
keys whose source is `flavor` or `algorithm` (the library's own name, `XGBoost`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .limits import fits_value

KEY_FLAVOR = "mlflow.flavor"

KEY_MODEL_CLASS = "mlflow.model_class"

PYFUNC = "python_function"
"""The generic flavor every MLflow model has; a model with no other flavor is a custom pyfunc."""

STAGED_SOURCES = frozenset({"flavor", "algorithm", "model_class"})
"""The `[metadata]` sources (config.METADATA_SOURCES) known only once the model is staged."""

DEFAULT_STAGED: Mapping[str, str] = {KEY_FLAVOR: "flavor", KEY_MODEL_CLASS: "model_class"}

LIBRARY_NAMES: Mapping[str, str] = {
    "xgboost": "XGBoost",
    "sklearn": "scikit-learn",
    "lightgbm": "LightGBM",
    "catboost": "CatBoost",
    "pytorch": "PyTorch",
    "tensorflow": "TensorFlow",
    "keras": "Keras",
    "transformers": "Hugging Face Transformers",
    "sentence_transformers": "Sentence Transformers",
    "onnx": "ONNX",
    "spark": "Spark MLlib",
    "statsmodels": "statsmodels",
    "prophet": "Prophet",
    "h2o": "H2O",
    "spacy": "spaCy",
    "paddle": "PaddlePaddle",
    PYFUNC: "Custom pyfunc",
}
"""Flavor -> the library's name as its users write it; another flavor is shown by its own name."""


@dataclass(frozen=True)
class Algorithm:
    """A model's flavor and, when its MLmodel file names it, its estimator class."""

    flavor: str
    model_class: str | None = None

    @property
    def name(self) -> str:
        """The library's own name (`XGBoost`), what the workshop's "Algorithm" shows."""
        return LIBRARY_NAMES.get(self.flavor, self.flavor)

    def value(self, source: str) -> str | None:
        """The value of one staged source (STAGED_SOURCES) for this model, None when it has none."""
        return {"flavor": self.flavor, "algorithm": self.name, "model_class": self.model_class}[source]


def algorithm_of(flavors: Mapping[str, Mapping[str, Any]]) -> Algorithm:
    """The algorithm of a model from its MLmodel flavors: the first flavor that is not the generic
    pyfunc one (the library that saved it), else a custom pyfunc model."""
    flavor = next((name for name in flavors if name != PYFUNC), PYFUNC)
    model_class = flavors.get(flavor, {}).get("model_class")
    return Algorithm(flavor, str(model_class) if model_class else None)


def staged_keys(configured: Mapping[str, str]) -> dict[str, str]:
    """The metadata keys filled at staging (key -> source): mlsync's own, then the `[metadata]` ones."""
    return {**DEFAULT_STAGED, **{k: s for k, s in configured.items() if s in STAGED_SOURCES}}


def staged_entries(algorithm: Algorithm, keys: Mapping[str, str]) -> dict[str, str]:
    """The metadata a staged model adds to its package (what SageMaker cannot take is left out)."""
    values = {key: algorithm.value(source) for key, source in keys.items()}
    return {key: value for key, value in values.items() if value is not None and fits_value(value)}


def held_entries(held: Mapping[str, str], keys: Mapping[str, str]) -> dict[str, str]:
    """The staged metadata a package keeps, rebuilt from the flavor it holds, so later plans neither
    remove it nor lose a `[metadata]` key added since; nothing for a package without a flavor."""
    if KEY_FLAVOR not in held:
        return {}
    return staged_entries(Algorithm(held[KEY_FLAVOR], held.get(KEY_MODEL_CLASS)), keys)
