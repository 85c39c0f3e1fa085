"""`mlsync verify`: prove that each mirrored package is intact and serves what its MLflow version serves.

For every version that has a package, these checks run, each independent of the others:

    run document    its sha256 is the digest its content-addressed key names
    model quality   its sha256 is the package's `ContentDigest` (and its key's digest)
    model data      `model.tar.gz`: its sha256 is the digest its key names, and it unpacks;
                    an uncompressed prefix (artifact_mode = reference): its files download
    sample payload  its sha256 is the digest its key names
    prediction      the package's model, loaded with mlflow.pyfunc, predicts on the version's input
                    example what the MLflow version's own model predicts; a package of SageMaker's
                    built-in XGBoost image is loaded by that image's rule instead (every file at the
                    archive's root is a booster; it must be `xgboost-model` alone) and predicts on its
                    CSV sample payload what the MLflow version's booster predicts

A document or archive changed after mlsync wrote it fails its digest check; a model that no longer
loads or predicts differently fails the prediction. A check that cannot run for a reason that is not a
fault (no input example, no quality metrics) is skipped and says why. Loading and predicting go
through `Runner` (mlflow.pyfunc in `sources/mlflow_serving.py`), so this module imports no mlflow.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from . import artifacts
from .domain import ObservedPackage, SourceVersion
from .engine import StatusRow
from .errors import MlsyncError
from .images import XGBOOST_MODEL_FILE, xgboost_model_file
from .mapping.metadata import KEY_DOCUMENT
from .ports import Registry, Source, Storage

OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"

# Predictions of the same model on the same input may differ in the last bits (threaded BLAS).
_REL_TOL = 1e-9
_ABS_TOL = 1e-12


class Mirror(Protocol):
    """What the verifier reads through; an `Engine` is one."""

    @property
    def source(self) -> Source: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def storage(self) -> Storage: ...

    def status(self, name: str) -> list[StatusRow]:
        """Each version of one model beside the package that mirrors it."""
        ...


class Runner(Protocol):
    """Loads MLflow model directories and predicts with them."""

    def input_example(self, model_dir: Path) -> Any | None:
        """The input example saved with the model, or None when there is none."""
        ...

    def predict(self, model_dir: Path, example: Any) -> Any:
        """The model's predictions on `example`, as the JSON the scoring server would answer."""
        ...

    def predict_booster(self, model_file: Path, rows: str) -> Any:
        """An XGBoost booster file's predictions on CSV `rows`, as the built-in XGBoost image loads it."""
        ...


@dataclass(frozen=True)
class Check:
    """One check of one package: `ok`, `failed` or `skipped`, and what it found."""

    name: str
    status: str
    detail: str


@dataclass(frozen=True)
class PackageResult:
    """The checks of one MLflow version's package (`package_arn` None when it has none)."""

    model_name: str
    version: str
    package_arn: str | None
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.status != FAILED for check in self.checks)


