"""SageMaker's built-in XGBoost image (`xgboost_container = builtin`): the image chosen, the archive that
image loads, CSV requests, and `mlsync verify` applying the image's own loading rule.

The rule (aws/sagemaker-xgboost-container, algorithm mode `serve_utils.get_loaded_booster`): every regular
file at the root of `/opt/ml/model` is loaded as a model, by `pickle.load` or else
`xgboost.Booster().load_model`; so the archive must hold the booster alone. End to end: real MLflow
xgboost models in a SQLite registry, pushed into the emulator process.
"""

from __future__ import annotations

import pickle
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import mlflow
import numpy as np
import pytest
import xgboost
from e2e_support import calls_since, mlsync, packages, use_registry, writes

from mlflow_sagemaker_registry.artifacts import MLmodel
from mlflow_sagemaker_registry.config import Settings
from mlflow_sagemaker_registry.emulator import EmulatorProcess
from mlflow_sagemaker_registry.errors import MappingError
from mlflow_sagemaker_registry.images import ImageChoice, choose_container
from mlflow_sagemaker_registry.inference import csv_rows
from mlflow_sagemaker_registry.mapping.identity import group_name

BUCKET = "mlsync-xgboost"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
BUILTIN = "xgboost builtin"
PYFUNC = "xgboost pyfunc"


def _mlmodel(flavors: dict[str, dict[str, Any]]) -> MLmodel:
    return MLmodel(flavors, "3.17.2", "3.11.7", None, None)


XGB = _mlmodel({"python_function": {}, "xgboost": {"data": "model.ubj", "xgb_version": "1.7.6"}})


class Catalogue:
    """A stand-in for the SDK's image catalogue: one XGBoost image, for 1.7."""

    def uri(
        self, framework: str, version: str, python_version: str | None, instance_type: str | None
    ) -> str | None:
        return IMAGE if framework == "xgboost" and version.startswith("1.7") else None


def _choose(settings: Settings, mlmodel: MLmodel = XGB, catalogue: Any = None) -> Any:
    choice = ImageChoice(settings, {"SERVER": "pyfunc"}, lambda v: f"pyfunc:{v}", catalogue)
    return choose_container(
        choice, "m", "1", mlmodel, ["MLmodel", "model.ubj"], ("s3://b/model.tar.gz", True)
    )


def test_the_builtin_image_is_opt_in_and_an_image_configured_for_the_model_wins() -> None:
    assert _choose(Settings()).image == "pyfunc:3.17.2"
    builtin = Settings(xgboost_container="builtin", xgboost_image=IMAGE)
    container = _choose(builtin)
    assert (container.image, container.framework, container.framework_version) == (IMAGE, "XGBOOST", "1.7-1")
    assert container.environment == {}  # algorithm mode: no script to name
    assert _choose(Settings(xgboost_container="builtin", image="mine:1")).image == "mine:1"
    sklearn = _mlmodel({"python_function": {}, "sklearn": {"sklearn_version": "1.5.2"}})
    assert _choose(builtin, sklearn).image == "pyfunc:3.17.2"  # only xgboost models


def test_without_a_configured_image_the_sdk_names_one_or_the_error_says_what_to_set() -> None:
    settings = Settings(xgboost_container="builtin")
    assert _choose(settings, catalogue=Catalogue()).image == IMAGE
    newer = _mlmodel({"xgboost": {"data": "model.ubj", "xgb_version": "3.2.0"}})
    for catalogue, mlmodel in ((None, XGB), (Catalogue(), newer)):
        with pytest.raises(MappingError, match="set xgboost_image") as caught:
            _choose(settings, mlmodel, catalogue)
        assert "model 'm' version 1" in str(caught.value)


