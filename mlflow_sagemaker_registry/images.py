"""Which image serves a package, with the environment that image expects.

In order:

1. the image configured for the model (`[images]`) or for every model (`image`): an MLflow pyfunc
   serving image of the user's choosing, so it gets the pyfunc environment;
2. a SageMaker framework image (scikit-learn, XGBoost, PyTorch) when the optional `sagemaker` SDK is
   installed (`pip install mlflow-sagemaker-registry[images]`), the SDK knows an image for the
   library version the model was saved with, and the model directory holds what that image runs: an
   entry-point script `code/inference.py` (with `model_fn`, `predict_fn`, ...), as those containers'
   script mode requires. They cannot load an MLflow model directory by themselves;
3. otherwise MLflow's pyfunc image (`mlflow-pyfunc:<version>` in the account's ECR, pushed by
   `mlflow sagemaker build-and-push-container`), which serves any MLflow model.

Before 2 and 3, an opt-in: with `xgboost_container = builtin`, an MLflow xgboost model is served by
SageMaker's built-in XGBoost image in its algorithm mode (no script). That container loads every
regular file at the root of `/opt/ml/model` as a model (pickle first, then `Booster.load_model`) and
reads CSV or LIBSVM requests, so such a package's archive holds one file, `xgboost-model`: the booster
the flavor saved (staging.py packs it; `mlsync verify` checks it by the same rule).

The SDK is about 1 GB and optional, so it is reached through `FrameworkImages`, a seam tests can fill
without it; `SdkFrameworkImages` is the implementation over the SDK's offline image catalogue.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

from .artifacts import MLmodel
from .config import Settings
from .domain import Container
from .errors import MappingError

log = logging.getLogger(__name__)

ENTRY_POINT = "code/inference.py"
XGBOOST_MODEL_FILE = "xgboost-model"
"""The one file of a built-in XGBoost package's archive (the name SageMaker's XGBoost training writes)."""
BUILTIN_CONTENT_TYPES = ("text/csv", "text/libsvm")
BUILTIN_RESPONSE_TYPES = ("text/csv", "application/json")
# How the SageMaker framework containers find a script shipped inside model.tar.gz (their script mode).
SCRIPT_ENVIRONMENT: Mapping[str, str] = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
}
_FRAMEWORK_VERSION = re.compile(r"[0-9]\.[A-Za-z0-9.-]+")  # ModelPackageFrameworkVersion, 3-10 chars


@dataclass(frozen=True)
class Framework:
    """A SageMaker framework image family and where an MLmodel file records its library version."""

    flavor: str
    sdk_name: str
    version_key: str
    label: str


# `label` is the container's `Framework`, in the words Inference Recommender knows.
XGBOOST_FLAVOR = "xgboost"
_XGBOOST = Framework(XGBOOST_FLAVOR, "xgboost", "xgb_version", "XGBOOST")
FRAMEWORKS = (
    Framework("sklearn", "sklearn", "sklearn_version", "SAGEMAKER-SCIKIT-LEARN"),
    _XGBOOST,
    Framework("pytorch", "pytorch", "pytorch_version", "PYTORCH"),
)


class FrameworkImages(Protocol):
    """SageMaker's catalogue of prebuilt framework serving images."""

    def uri(
        self, framework: str, version: str, python_version: str | None, instance_type: str | None
    ) -> str | None:
        """The inference image of `framework` that serves models saved with library `version`.

        None when no image of the same major.minor version exists (a model pickled by scikit-learn
        1.5 does not load under 1.2).
        """
        ...


@dataclass(frozen=True)
class ImageChoice:
    """Everything `choose_container` needs besides the model: settings and the two image sources."""

    settings: Settings
    pyfunc_environment: Mapping[str, str]
    default_image: Callable[[str], str]
    framework_images: FrameworkImages | None = None


def choose_container(
    choice: ImageChoice,
    model_name: str,
    version: str,
    mlmodel: MLmodel,
    files: Iterable[str],
    model_data: tuple[str, bool],
) -> Container:
    """The container of one package (see the module docstring for the order).

    Args:
        model_name, version: the MLflow version, for messages.
        mlmodel: what its MLmodel file says.
        files: the paths in the model directory, relative and with `/`.
        model_data: (the model data's S3 URI, whether it is a `model.tar.gz`).

    Raises:
        MappingError: no image is configured and the MLmodel file does not name the MLflow version
            that saved it, so the pyfunc image's tag is unknown.
    """
    url, compressed = model_data
    configured = choice.settings.image_for(model_name)
    if configured is not None:
        return Container(configured, url, choice.pyfunc_environment, compressed=compressed)
    if serves_builtin_xgboost(choice.settings, model_name, mlmodel):
        return _builtin_xgboost_container(choice, model_name, version, mlmodel, url)
    framework = _framework_container(choice, mlmodel, frozenset(files), model_data)
    if framework is not None:
        return framework
    if mlmodel.mlflow_version is None:
        raise MappingError(
            model_name,
            version,
            "its MLmodel file does not say which MLflow version saved it, so the serving image "
            "mlflow-pyfunc:<version> cannot be chosen",
            "set `image` (or [images] for this model) in mlsync.toml",
        )
    # No `Framework`: the pyfunc image is none of the framework containers SageMaker knows by name.
    image = choice.default_image(mlmodel.mlflow_version)
    return Container(image, url, choice.pyfunc_environment, compressed=compressed)


def serves_builtin_xgboost(settings: Settings, model_name: str, mlmodel: MLmodel) -> bool:
    """Whether SageMaker's built-in XGBoost image serves this model: opted in, no image configured for
    the model, and an MLflow xgboost model."""
    return (
        settings.xgboost_container == "builtin"
        and settings.image_for(model_name) is None
        and XGBOOST_FLAVOR in mlmodel.flavors
    )