@dataclass(frozen=True)
class VerifyReport:
    """Every package verified, in model and version order."""

    results: tuple[PackageResult, ...]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (what `--output json` prints)."""
        return {
            "ok": self.ok,
            "packages": [
                {
                    "model": result.model_name,
                    "version": result.version,
                    "package": result.package_arn,
                    "ok": result.ok,
                    "checks": [check.__dict__ for check in result.checks],
                }
                for result in self.results
            ],
        }

    def format_text(self) -> str:
        """One heading per package, one line per check, and a closing count."""
        lines = []
        for result in self.results:
            lines.append(f"{result.model_name} v{result.version}: {result.package_arn or 'no package'}")
            lines.extend(f"  {check.status:<8}{check.name:<16}{check.detail}" for check in result.checks)
        count, failed = len(self.results), sum(not result.ok for result in self.results)
        noun = "package" if count == 1 else "packages"
        lines.append(f"Verified {count} {noun}: {count - failed} passed, {failed} failed.")
        return "\n".join(lines)


class Verifier:
    """Runs the checks through an engine's source, registry and storage, and a `Runner`."""

    def __init__(self, engine: Mirror, runner: Runner) -> None:
        self._engine = engine
        self._runner = runner

    def verify(self, names: Sequence[str] | None = None, version: str | None = None) -> VerifyReport:
        """Verify the packages of `names` (every registered model when None), or only `version`.

        A version without a package is listed with a skipped check, unless it was asked for by
        `version`: then it fails, as there is nothing to deploy.
        """
        results: list[PackageResult] = []
        for name in names or self._engine.source.model_names():
            versions = {v.version: v for v in self._engine.source.read_model(name).versions}
            packages = {row.version: row.package for row in self._engine.status(name)}
            wanted = [version] if version is not None else list(versions)
            for number in wanted:
                found = versions.get(number), packages.get(number)
                results.append(self._verify_version(name, number, *found, asked=version is not None))
        return VerifyReport(tuple(results))

    def _verify_version(
        self, name: str, number: str, version: SourceVersion | None, arn: str | None, *, asked: bool
    ) -> PackageResult:
        if version is None:
            missing = Check("package", FAILED, f"model {name!r} has no READY version {number}")
            return PackageResult(name, number, None, (missing,))
        if arn is None:
            reason = "not mirrored: run `mlsync push`, or see `mlsync status` for why it cannot be"
            return PackageResult(
                name, number, None, (Check("package", FAILED if asked else SKIPPED, reason),)
            )
        package = self._engine.registry.describe_package(arn)
        with tempfile.TemporaryDirectory(prefix="mlsync-verify-") as tmp:
            work = Path(tmp)
            served = work / "package"
            checks = (
                _guarded("run document", lambda: self._run_document(package)),
                _guarded("model quality", lambda: self._quality(package)),
                _guarded("model data", lambda: self._model_data(package, work, served)),
                _guarded("sample payload", lambda: self._payload(package, work)),
                _guarded("prediction", lambda: self._prediction(version, package, served, work)),
            )
        return PackageResult(name, number, arn, checks)

    def _run_document(self, package: ObservedPackage) -> tuple[str, str]:
        uri = package.customer_metadata.get(KEY_DOCUMENT)
        if uri is None:
            return FAILED, f"the package has no {KEY_DOCUMENT} metadata: it was not created by mlsync"
        return _digest_check(uri, artifacts.sha256_of(self._engine.storage.read(uri)), None)

    def _quality(self, package: ObservedPackage) -> tuple[str, str]:
        if package.quality_statistics_uri is None:
            return SKIPPED, "the package has no model-quality statistics (no recognised metric in the run)"
        actual = artifacts.sha256_of(self._engine.storage.read(package.quality_statistics_uri))
        return _digest_check(package.quality_statistics_uri, actual, package.quality_statistics_digest)

    def _model_data(self, package: ObservedPackage, work: Path, served: Path) -> tuple[str, str]:
        url = package.model_data_url
        if url is None:
            return FAILED, "the package's container has no model data"
        storage = self._engine.storage
        if not package.model_data_compressed:
            files = storage.list_prefix(url)
            for name in files:
                (served / name).parent.mkdir(parents=True, exist_ok=True)
                storage.download_file(url + name, served / name)
            return OK, f"{len(files)} files under {url} (uncompressed, served where MLflow keeps them)"
        tarball = work / "model.tar.gz"
        storage.download_file(url, tarball)
        status, detail = _digest_check(url, artifacts.file_digest(tarball), None)
        try:
            artifacts.unpack(tarball, served)
        except MlsyncError as exc:
            return FAILED, f"{detail}; {exc}"
        return status, detail

    def _payload(self, package: ObservedPackage, work: Path) -> tuple[str, str]:
        url = package.sample_payload_url
        if url is None:
            return (
                SKIPPED,
                "the package has no sample payload (the model was logged without an input example)",
            )
        self._engine.storage.download_file(url, work / "payload.tar.gz")
        return _digest_check(url, artifacts.file_digest(work / "payload.tar.gz"), None)

    def _prediction(
        self, version: SourceVersion, package: ObservedPackage, served: Path, work: Path
    ) -> tuple[str, str]:
        if not (served / "MLmodel").is_file():
            if served.is_dir() and [p.name for p in served.iterdir() if p.is_file()] == [XGBOOST_MODEL_FILE]:
                return self._builtin_prediction(version, package, served / XGBOOST_MODEL_FILE, work)
            return FAILED, (
                "the package's model data holds no MLmodel file, so it cannot be loaded, nor the layout "
                f"of SageMaker's built-in XGBoost image (one {XGBOOST_MODEL_FILE} file at its root)"
            )
        location = self._engine.source.artifact_location(version.model_name, version.version)
        original = self._engine.source.download_model(location, work / "mlflow")
        example = self._runner.input_example(original)
        if example is None:
            return SKIPPED, "the MLflow version has no input example: log the model with input_example=..."
        expected = self._runner.predict(original, example)
        actual = self._runner.predict(served, example)
        difference = _difference(expected, actual, "predictions")
        if difference is not None:
            return FAILED, f"the package predicts differently from MLflow: {difference}"
        return OK, "the package predicts on the input example exactly what the MLflow version predicts"

    def _builtin_prediction(
        self, version: SourceVersion, package: ObservedPackage, booster: Path, work: Path
    ) -> tuple[str, str]:
        """The package's booster, loaded as the built-in XGBoost image loads it, against the MLflow
        version's own booster file, on the package's CSV sample payload."""
        if package.sample_payload_url is None:
            return SKIPPED, "the package has no CSV sample payload (the model's input example is no table)"
        archive = work / "payload.tar.gz"  # the sample-payload check's download, when it got that far
        if not archive.is_file():
            self._engine.storage.download_file(package.sample_payload_url, archive)
        artifacts.unpack(archive, work / "builtin-payload")
        (payload,) = (work / "builtin-payload").iterdir()
        rows = payload.read_text(encoding="utf-8")
        location = self._engine.source.artifact_location(version.model_name, version.version)
        original = self._engine.source.download_model(location, work / "mlflow")
        mlmodel = artifacts.read_mlmodel(original)
        expected_file = original / xgboost_model_file(version.model_name, version.version, mlmodel)
        expected = self._runner.predict_booster(expected_file, rows)
        difference = _difference(expected, self._runner.predict_booster(booster, rows), "predictions")
        if difference is not None:
            return FAILED, f"the package predicts differently from MLflow: {difference}"
        return OK, (
            f"{XGBOOST_MODEL_FILE} loads as the built-in XGBoost image loads it and predicts on the "
            "sample payload exactly what the MLflow version's booster predicts"
        )


