"""Put one MLflow version's model where SageMaker can serve it, and say how to serve it.

Two ways to stage the model data (`artifact_mode`):

- `copy` (default): download the model directory to a temporary directory, pack it as a deterministic
  `model.tar.gz` and upload it with boto3's managed multipart transfer to a content-addressed key, or
  skip the upload when that key exists. Every step streams through disk, so memory does not grow with
  the model (benchmarks/bench_artifacts.py measures it).
- `reference`: when MLflow already keeps the model in S3, point the package at that prefix,
  uncompressed (`ModelDataSource`, `S3Prefix`, `CompressionType: None`): nothing is downloaded but the
  MLmodel file and the input example, nothing is copied. Other artifact stores fall back to `copy`.

Either way the input example, when the model has one, becomes the package's sample payload, and the
MLmodel file decides the image (`images.py`) and the inference metadata (`inference.py`).

A model SageMaker's built-in XGBoost image serves (`xgboost_container = builtin`) is always copied, as
the archive that image loads: the flavor's booster file alone, as `xgboost-model` at the root, and its
sample payload as CSV rows.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import artifacts, inference
from .artifacts import MLmodel
from .config import Settings
from .domain import Document, Inference, PackageSpec
from .errors import MappingError
from .images import (
    BUILTIN_CONTENT_TYPES,
    BUILTIN_RESPONSE_TYPES,
    XGBOOST_MODEL_FILE,
    ImageChoice,
    choose_container,
    serves_builtin_xgboost,
    xgboost_model_file,
)
from .mapping.algorithm import Algorithm, algorithm_of
from .ports import Gateways

log = logging.getLogger(__name__)

# SageMaker refuses these as a file or directory name under an uncompressed S3Prefix (S3ModelDataSource).
_FORBIDDEN_NAMES = frozenset({"", ".", ".."})
_MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class Staged:
    """A staged model: how to serve it, its algorithm (from its MLmodel file), and how many objects
    staging uploaded (0 when all existed)."""

    inference: Inference
    uploaded: int
    algorithm: Algorithm


@dataclass(frozen=True)
class _ModelData:
    """Where the model data went, and what the model directory holds."""

    url: str
    compressed: bool
    mlmodel: MLmodel
    files: tuple[str, ...]
    example: Path | None
    uploaded: int
    builtin: bool = False
    """Packed for SageMaker's built-in XGBoost image (`images.serves_builtin_xgboost`)."""


