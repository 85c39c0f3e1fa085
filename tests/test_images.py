"""Which image serves a package, its environment, and what SageMaker shows about serving it.

The SageMaker SDK (the `images` extra) is not installed for the default run: its image catalogue is
replaced by stand-ins through the `FrameworkImages` seam and a fake `image_uris` module; one test runs
against the real SDK when it is importable.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

import mlflow.pyfunc.scoring_server
import pytest

from mlflow_sagemaker_registry.artifacts import MLmodel
from mlflow_sagemaker_registry.config import Settings
from mlflow_sagemaker_registry.domain import Container
from mlflow_sagemaker_registry.errors import MappingError
from mlflow_sagemaker_registry.images import (
    SCRIPT_ENVIRONMENT,
    ImageChoice,
    SdkFrameworkImages,
    choose_container,
    load_sdk_framework_images,
    matching_version,
)
from mlflow_sagemaker_registry.inference import (
    CSV,
    JSON,
    PARQUET,
    RESPONSE_TYPES,
    content_types,
    task_and_domain,
)
from mlflow_sagemaker_registry.sources.mlflow_serving import pyfunc_environment

PYFUNC_ENV = {"MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function", "SERVING_ENVIRONMENT": "SageMaker"}
DATA = ("s3://bucket/mlsync/artifacts/ab/model.tar.gz", True)
SKLEARN = MLmodel(
    flavors={"python_function": {}, "sklearn": {"sklearn_version": "1.2.2"}},
    mlflow_version="3.17.2",
    python_version="3.10.12",
    signature_inputs=None,
    serving_example=None,
)
WITH_SCRIPT = ("MLmodel", "model.pkl", "code/inference.py")


def default_image(version: str) -> str:
    return f"123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:{version}"


@dataclass
class FakeCatalogue:
    """`FrameworkImages` that knows one image per framework, and records what it was asked."""

    images: dict[str, str] = field(default_factory=lambda: {"sklearn": "sklearn-image:1.2-1"})
    asked: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)

    def uri(
        self, framework: str, version: str, python_version: str | None, instance_type: str | None
    ) -> str | None:
        self.asked.append((framework, version, python_version, instance_type))
        return self.images.get(framework)


def choose(
    mlmodel: MLmodel = SKLEARN,
    files: tuple[str, ...] = WITH_SCRIPT,
    settings: Settings | None = None,
    catalogue: FakeCatalogue | None = None,
    data: tuple[str, bool] = DATA,
) -> Container:
    choice = ImageChoice(settings or Settings(), PYFUNC_ENV, default_image, catalogue)
    return choose_container(choice, "churn", "3", mlmodel, files, data)


# --- choosing the image --------------------------------------------------------------------------------


def test_without_the_sdk_every_model_gets_the_pyfunc_image_of_its_mlflow_version() -> None:
    container = choose(catalogue=None)

    assert container == Container(
        image=default_image("3.17.2"),
        model_data_url=DATA[0],
        environment=PYFUNC_ENV,
    )


def test_a_framework_image_when_the_sdk_has_one_and_the_model_ships_an_entry_point() -> None:
    catalogue = FakeCatalogue()
    settings = Settings(realtime_instance_types=("ml.c5.xlarge", "ml.m5.large"))

    container = choose(settings=settings, catalogue=catalogue)

    assert container == Container(
        image="sklearn-image:1.2-1",
        model_data_url=DATA[0],
        environment=SCRIPT_ENVIRONMENT,
        framework="SAGEMAKER-SCIKIT-LEARN",
        framework_version="1.2.2",
    )
    assert catalogue.asked == [("sklearn", "1.2.2", "3.10.12", "ml.c5.xlarge")]


def test_an_mlflow_directory_without_an_entry_point_gets_the_pyfunc_image() -> None:
    catalogue = FakeCatalogue()

    container = choose(files=("MLmodel", "model.pkl"), catalogue=catalogue)

    assert container.image == default_image("3.17.2")
    assert catalogue.asked == []  # the framework containers cannot load an MLflow directory by themselves


def test_no_framework_image_for_that_library_version_falls_back_to_pyfunc() -> None:
    container = choose(catalogue=FakeCatalogue(images={}))

    assert container.image == default_image("3.17.2") and container.environment == PYFUNC_ENV


def test_a_custom_pyfunc_model_has_no_framework_image() -> None:
    custom = MLmodel(
        {"python_function": {"loader_module": "mlflow.pyfunc.model"}}, "3.17.2", None, None, None
    )
    catalogue = FakeCatalogue()

    assert choose(custom, catalogue=catalogue).image == default_image("3.17.2")
    assert catalogue.asked == []


def test_the_first_framework_flavor_the_sdk_serves_wins() -> None:
    torch_and_sklearn = MLmodel(
        {"pytorch": {"pytorch_version": "2.5.1+cu121"}, "sklearn": {"sklearn_version": "1.2.2"}},
        "3.17.2",
        None,
        None,
        None,
    )
    catalogue = FakeCatalogue(images={"pytorch": "pytorch-inference:2.5"})

    container = choose(torch_and_sklearn, catalogue=catalogue)

    assert [asked[0] for asked in catalogue.asked] == ["sklearn", "pytorch"]
    # `FrameworkVersion` takes `[0-9]\.[A-Za-z0-9.-]+`: the local `+cu121` part is dropped.
    assert (container.framework, container.framework_version) == ("PYTORCH", "2.5.1")


@pytest.mark.parametrize(
    ("settings", "image"),
    [
        (Settings(image="registry/pinned:1"), "registry/pinned:1"),
        (Settings(image="registry/pinned:1", images={"churn": "registry/churn:2"}), "registry/churn:2"),
    ],
)
def test_a_configured_image_wins_over_both_and_keeps_the_pyfunc_environment(
    settings: Settings, image: str
) -> None:
    container = choose(settings=settings, catalogue=FakeCatalogue())

    assert container == Container(image, DATA[0], PYFUNC_ENV)


def test_an_uncompressed_model_is_passed_through() -> None:
    prefix = "s3://mlflow/1/models/m-1/artifacts/"

    container = choose(data=(prefix, False))

    assert (container.model_data_url, container.compressed) == (prefix, False)


def test_without_an_mlflow_version_the_pyfunc_tag_is_unknown_and_the_fix_is_named() -> None:
    unversioned = MLmodel({"python_function": {}}, None, None, None, None)

    with pytest.raises(MappingError, match=r"set `image` \(or \[images\] for this model\)"):
        choose(unversioned)
    assert choose(unversioned, settings=Settings(image="registry/x:1")).image == "registry/x:1"


@pytest.mark.parametrize(("version", "kept"), [("1.2.2", "1.2.2"), ("10.0.0.dev0+abc", None), ("dev", None)])
def test_framework_version_is_sent_only_in_the_shape_sagemaker_accepts(
    version: str, kept: str | None
) -> None:
    mlmodel = MLmodel({"sklearn": {"sklearn_version": version}}, "3.17.2", None, None, None)

    assert choose(mlmodel, catalogue=FakeCatalogue()).framework_version == kept


# --- the SDK's catalogue -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "available", "chosen"),
    [
        ("1.2.2", ["0.23-1", "1.0-1", "1.2-1", "1.4-2-py312"], "1.2-1"),
        ("1.4.2", ["1.2-1", "1.4-2-py312"], "1.4-2-py312"),
        ("1.7.6", ["1.7-1", "1.7-10", "1.7-2"], "1.7-10"),
        ("2.5.1", ["2.5", "2.5.1", "2.6"], "2.5.1"),
        ("2.5.0", ["2.4", "2.5", "2.6"], "2.5"),
        ("1.5.2", ["1.2-1", "1.4-2-py312"], None),
        ("1.20.0", ["1.2-1"], None),
    ],
)
def test_the_container_version_has_the_models_major_minor(
    version: str, available: list[str], chosen: str | None
) -> None:
    assert matching_version(version, available) == chosen


class FakeImageUris:
    """The two functions of the SDK's `image_uris` module that `SdkFrameworkImages` uses."""

    def __init__(self, config: dict[str, Any], python_tags: set[str | None]) -> None:
        self.config = config
        self.python_tags = python_tags
        self.calls: list[dict[str, Any]] = []

    def config_for_framework(self, framework: str) -> dict[str, Any]:
        return self.config

    def retrieve(self, framework: str, region: str, **kwargs: Any) -> str:
        self.calls.append({"framework": framework, "region": region, **kwargs})
        if kwargs["py_version"] not in self.python_tags:
            raise ValueError(f"Unsupported Python version: {kwargs['py_version']}")
        return (
            f"683313688378.dkr.ecr.{region}.amazonaws.com/sagemaker-scikit-learn:{kwargs['version']}-cpu-py3"
        )