def _guarded(name: str, check: Callable[[], tuple[str, str]]) -> Check:
    """Run one check; an mlsync error (S3, MLflow, a model that does not load) fails it, with its message."""
    try:
        status, detail = check()
    except MlsyncError as exc:
        return Check(name, FAILED, str(exc))
    return Check(name, status, detail)


def _digest_check(uri: str, actual: str, declared: str | None) -> tuple[str, str]:
    """Compare an object's digest with what its key promises and, if given, what the package declares."""
    promised = artifacts.key_digest(uri)
    sources = [(declared, "the package's ContentDigest"), (promised, "its content-addressed key")]
    for expected, who in sources:
        if expected is not None and expected != actual:
            return (
                FAILED,
                f"{uri} has {actual}, but {who} says {expected}: it was changed after mlsync wrote it",
            )
    agreeing = [who for expected, who in sources if expected is not None]
    if not agreeing:
        return OK, f"{uri} was read; its key names no digest to compare with"
    return OK, f"{actual[:19]}… matches {' and '.join(agreeing)}"


def _difference(expected: Any, actual: Any, where: str) -> str | None:
    """Where two JSON values first differ (floats within a relative 1e-9), or None when they agree."""
    if isinstance(expected, float) or isinstance(actual, float):
        same = (
            isinstance(expected, (int, float))
            and isinstance(actual, (int, float))
            and math.isclose(expected, actual, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)
        )
        return None if same else f"{where}: MLflow {expected!r}, package {actual!r}"
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{where}: MLflow gives {len(expected)} items, the package {len(actual)}"
        for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
            found = _difference(left, right, f"{where}[{index}]")
            if found is not None:
                return found
        return None
    if isinstance(expected, dict) and isinstance(actual, dict):
        if expected.keys() != actual.keys():
            return f"{where}: MLflow has keys {sorted(expected)}, the package {sorted(actual)}"
        for key in expected:
            found = _difference(expected[key], actual[key], f"{where}[{key!r}]")
            if found is not None:
                return found
        return None
    return None if expected == actual else f"{where}: MLflow {expected!r}, package {actual!r}"
