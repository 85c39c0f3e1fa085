"""The algorithm metadata: read from the MLmodel flavors when a version is staged, kept from the package.

Pure rules (mapping/algorithm.py, the planner's keeping of staged keys) and one push through the executor
over the in-memory ports, so what is sent on create and what later plans do with it are both shown.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mlflow_sagemaker_registry.config import Settings
from mlflow_sagemaker_registry.domain import (
    ObservedGroup,
    ObservedPackage,
    PackageSpec,
    SourceModel,
    SourceVersion,
)
from mlflow_sagemaker_registry.mapping import desired_group, desired_package, sync_status
from mlflow_sagemaker_registry.mapping.algorithm import (
    KEY_FLAVOR,
    KEY_MODEL_CLASS,
    Algorithm,
    algorithm_of,
    held_entries,
    staged_entries,
    staged_keys,
)
from mlflow_sagemaker_registry.planner import plan_model

SOURCE = "sqlite:////srv/mlflow.db"
MODEL = "ml-pipeline-model-group"
ARN = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{MODEL}/1"
XGBOOST_FLAVORS: dict[str, dict[str, Any]] = {
    "python_function": {"loader_module": "mlflow.xgboost", "data": "model.ubj"},
    "xgboost": {"data": "model.ubj", "model_class": "xgboost.sklearn.XGBClassifier", "xgb_version": "3.2.0"},
}


def test_the_flavor_is_the_library_that_saved_the_model_not_the_generic_pyfunc() -> None:
    assert algorithm_of(XGBOOST_FLAVORS) == Algorithm("xgboost", "xgboost.sklearn.XGBClassifier")
    sklearn = algorithm_of({"python_function": {}, "sklearn": {"sklearn_version": "1.5.2"}})
    assert sklearn == Algorithm("sklearn") and sklearn.name == "scikit-learn"
    custom = algorithm_of({"python_function": {"loader_module": "my_model"}})
    assert custom.flavor == "python_function" and custom.name == "Custom pyfunc"
    assert (
        algorithm_of({"python_function": {}, "fastai": {}}).name == "fastai"
    )  # an unknown library's own name


def test_configured_keys_name_the_library_as_its_users_write_it() -> None:
    keys = staged_keys({"Algorithm": "algorithm", "Framework": "flavor", "Accuracy": "metric:accuracy"})
    assert keys == {
        KEY_FLAVOR: "flavor",
        KEY_MODEL_CLASS: "model_class",
        "Algorithm": "algorithm",
        "Framework": "flavor",
    }
    assert staged_entries(algorithm_of(XGBOOST_FLAVORS), keys) == {
        KEY_FLAVOR: "xgboost",
        KEY_MODEL_CLASS: "xgboost.sklearn.XGBClassifier",
        "Algorithm": "XGBoost",
        "Framework": "xgboost",
    }
    # No class is said for scikit-learn models; a class SageMaker's metadata cannot hold is left out.
    assert KEY_MODEL_CLASS not in staged_entries(Algorithm("sklearn"), keys)
    assert KEY_MODEL_CLASS not in staged_entries(Algorithm("sklearn", "a<b>"), keys)


def test_a_package_without_a_flavor_keeps_having_none() -> None:
    assert held_entries({"mlflow.version": "1"}, staged_keys({"Algorithm": "algorithm"})) == {}


def _spec(settings: Settings, v: SourceVersion) -> tuple[SourceModel, PackageSpec]:
    model = SourceModel(MODEL, versions=(v,))
    return model, desired_package(v, desired_group(model, settings).name, SOURCE, settings)


def _package(spec: PackageSpec, metadata: dict[str, str]) -> ObservedPackage:
    return ObservedPackage(
        arn=ARN,
        group_name=spec.group_name,
        package_version=1,
        approval=spec.approval,
        lifecycle=spec.lifecycle,
        customer_metadata=metadata,
        description=spec.description,
        metadata_properties=dict(spec.metadata_properties),
        model_card=spec.model_card,
    )


def _updates(settings: Settings, v: SourceVersion, held: dict[str, str]) -> list[Any]:
    model, spec = _spec(settings, v)
    group = desired_group(model, settings)
    observed = ObservedGroup(group.name, group.description, (_package(spec, held),))
    plan = plan_model(model, group, observed, [spec], SOURCE)
    return [a.change for a in plan.actions if type(a).__name__ == "UpdatePackage"]


def test_later_plans_keep_what_staging_added_and_fill_a_configured_key_from_it() -> None:
    settings = Settings(s3_prefix="s3://bucket/mlsync")
    v = SourceVersion(MODEL, "1", run_id="r1", params={"max_depth": "5"})
    _, spec = _spec(settings, v)
    assert KEY_FLAVOR not in spec.customer_metadata  # only the staged model says it
    staged = staged_entries(algorithm_of(XGBOOST_FLAVORS), spec.staged_keys)
    held = {**spec.customer_metadata, **staged}  # what the create sent
    assert _updates(settings, v, held) == []  # neither removed nor rewritten

    # `Algorithm = "algorithm"` added to [metadata] later: set from the flavor the package holds, and
    # the version's sync status changes, so the engine describes the package instead of presuming it.
    configured = replace(settings, metadata={"Algorithm": "algorithm"})
    (change,) = _updates(configured, v, held)
    assert change.metadata_set == {"Algorithm": "XGBoost"} and change.metadata_remove == ()
    assert sync_status(_spec(configured, v)[1]) != sync_status(spec)


def test_room_is_kept_for_the_staged_keys_within_the_50_entry_budget() -> None:
    settings = Settings(s3_prefix="s3://bucket/mlsync", metadata={"Algorithm": "algorithm"})
    v = SourceVersion(MODEL, "1", run_id="r1", params={f"p{i:02d}": str(i) for i in range(60)})
    _, spec = _spec(settings, v)
    staged = staged_entries(algorithm_of(XGBOOST_FLAVORS), spec.staged_keys)
    assert len(spec.customer_metadata) + len(staged) == 50