class _Once:
    """Content-addressed writes of one apply, each made once: a second stager of the same bytes (two
    versions of one model file, one run's document) waits for the first instead of racing it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, threading.Lock] = {}
        self._done: set[str] = set()

    def write(self, key: str, write: Callable[[], bool]) -> bool:
        """`write()` unless `key` was written already in this apply; whether anything was uploaded."""
        with self._lock:
            key_lock = self._keys.setdefault(key, threading.Lock())
        with key_lock:
            if key in self._done:
                return False
            uploaded = write()
            self._done.add(key)
            return uploaded


class Stager:
    """Stages models for the executor; holds nothing between applies but its collaborators (one is made
    per apply, and remembers what that apply wrote)."""

    def __init__(self, settings: Settings, gateways: Gateways) -> None:
        self._settings = settings
        self._source = gateways.source
        self._registry = gateways.registry
        self._storage = gateways.storage
        self._framework_images = gateways.framework_images
        self._once = _Once()

    def put_document(self, document: Document) -> None:
        """Upload one content-addressed JSON document, once per apply."""
        self._once.write(document.s3_uri, lambda: self._put(document))

    def _put(self, document: Document) -> bool:
        self._storage.put_document(document)
        return True

    def _upload(self, path: Path, url: str) -> bool:
        return self._once.write(url, lambda: self._storage.upload_file(path, url))

    def stage(self, spec: PackageSpec) -> Staged:
        """Stage the model of `spec` and describe how SageMaker serves it.

        Raises:
            MappingError: the model cannot be served as it is (the message names the fix).
            SourceError, GatewayError: reading the model or writing S3 failed.
        """
        prefix = self._settings.require_s3_prefix()
        with tempfile.TemporaryDirectory(prefix="mlsync-") as tmp:
            # Asked here, not when planning: only versions being packaged need it (MLflow's own
            # resolution of a `models:/m-…` URI reads the global tracking URI, not this source's).
            location = self._source.artifact_location(spec.model_name, spec.version)
            if self._settings.artifact_mode == "reference" and location.startswith("s3://"):
                model = self._reference(spec, location, Path(tmp), prefix)
            else:
                model = self._copy(spec, location, Path(tmp), prefix)
            payload_url, payload_uploaded = self._payload(model.example, Path(tmp), prefix)
        choice = ImageChoice(
            self._settings,
            self._source.serving_environment(),
            self._registry.default_image,
            self._framework_images,
        )
        container = choose_container(
            choice, spec.model_name, spec.version, model.mlmodel, model.files, (model.url, model.compressed)
        )
        task, domain = inference.task_and_domain(model.mlmodel.flavors)
        served = Inference(
            container=container,
            content_types=BUILTIN_CONTENT_TYPES
            if model.builtin
            else inference.content_types(model.mlmodel.signature_inputs),
            response_types=BUILTIN_RESPONSE_TYPES if model.builtin else inference.RESPONSE_TYPES,
            realtime_instance_types=self._settings.realtime_instance_types,
            transform_instance_types=self._settings.transform_instance_types,
            sample_payload_url=payload_url,
            task=task,
            domain=domain,
        )
        return Staged(served, model.uploaded + payload_uploaded, algorithm_of(model.mlmodel.flavors))

    def _copy(self, spec: PackageSpec, location: str, work: Path, prefix: str) -> _ModelData:
        """Download, pack and upload (unless the content-addressed key exists) a `model.tar.gz`."""
        model_dir = self._source.download_model(location, work / "model")
        mlmodel = artifacts.read_mlmodel(model_dir)
        files = tuple(
            sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file())
        )
        example = model_dir / mlmodel.serving_example if mlmodel.serving_example in files else None
        builtin = serves_builtin_xgboost(self._settings, spec.model_name, mlmodel)
        packed = model_dir
        if builtin:
            packed, example = self._builtin_layout(spec, model_dir, mlmodel, example, work)
        tarball = work / "model.tar.gz"
        url = artifacts.artifact_key(prefix, artifacts.package_model(packed, tarball))
        uploaded = self._upload(tarball, url)
        return _ModelData(url, True, mlmodel, files, example, int(uploaded), builtin)

    def _builtin_layout(
        self, spec: PackageSpec, model_dir: Path, mlmodel: MLmodel, example: Path | None, work: Path
    ) -> tuple[Path, Path | None]:
        """The directory SageMaker's XGBoost image loads (the booster alone, as `xgboost-model`) and
        the input example as CSV rows (None when it is not a table of numbers).

        Raises:
            MappingError: the flavor names no booster file, or the file is not there.
        """
        booster = model_dir / xgboost_model_file(spec.model_name, spec.version, mlmodel)
        if not booster.is_file():
            raise MappingError(
                spec.model_name,
                spec.version,
                f"its xgboost flavor names {booster.name}, which the model directory does not hold",
                "log the model again with mlflow.xgboost.log_model, or set xgboost_container = pyfunc",
            )
        packed = work / "builtin"
        packed.mkdir()
        booster.rename(packed / XGBOOST_MODEL_FILE)  # the download is this stage's own; no copy
        rows = inference.csv_rows(json.loads(example.read_text(encoding="utf-8"))) if example else None
        if rows is None:
            return packed, None
        csv_example = work / "payload.csv"
        csv_example.write_text(rows, encoding="utf-8")
        return packed, csv_example

    def _reference(self, spec: PackageSpec, location: str, work: Path, prefix: str) -> _ModelData:
        """Point at the model where MLflow keeps it in S3; read only its MLmodel file and example.
        A model the built-in XGBoost image serves is copied instead (that image loads only its own
        layout)."""
        url = location.rstrip("/") + "/"
        files = tuple(self._storage.list_prefix(url))
        _check_prefix_layout(spec, url, files)
        mlmodel = artifacts.parse_mlmodel(
            self._storage.read(url + "MLmodel").decode("utf-8"), url + "MLmodel"
        )
        if serves_builtin_xgboost(self._settings, spec.model_name, mlmodel):
            return self._copy(spec, location, work, prefix)
        example = None
        if mlmodel.serving_example in files:
            example = work / PurePosixPath(mlmodel.serving_example).name
            example.write_bytes(self._storage.read(url + mlmodel.serving_example))
        return _ModelData(url, False, mlmodel, files, example, 0)

    def _payload(self, example: Path | None, work: Path, prefix: str) -> tuple[str | None, int]:
        """Upload the input example as a content-addressed sample payload; (its URI, objects uploaded)."""
        if example is None:
            return None, 0
        archive = work / "payload.tar.gz"
        url = artifacts.payload_key(prefix, artifacts.package_payload(example, archive))
        return url, int(self._upload(archive, url))


def _check_prefix_layout(spec: PackageSpec, url: str, files: tuple[str, ...]) -> None:
    """Refuse a prefix SageMaker could not deploy uncompressed, before a package points at it.

    Raises:
        MappingError: no MLmodel file at its root, a "folder" marker object (a key ending in `/`), or a
            path part SageMaker refuses (empty, `.`, `..`, longer than 255 bytes).
    """
    fix = "fix the artifacts in S3, or set artifact_mode = copy to package them as model.tar.gz"
    if "MLmodel" not in files:
        raise MappingError(spec.model_name, spec.version, f"there is no MLmodel file under {url}", fix)
    directories = {name.rsplit("/", depth)[0] for name in files for depth in range(1, name.count("/") + 1)}
    for name in files:
        parts = name.split("/")
        if name in directories or any(
            part in _FORBIDDEN_NAMES or len(part.encode()) > _MAX_NAME_BYTES for part in parts
        ):
            raise MappingError(
                spec.model_name,
                spec.version,
                f"{url}{name} cannot be deployed uncompressed: SageMaker refuses empty, '.', '..' and "
                "over-long (255 bytes) file names, a key that is also a folder of other keys, and the "
                "keys S3 consoles create for folders",
                fix,
            )