def test_the_sdk_adapter_retrieves_the_matching_version_trying_python_tags_in_turn() -> None:
    uris = FakeImageUris({"inference": {"versions": {"1.0-1": {}, "1.2-1": {}}}}, python_tags={"py3"})
    images = SdkFrameworkImages(uris, "eu-west-1")  # type: ignore[arg-type]

    uri = images.uri("sklearn", "1.2.2", "3.10.12", "ml.m5.large")

    assert uri == "683313688378.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    assert [call["py_version"] for call in uris.calls] == ["py310", "py3"]
    assert uris.calls[0] == {
        "framework": "sklearn",
        "region": "eu-west-1",
        "version": "1.2-1",
        "py_version": "py310",
        "instance_type": "ml.m5.large",
        "image_scope": "inference",
    }


def test_the_sdk_adapter_answers_none_when_nothing_matches() -> None:
    no_version = FakeImageUris({"versions": {"1.0-1": {}}, "version_aliases": {"1.1": "1.1-1"}}, {"py3"})
    no_python = FakeImageUris({"inference": {"versions": {"1.2-1": {}}}}, python_tags=set())

    assert SdkFrameworkImages(no_version, "us-east-1").uri("sklearn", "1.2.2", None, None) is None  # type: ignore[arg-type]
    assert SdkFrameworkImages(no_python, "us-east-1").uri("sklearn", "1.2.2", None, None) is None  # type: ignore[arg-type]
    assert [call["py_version"] for call in no_python.calls] == ["py3", None]