def test_an_input_example_becomes_csv_rows_when_it_is_a_table_of_numbers() -> None:
    assert csv_rows({"inputs": [[1, 2.5], [3, -0.1]]}) == "1,2.5\n3,-0.1\n"
    assert csv_rows({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}) == "1,2\n"
    assert csv_rows({"dataframe_records": [{"b": 2, "a": 1}, {"a": 3, "b": 4}]}) == "2,1\n4,3\n"
    for untabular in ({"inputs": [["text"]]}, {"inputs": {"x": [1]}}, {"inputs": [[[1]]]}, [1, 2]):
        assert csv_rows(untabular) is None


def register_xgboost(name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(60, 4))
    target = (features[:, 0] - features[:, 1] > 0).astype(int)
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=3).fit(features, target)
    with mlflow.start_run():
        mlflow.xgboost.log_model(
            model,
            name="model",
            registered_model_name=name,
            input_example=features[:3],
            pip_requirements=[f"xgboost=={xgboost.__version__}"],
        )


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("xgboost")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    try:
        register_xgboost(BUILTIN, 0)
        register_xgboost(PYFUNC, 1)
        yield root
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture
def env(emulator: EmulatorProcess, registry_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return use_registry(monkeypatch, emulator.url, registry_dir, BUCKET)


def _download(s3_uri: str, to: Path) -> Path:
    bucket, key = s3_uri.removeprefix("s3://").split("/", 1)
    boto3.client("s3").download_file(bucket, key, str(to))
    return to


@pytest.mark.e2e
def test_a_builtin_package_holds_what_the_xgboost_image_loads_and_verify_proves_it(
    env: dict[str, str], emulator: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mlsync("push", PYFUNC).exit_code == 0  # the default: MLflow's pyfunc image
    monkeypatch.setenv("MLSYNC_XGBOOST_CONTAINER", "builtin")
    monkeypatch.setenv("MLSYNC_XGBOOST_IMAGE", IMAGE)
    pushed = mlsync("push", BUILTIN)
    assert pushed.exit_code == 0, pushed.output

    (package,) = packages(group_name(BUILTIN))
    (container,) = package["InferenceSpecification"]["Containers"]
    assert (container["Image"], container["Framework"], container["FrameworkVersion"]) == (
        IMAGE,
        "XGBOOST",
        "1.7-1",
    )
    assert package["InferenceSpecification"]["SupportedContentTypes"] == ["text/csv", "text/libsvm"]
    assert package["CustomerMetadataProperties"]["mlflow.flavor"] == "xgboost"
    assert package["CustomerMetadataProperties"]["mlflow.model_class"] == "xgboost.sklearn.XGBClassifier"

    # The image's loading rule, applied to the archive: each root file is a model, pickle or booster.
    with tarfile.open(_download(container["ModelDataUrl"], tmp_path / "model.tar.gz")) as archive:
        assert archive.getnames() == ["xgboost-model"]
        archive.extractall(tmp_path / "opt-ml-model", filter="data")
    model_file = tmp_path / "opt-ml-model" / "xgboost-model"
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(model_file.read_bytes())
    booster = xgboost.Booster()
    booster.load_model(str(model_file))
    with tarfile.open(_download(package["SamplePayloadUrl"], tmp_path / "payload.tar.gz")) as payload:
        (member,) = payload.getmembers()
        rows = payload.extractfile(member).read().decode()  # type: ignore[union-attr]
    assert member.name == "payload.csv" and len(rows.splitlines()) == 3
    matrix = np.loadtxt(rows.splitlines(), delimiter=",", ndmin=2)
    assert booster.predict(xgboost.DMatrix(matrix)).shape == (3,)

    verified = mlsync("verify", BUILTIN, PYFUNC)
    assert verified.exit_code == 0, verified.output
    assert "loads as the built-in XGBoost image loads it" in verified.output
    assert "exactly what the MLflow version predicts" in verified.output  # the pyfunc package

    mark = len(emulator.calls())
    assert mlsync("push", BUILTIN, PYFUNC).exit_code == 0
    assert writes(calls_since(emulator, mark)) == []