def xgboost_model_file(model_name: str, version: str, mlmodel: MLmodel) -> str:
    """The booster file the xgboost flavor saved (`model.ubj`), relative to the model directory.

    Raises:
        MappingError: the MLmodel file's xgboost flavor names no model file.
    """
    data = mlmodel.flavors[XGBOOST_FLAVOR].get("data")
    if not data:
        raise MappingError(
            model_name,
            version,
            "its MLmodel file's xgboost flavor names no model file (`data`)",
            "log the model with mlflow.xgboost.log_model, or set xgboost_container = pyfunc",
        )
    return str(data)


def _builtin_xgboost_container(
    choice: ImageChoice, model_name: str, version: str, mlmodel: MLmodel, url: str
) -> Container:
    """The built-in XGBoost image's container: `xgboost_image`, else the SDK's image for the version of
    XGBoost that saved the model. No environment: algorithm mode needs no script."""
    image = choice.settings.xgboost_image
    library_version = str(mlmodel.flavors[XGBOOST_FLAVOR].get(_XGBOOST.version_key, ""))
    if image is None and choice.framework_images is not None and library_version:
        instance_type = next(iter(choice.settings.realtime_instance_types), None)
        image = choice.framework_images.uri(
            _XGBOOST.sdk_name, library_version, mlmodel.python_version, instance_type
        )
    if image is None:
        raise MappingError(
            model_name,
            version,
            f"xgboost_container = builtin, but no SageMaker XGBoost image is known for XGBoost "
            f"{library_version or '(version not recorded)'}",
            "set xgboost_image to the built-in image's URI (docs/deployment.md), install "
            "mlflow-sagemaker-registry[images], or set xgboost_container = pyfunc",
        )
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    return Container(
        image,
        url,
        {},
        framework=_XGBOOST.label,
        framework_version=_framework_version(tag),
        compressed=True,
    )


def _framework_container(
    choice: ImageChoice, mlmodel: MLmodel, files: frozenset[str], model_data: tuple[str, bool]
) -> Container | None:
    """A framework image's container when the SDK, the library version and the layout all allow one."""
    if choice.framework_images is None or ENTRY_POINT not in files:
        return None
    instance_type = next(iter(choice.settings.realtime_instance_types), None)
    for framework in FRAMEWORKS:
        library_version = mlmodel.flavors.get(framework.flavor, {}).get(framework.version_key)
        if library_version is None:
            continue
        image = choice.framework_images.uri(
            framework.sdk_name, str(library_version), mlmodel.python_version, instance_type
        )
        if image is None:
            log.info(
                "no SageMaker %s image for version %s: using the pyfunc image",
                framework.sdk_name,
                library_version,
            )
            continue
        return Container(
            image,
            model_data[0],
            SCRIPT_ENVIRONMENT,
            framework=framework.label,
            framework_version=_framework_version(str(library_version)),
            compressed=model_data[1],
        )
    return None


def _framework_version(version: str) -> str | None:
    """A library version as `FrameworkVersion` accepts it (no `+local` part, 3-10 characters), or None."""
    public = version.partition("+")[0]
    return public if 3 <= len(public) <= 10 and _FRAMEWORK_VERSION.fullmatch(public) else None


class SdkFrameworkImages:
    """`FrameworkImages` over the SageMaker Python SDK's `image_uris` module (offline: JSON it ships).

    Args:
        image_uris: `sagemaker.core.image_uris` (SDK v3) or `sagemaker.image_uris` (v2); tests pass a
            stand-in with the same two functions.
        region: the AWS region whose image registry to name.
    """

    def __init__(self, image_uris: ModuleType, region: str) -> None:
        self._image_uris = image_uris
        self._region = region

    def uri(
        self, framework: str, version: str, python_version: str | None, instance_type: str | None
    ) -> str | None:
        """The SDK's image for the newest container version with the model's major.minor version."""
        scope = self._image_uris.config_for_framework(framework)
        scope = scope.get("inference", scope)
        container_version = matching_version(
            version, [*scope.get("versions", {}), *scope.get("version_aliases", {})]
        )
        if container_version is None:
            return None
        for py_version in _py_versions(python_version):
            try:
                uri: str = self._image_uris.retrieve(
                    framework,
                    self._region,
                    version=container_version,
                    py_version=py_version,
                    instance_type=instance_type,
                    image_scope="inference",
                )
            except ValueError:  # the SDK's answer to a combination it has no image for
                continue
            return uri
        return None


def matching_version(version: str, available: Iterable[str]) -> str | None:
    """The container version that serves a library `version`: that exact version, else the newest of
    the same major.minor (`1.2-1` for scikit-learn 1.2.2), else None."""
    candidates = list(available)
    if version in candidates:
        return version
    major_minor = ".".join(version.split(".")[:2])
    same = [c for c in candidates if c == major_minor or c.startswith((f"{major_minor}.", f"{major_minor}-"))]
    return max(same, key=_natural_key) if same else None


def _natural_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Orders `1.4-10` after `1.4-2`; a text part (`py312`) sorts after any number in its place."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.-]", version))


def _py_versions(python_version: str | None) -> list[str | None]:
    """The SDK's Python tags to try: the model's own (`py311`), the generic `py3`, and none at all."""
    tags: list[str | None] = []
    if python_version:
        tags.append("py" + "".join(python_version.split(".")[:2]))
    return [*tags, "py3", None]


def load_sdk_framework_images(region: str) -> FrameworkImages | None:
    """The SDK's image catalogue when the optional `sagemaker` package is installed, else None."""
    for module in ("sagemaker.core.image_uris", "sagemaker.image_uris"):
        try:
            return SdkFrameworkImages(importlib.import_module(module), region)
        except ImportError:
            continue
    return None
