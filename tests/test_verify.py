"""The verifier's checks with hand-written fakes: every outcome of every check, and the report."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from mlflow_sagemaker_registry.artifacts import artifact_key, package_model, payload_key, sha256_of
from mlflow_sagemaker_registry.domain import ApprovalStatus, ObservedPackage, SourceModel, SourceVersion
from mlflow_sagemaker_registry.engine import StatusRow
from mlflow_sagemaker_registry.errors import GatewayError, SourceError
from mlflow_sagemaker_registry.mapping.metadata import KEY_DOCUMENT
from mlflow_sagemaker_registry.verify import (
    FAILED,
    OK,
    SKIPPED,
    Check,
    PackageResult,
    Verifier,
    VerifyReport,
    _difference,
)

PREFIX = "s3://bucket/mlsync"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/1"


def document(body: bytes) -> tuple[str, bytes]:
    return f"{PREFIX}/documents/{hashlib.sha256(body).hexdigest()}.json", body


@dataclass
class FakeStorage:
    objects: dict[str, bytes] = field(default_factory=dict)

    def read(self, s3_uri: str) -> bytes:
        if s3_uri not in self.objects:
            raise GatewayError(f"GetObject {s3_uri} failed: The specified key does not exist. (NoSuchKey)")
        return self.objects[s3_uri]

    def list_prefix(self, s3_uri: str) -> list[str]:
        return sorted(uri[len(s3_uri) :] for uri in self.objects if uri.startswith(s3_uri))

    def download_file(self, s3_uri: str, path: Path) -> None:
        path.write_bytes(self.read(s3_uri))


@dataclass
class FakeSource:
    model_dir: Path

    def model_names(self) -> list[str]:
        return ["churn"]

    def read_model(self, name: str) -> SourceModel:
        return SourceModel(name, versions=(SourceVersion(name, "1"),))

    def artifact_location(self, name: str, version: str) -> str:
        return "models:/m-1"

    def download_model(self, artifact_uri: str, dest: Path) -> Path:
        return self.model_dir


@dataclass
class FakeRegistry:
    package: ObservedPackage

    def describe_package(self, arn: str) -> ObservedPackage:
        return self.package


@dataclass
class FakeEngine:
    source: FakeSource
    registry: FakeRegistry
    storage: FakeStorage
    mirrored: bool = True

    def status(self, name: str) -> list[StatusRow]:
        row = StatusRow("1", ARN if self.mirrored else None, None, None, "None", (), None, None, True)
        return [row]


@dataclass
class FakeRunner:
    """Predicts by reading `prediction.json` from the model directory."""

    example: Any = "example"

    def input_example(self, model_dir: Path) -> Any:
        return self.example

    def predict(self, model_dir: Path, example: Any) -> Any:
        prediction = model_dir / "prediction.json"
        if not prediction.is_file():
            raise SourceError(f"the model in {model_dir.name} failed to load or predict: no prediction.json")
        return json.loads(prediction.read_text())


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mlflow-model"
    root.mkdir()
    (root / "MLmodel").write_text("flavors: {python_function: {}}\nmlflow_version: 3.17.2\n")
    (root / "prediction.json").write_text("[0.25, 1]")
    return root


@pytest.fixture
def engine(model_dir: Path, tmp_path: Path) -> FakeEngine:
    """A package whose documents, tarball and payload are all intact."""
    run_uri, run_body = document(b'{"run": 1}')
    quality_uri, quality_body = document(b'{"binary_classification_metrics": {}}')
    digest = package_model(model_dir, tmp_path / "model.tar.gz")
    tarball = artifact_key(PREFIX, digest)
    payload_body = b"payload archive"
    payload = payload_key(PREFIX, sha256_of(payload_body))
    storage = FakeStorage(
        {
            run_uri: run_body,
            quality_uri: quality_body,
            tarball: (tmp_path / "model.tar.gz").read_bytes(),
            payload: payload_body,
        }
    )
    package = ObservedPackage(
        arn=ARN,
        group_name="churn",
        package_version=1,
        approval=ApprovalStatus.APPROVED,
        lifecycle=None,
        customer_metadata={KEY_DOCUMENT: run_uri},
        quality_statistics_digest=sha256_of(quality_body),
        quality_statistics_uri=quality_uri,
        model_data_url=tarball,
        sample_payload_url=payload,
    )
    return FakeEngine(FakeSource(model_dir), FakeRegistry(package), storage)


def verifier(engine: FakeEngine, runner: FakeRunner | None = None) -> Verifier:
    """A verifier over the fakes (which implement only what it calls of each port)."""
    return Verifier(engine, runner or FakeRunner())  # type: ignore[arg-type]


def checks(report: VerifyReport) -> dict[str, tuple[str, str]]:
    (result,) = report.results
    return {check.name: (check.status, check.detail) for check in result.checks}


def test_an_intact_package_passes_every_check(engine: FakeEngine) -> None:
    report = verifier(engine).verify()

    assert report.ok
    assert {name: status for name, (status, _) in checks(report).items()} == {
        "run document": OK,
        "model quality": OK,
        "model data": OK,
        "sample payload": OK,
        "prediction": OK,
    }
    assert (
        "matches the package's ContentDigest and its content-addressed key"
        in checks(report)["model quality"][1]
    )


def test_a_changed_run_document_fails_its_check_only(engine: FakeEngine) -> None:
    run_uri = engine.registry.package.customer_metadata[KEY_DOCUMENT]
    engine.storage.objects[run_uri] = b'{"run": 2}'

    found = checks(verifier(engine).verify())

    assert found["run document"][0] == FAILED
    assert "but its content-addressed key says sha256:" in found["run document"][1]
    assert [name for name, (status, _) in found.items() if status == FAILED] == ["run document"]


def test_a_changed_payload_fails(engine: FakeEngine) -> None:
    engine.storage.objects[str(engine.registry.package.sample_payload_url)] = b"other bytes"

    found = checks(verifier(engine).verify())

    assert found["sample payload"][0] == FAILED


def test_a_missing_document_fails_with_the_s3_error(engine: FakeEngine) -> None:
    del engine.storage.objects[str(engine.registry.package.quality_statistics_uri)]

    found = checks(verifier(engine).verify())

    assert found["model quality"][0] == FAILED
    assert "NoSuchKey" in found["model quality"][1]


def test_a_tarball_that_does_not_unpack_fails_model_data_and_prediction(engine: FakeEngine) -> None:
    engine.storage.objects[str(engine.registry.package.model_data_url)] = b"not a tarball"

    found = checks(verifier(engine).verify())

    assert found["model data"][0] == FAILED
    assert "changed after mlsync wrote it; cannot unpack model.tar.gz" in found["model data"][1]
    assert found["prediction"][0] == FAILED
    assert found["prediction"][1].startswith("the package's model data holds no MLmodel file")


def test_different_predictions_fail_with_the_first_difference(engine: FakeEngine, model_dir: Path) -> None:
    (model_dir / "prediction.json").write_text("[0.5, 1]")

    found = checks(verifier(engine).verify())

    assert found["prediction"] == (
        FAILED,
        "the package predicts differently from MLflow: predictions[0]: MLflow 0.5, package 0.25",
    )


def test_a_model_that_does_not_predict_fails_with_its_reason(engine: FakeEngine, model_dir: Path) -> None:
    (model_dir / "prediction.json").unlink()

    found = checks(verifier(engine).verify())

    assert found["prediction"][0] == FAILED and "no prediction.json" in found["prediction"][1]


def test_without_an_input_example_or_metrics_or_payload_those_checks_are_skipped(engine: FakeEngine) -> None:
    engine.registry.package = replace(
        engine.registry.package, quality_statistics_uri=None, sample_payload_url=None
    )

    report = verifier(engine, FakeRunner(example=None)).verify()

    assert report.ok
    found = checks(report)
    assert found["prediction"][0] == found["model quality"][0] == found["sample payload"][0] == SKIPPED
    assert "log the model with input_example=" in found["prediction"][1]


def test_a_package_not_made_by_mlsync_fails_the_run_document_check(engine: FakeEngine) -> None:
    engine.registry.package = replace(engine.registry.package, customer_metadata={}, model_data_url=None)

    found = checks(verifier(engine).verify())

    assert found["run document"] == (
        FAILED,
        f"the package has no {KEY_DOCUMENT} metadata: it was not created by mlsync",
    )
    assert found["model data"] == (FAILED, "the package's container has no model data")


def test_an_uncompressed_prefix_is_downloaded_file_by_file(engine: FakeEngine, model_dir: Path) -> None:
    prefix = "s3://mlflow/experiments/1/models/m-1/artifacts/"
    for path in model_dir.iterdir():
        engine.storage.objects[prefix + path.name] = path.read_bytes()
    engine.registry.package = replace(
        engine.registry.package, model_data_url=prefix, model_data_compressed=False
    )

    found = checks(verifier(engine).verify())

    assert found["model data"] == (
        OK,
        f"2 files under {prefix} (uncompressed, served where MLflow keeps them)",
    )
    assert found["prediction"][0] == OK


def test_a_version_without_a_package_is_skipped_unless_asked_for(engine: FakeEngine) -> None:
    engine.mirrored = False
    checker = verifier(engine)

    listed, asked = checker.verify(["churn"]), checker.verify(["churn"], "1")

    assert listed.ok and checks(listed)["package"][0] == SKIPPED
    assert not asked.ok and checks(asked)["package"][0] == FAILED


def test_asking_for_a_version_that_does_not_exist_fails(engine: FakeEngine) -> None:
    report = verifier(engine).verify(["churn"], "7")

    assert checks(report) == {"package": (FAILED, "model 'churn' has no READY version 7")}


@pytest.mark.parametrize(
    ("expected", "actual", "difference"),
    [
        ([1, 2.0, "a"], [1, 2.0, "a"], None),
        ([0.1 + 0.2], [0.3], None),
        ({"a": [1.0]}, {"a": [1.0 + 1e-12]}, None),
        ([1.0], [1.5], "predictions[0]: MLflow 1.0, package 1.5"),
        ([1.0], ["1.0"], "predictions[0]: MLflow 1.0, package '1.0'"),
        ([[1], [2]], [[1], [3]], "predictions[1][0]: MLflow 2, package 3"),
        ([1, 2], [1], "predictions: MLflow gives 2 items, the package 1"),
        ({"a": 1}, {"b": 1}, "predictions: MLflow has keys ['a'], the package ['b']"),
        ({"a": {"b": 1}}, {"a": {"b": 2}}, "predictions['a']['b']: MLflow 1, package 2"),
        ("x", ["x"], "predictions: MLflow 'x', package ['x']"),
    ],
)
def test_difference_names_the_first_place_predictions_differ(
    expected: Any, actual: Any, difference: str | None
) -> None:
    assert _difference(expected, actual, "predictions") == difference


def test_the_report_in_text_and_json() -> None:
    passed = PackageResult("churn", "1", ARN, (Check("run document", OK, "sha256:ab… matches"),))
    failed = PackageResult("churn", "2", None, (Check("package", FAILED, "not mirrored"),))
    report = VerifyReport((passed, failed))

    assert not report.ok
    assert report.format_text().splitlines() == [
        f"churn v1: {ARN}",
        "  ok      run document    sha256:ab… matches",
        "churn v2: no package",
        "  failed  package         not mirrored",
        "Verified 2 packages: 1 passed, 1 failed.",
    ]
    assert report.to_dict()["packages"][1] == {
        "model": "churn",
        "version": "2",
        "package": None,
        "ok": False,
        "checks": [{"name": "package", "status": "failed", "detail": "not mirrored"}],
    }