@pytest.mark.skipif(
    importlib.util.find_spec("sagemaker") is not None, reason="the sagemaker SDK is installed"
)
def test_without_the_sdk_there_is_no_catalogue() -> None:
    assert load_sdk_framework_images("us-east-1") is None


@pytest.mark.skipif(
    importlib.util.find_spec("sagemaker") is None, reason="needs the `images` extra (sagemaker SDK)"
)
def test_the_real_sdk_names_a_scikit_learn_inference_image() -> None:
    images = load_sdk_framework_images("us-east-1")

    assert images is not None
    uri = images.uri("sklearn", "1.2.2", "3.10.12", "ml.m5.large")
    assert uri is not None and "sagemaker-scikit-learn:1.2-1" in uri


# --- the pyfunc environment ------------------------------------------------------------------------------


def test_the_pyfunc_environment_is_mlflows_own_without_the_local_proxies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("http_proxy", "http://proxy.internal:3128")
    monkeypatch.setenv("no_proxy", "localhost")

    assert pyfunc_environment() == PYFUNC_ENV


# --- inference metadata ------------------------------------------------------------------------------------


def test_the_mime_types_are_those_mlflows_scoring_server_knows() -> None:
    assert {JSON, CSV, PARQUET} <= set(mlflow.pyfunc.scoring_server.CONTENT_TYPES)
    assert RESPONSE_TYPES == (JSON,)


@pytest.mark.parametrize(
    ("inputs", "types"),
    [
        (None, (JSON, CSV, PARQUET)),
        ([{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 3]}}], (JSON,)),
        ([{"type": "double", "name": "a"}, {"type": "string", "name": "b"}], (JSON, CSV, PARQUET)),
        (
            [{"type": "double", "name": "a"}, {"type": "array", "items": {"type": "long"}, "name": "b"}],
            (JSON, PARQUET),
        ),
        ([{"type": "object", "properties": {}, "name": "o"}], (JSON, PARQUET)),
    ],
)
def test_content_types_follow_the_input_signature(
    inputs: list[dict[str, Any]] | None, types: tuple[str, ...]
) -> None:
    assert content_types(inputs) == types


@pytest.mark.parametrize(
    ("flavors", "task_domain"),
    [
        ({"python_function": {}, "sklearn": {}}, (None, "MACHINE_LEARNING")),
        ({"python_function": {}, "xgboost": {}}, (None, "MACHINE_LEARNING")),
        ({"transformers": {"task": "text-generation"}}, ("TEXT_GENERATION", "NATURAL_LANGUAGE_PROCESSING")),
        ({"transformers": {"task": "fill-mask"}}, ("FILL_MASK", "NATURAL_LANGUAGE_PROCESSING")),
        ({"transformers": {"task": "image-classification"}}, ("IMAGE_CLASSIFICATION", "COMPUTER_VISION")),
        ({"transformers": {"task": "summarization"}}, (None, "NATURAL_LANGUAGE_PROCESSING")),
        ({"sentence_transformers": {}}, (None, "NATURAL_LANGUAGE_PROCESSING")),
        ({"python_function": {}}, (None, None)),
        ({"pytorch": {}}, (None, None)),
    ],
)
def test_task_and_domain_come_from_the_flavor_when_it_says(
    flavors: dict[str, dict[str, Any]], task_domain: tuple[str | None, str | None]
) -> None:
    assert task_and_domain(flavors) == task_domain
