"""Staging a version's model for SageMaker: copy or reference, sample payload, inference metadata.

The Stager runs against hand-written fakes of the ports; the request it leads to is then sent to the
in-process emulator (stricter than moto) and read back, and the S3 reads `verify` needs run on moto.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from mlflow_sagemaker_registry.artifacts import artifact_key, file_digest, package_model
from mlflow_sagemaker_registry.config import Settings, load_settings
from mlflow_sagemaker_registry.domain import (
    ApprovalStatus,
    Container,
    Document,
    GroupSpec,
    Inference,
    PackageSpec,
)
from mlflow_sagemaker_registry.emulator import emulated_aws
from mlflow_sagemaker_registry.errors import ConfigError, GatewayError, MappingError
from mlflow_sagemaker_registry.gateways.aws import aws_clients
from mlflow_sagemaker_registry.gateways.s3 import S3Storage
from mlflow_sagemaker_registry.gateways.sagemaker import SageMakerRegistry
from mlflow_sagemaker_registry.ports import Gateways
from mlflow_sagemaker_registry.staging import Stager

PREFIX = "s3://bucket/mlsync"
PYFUNC_ENV = {"MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function", "SERVING_ENVIRONMENT": "SageMaker"}
IN_S3 = "s3://mlflow-artifacts/1/models/m-1/artifacts"
MLMODEL = """\
flavors:
  python_function: {loader_module: mlflow.sklearn, python_version: 3.11.7}
  sklearn: {sklearn_version: 1.9.1}
mlflow_version: 3.17.2
saved_input_example_info: {artifact_path: input_example.json, serving_input_path: serving_input_example.json}
signature:
  inputs: '[{"type": "double", "name": "a"}, {"type": "long", "name": "b"}]'
"""


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mlflow" / "artifacts"
    root.mkdir(parents=True)
    (root / "MLmodel").write_text(MLMODEL)
    (root / "model.skops").write_bytes(b"weights" * 100)
    (root / "serving_input_example.json").write_text(
        '{"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2]]}}'
    )
    return root


@dataclass
class FakeSource:
    model_dir: Path
    downloads: list[str] = field(default_factory=list)
    location: str = "models:/m-1"
    """What `artifact_location` answers: where MLflow keeps every version's files."""

    def artifact_location(self, name: str, version: str) -> str:
        return self.location

    def download_model(self, artifact_uri: str, dest: Path) -> Path:
        self.downloads.append(artifact_uri)
        return Path(shutil.copytree(self.model_dir, dest))

    def serving_environment(self) -> dict[str, str]:
        return PYFUNC_ENV


class FakeRegistry:
    def default_image(self, mlflow_version: str) -> str:
        return f"123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:{mlflow_version}"


@dataclass
class FakeStorage:
    """S3 as a dict; `uploads` are the keys written by `upload_file`."""

    objects: dict[str, bytes] = field(default_factory=dict)
    uploads: list[str] = field(default_factory=list)

    def upload_file(self, path: Path, s3_uri: str) -> bool:
        if s3_uri in self.objects:
            return False
        self.objects[s3_uri] = path.read_bytes()
        self.uploads.append(s3_uri)
        return True

    def read(self, s3_uri: str) -> bytes:
        return self.objects[s3_uri]

    def list_prefix(self, s3_uri: str) -> list[str]:
        return sorted(uri[len(s3_uri) :] for uri in self.objects if uri.startswith(s3_uri))


def spec() -> PackageSpec:
    document = Document(f"{PREFIX}/documents/{'0' * 64}.json", b"{}", "sha256:" + "0" * 64)
    return PackageSpec(
        group_name="churn",
        model_name="churn",
        version="1",
        client_token="6f1b7c1e-34d4-4c55-9d0f-6d6c73796e63",
        approval=ApprovalStatus.PENDING,
        lifecycle=None,
        customer_metadata={"mlflow.version": "1"},
        description="",
        metadata_properties={},
        run_document=document,
        quality_statistics=None,
    )


def stager(model_dir: Path, storage: FakeStorage, **settings: object) -> tuple[Stager, FakeSource]:
    source = FakeSource(model_dir)
    configured = Settings(s3_prefix=PREFIX, **settings)  # type: ignore[arg-type]
    return Stager(configured, Gateways(source, FakeRegistry(), storage)), source  # type: ignore[arg-type]


def test_copy_packs_uploads_and_describes_the_model(model_dir: Path, tmp_path: Path) -> None:
    storage = FakeStorage()
    staging, _ = stager(
        model_dir,
        storage,
        realtime_instance_types=("ml.m5.large",),
        transform_instance_types=("ml.m5.xlarge",),
    )

    staged = staging.stage(spec())

    tarball = artifact_key(PREFIX, package_model(model_dir, tmp_path / "expected.tar.gz"))
    (payload,) = [uri for uri in storage.uploads if uri != tarball]
    assert storage.uploads == [tarball, payload] and staged.uploaded == 2
    assert payload.startswith(f"{PREFIX}/payloads/") and payload.endswith("/payload.tar.gz")
    assert staged.inference == Inference(
        container=Container(
            image="123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:3.17.2",
            model_data_url=tarball,
            environment=PYFUNC_ENV,
        ),
        content_types=("application/json", "text/csv", "application/vnd.apache.parquet"),
        response_types=("application/json",),
        realtime_instance_types=("ml.m5.large",),
        transform_instance_types=("ml.m5.xlarge",),
        sample_payload_url=payload,
        task=None,
        domain="MACHINE_LEARNING",
    )


def test_staging_the_same_model_again_uploads_nothing(model_dir: Path) -> None:
    storage = FakeStorage()
    staging, _ = stager(model_dir, storage)
    first = staging.stage(spec())

    again = staging.stage(spec())

    assert again.uploaded == 0 and len(storage.uploads) == 2
    assert again.inference == first.inference


def test_a_model_without_an_input_example_has_no_sample_payload(model_dir: Path) -> None:
    (model_dir / "serving_input_example.json").unlink()
    storage = FakeStorage()

    staged = stager(model_dir, storage)[0].stage(spec())

    assert staged.inference.sample_payload_url is None and staged.uploaded == 1


def test_reference_points_at_the_mlflow_prefix_and_copies_nothing(model_dir: Path) -> None:
    storage = FakeStorage({f"{IN_S3}/{p.name}": p.read_bytes() for p in model_dir.iterdir()})
    staging, source = stager(model_dir, storage, artifact_mode="reference")
    source.location = IN_S3

    staged = staging.stage(spec())

    assert source.downloads == []
    container = staged.inference.container
    assert (container.model_data_url, container.compressed) == (f"{IN_S3}/", False)
    assert [uri.rsplit("/", 1)[-1] for uri in storage.uploads] == ["payload.tar.gz"] and staged.uploaded == 1
    assert staged.inference.content_types == (
        "application/json",
        "text/csv",
        "application/vnd.apache.parquet",
    )


def test_reference_falls_back_to_copy_for_artifacts_outside_s3(model_dir: Path) -> None:
    storage = FakeStorage()
    staging, source = stager(model_dir, storage, artifact_mode="reference")
    source.location = "mlflow-artifacts:/1/models/m-1/artifacts"

    staged = staging.stage(spec())

    assert source.downloads == ["mlflow-artifacts:/1/models/m-1/artifacts"]
    assert staged.inference.container.compressed and staged.inference.container.model_data_url.endswith(
        "model.tar.gz"
    )


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (["model.skops"], "there is no MLmodel file under"),
        (["MLmodel", "code/"], "code/ cannot be deployed uncompressed"),
        (["MLmodel", "weights", "weights/part1"], "weights cannot be deployed uncompressed"),
        (["MLmodel", "a/b/c", "a/b"], "a/b cannot be deployed uncompressed"),
        (["MLmodel", "a/b/c/d", "a"], "a cannot be deployed uncompressed"),
        (["MLmodel", "x" * 256], "cannot be deployed uncompressed"),
    ],
)
def test_reference_refuses_a_prefix_sagemaker_cannot_deploy(
    model_dir: Path, keys: list[str], problem: str
) -> None:
    storage = FakeStorage({f"{IN_S3}/{key}": MLMODEL.encode() for key in keys})

    staging, source = stager(model_dir, storage, artifact_mode="reference")
    source.location = IN_S3
    with pytest.raises(MappingError, match=problem) as raised:
        staging.stage(spec())
    assert "set artifact_mode = copy" in str(raised.value)


# --- the request SageMaker receives, and what it gives back ------------------------------------------------


@pytest.fixture
def emulated() -> Iterator[SageMakerRegistry]:
    with emulated_aws():
        clients = aws_clients("us-east-1")
        registry = SageMakerRegistry(clients.sagemaker, clients.sts)
        registry.create_group(GroupSpec("churn", "churn", "Churn model", {}))
        yield registry


SERVED = Inference(
    container=Container("image:1", f"{IN_S3}/", {"A": "1"}, "XGBOOST", "1.7.6", compressed=False),
    content_types=("application/json",),
    response_types=("application/json",),
    realtime_instance_types=("ml.m5.large", "ml.c5.xlarge"),
    transform_instance_types=("ml.m5.xlarge",),
    sample_payload_url=f"{PREFIX}/payloads/{'ab' * 32}/payload.tar.gz",
    task="CLASSIFICATION",
    domain="MACHINE_LEARNING",
)


def test_every_inference_field_passes_sagemakers_validation_and_reads_back(
    emulated: SageMakerRegistry,
) -> None:
    arn = emulated.create_package(spec(), SERVED)

    described = boto3.client("sagemaker", region_name="us-east-1").describe_model_package(
        ModelPackageName=arn
    )
    specification = described["InferenceSpecification"]
    assert specification["Containers"][0]["ModelDataSource"] == {
        "S3DataSource": {"S3Uri": f"{IN_S3}/", "S3DataType": "S3Prefix", "CompressionType": "None"}
    }
    assert "ModelDataUrl" not in specification["Containers"][0]
    assert specification["SupportedRealtimeInferenceInstanceTypes"] == ["ml.m5.large", "ml.c5.xlarge"]
    assert specification["SupportedTransformInstanceTypes"] == ["ml.m5.xlarge"]
    assert (described["Task"], described["Domain"]) == ("CLASSIFICATION", "MACHINE_LEARNING")
    observed = emulated.describe_package(arn)
    assert (observed.model_data_url, observed.model_data_compressed) == (f"{IN_S3}/", False)
    assert observed.sample_payload_url == SERVED.sample_payload_url


def test_empty_optional_inference_fields_are_left_out(emulated: SageMakerRegistry) -> None:
    plain = Inference(
        Container("image:1", f"{PREFIX}/artifacts/x/model.tar.gz"),
        ("application/json",),
        ("application/json",),
    )

    arn = emulated.create_package(spec(), plain)

    described = boto3.client("sagemaker", region_name="us-east-1").describe_model_package(
        ModelPackageName=arn
    )
    assert described["InferenceSpecification"] == {
        "Containers": [{"Image": "image:1", "ModelDataUrl": f"{PREFIX}/artifacts/x/model.tar.gz"}],
        "SupportedContentTypes": ["application/json"],
        "SupportedResponseMIMETypes": ["application/json"],
    }
    assert not {"Task", "Domain", "SamplePayloadUrl"} & set(described)
    observed = emulated.describe_package(arn)
    assert observed.model_data_compressed and observed.sample_payload_url is None


def test_an_instance_type_sagemaker_does_not_know_is_refused_by_name(emulated: SageMakerRegistry) -> None:
    unknown = replace(SERVED, realtime_instance_types=("ml.m5.huge",))

    with pytest.raises(GatewayError, match=r"ml\.m5\.huge"):
        emulated.create_package(spec(), unknown)


# --- S3 reads for verify and reference mode -----------------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[S3Storage]:
    with emulated_aws():
        client = aws_clients("us-east-1").s3
        client.create_bucket(Bucket="bucket")
        # Small parts, so that a 3 MiB download is a managed multipart transfer.
        yield S3Storage(
            client, TransferConfig(multipart_threshold=1024 * 1024, multipart_chunksize=1024 * 1024)
        )


def test_read_list_and_download(s3: S3Storage, tmp_path: Path) -> None:
    small, big = tmp_path / "MLmodel", tmp_path / "big.bin"
    small.write_text("flavors: {}")
    big.write_bytes(bytes(range(256)) * 12 * 1024)
    for path, key in ((small, "model/MLmodel"), (small, "model/code/inference.py"), (big, "model/big.bin")):
        s3.upload_file(path, f"s3://bucket/{key}")
    s3.upload_file(small, "s3://bucket/model-other/MLmodel")  # shares the prefix `model`, not `model/`

    assert s3.list_prefix("s3://bucket/model/") == ["MLmodel", "big.bin", "code/inference.py"]
    assert s3.read("s3://bucket/model/MLmodel") == b"flavors: {}"
    s3.download_file("s3://bucket/model/big.bin", tmp_path / "copy.bin")
    assert file_digest(tmp_path / "copy.bin") == file_digest(big)


def test_reading_a_missing_object_names_it(s3: S3Storage, tmp_path: Path) -> None:
    with pytest.raises(GatewayError, match="GetObject s3://bucket/nothing"):
        s3.read("s3://bucket/nothing")
    with pytest.raises(GatewayError, match="Download s3://bucket/nothing"):
        s3.download_file("s3://bucket/nothing", tmp_path / "x")


# --- the settings staging reads ----------------------------------------------------------------------------


def test_artifact_mode_and_instance_types_default_to_copy_and_none(tmp_path: Path) -> None:
    settings = load_settings({}, {}, tmp_path)

    assert (settings.artifact_mode, settings.realtime_instance_types, settings.transform_instance_types) == (
        "copy",
        (),
        (),
    )


def test_instance_types_from_the_file_the_environment_and_flags(tmp_path: Path) -> None:
    (tmp_path / "mlsync.toml").write_text(
        'artifact_mode = "reference"\nrealtime_instance_types = ["ml.m5.large", "ml.g5.xlarge"]\n'
    )
    from_env = {"MLSYNC_TRANSFORM_INSTANCE_TYPES": " ml.m5.xlarge, ml.c5.2xlarge ,"}

    settings = load_settings({}, from_env, tmp_path)
    flagged = load_settings({"realtime_instance_types": ["ml.t2.medium"]}, from_env, tmp_path)

    assert settings.artifact_mode == "reference"
    assert settings.realtime_instance_types == ("ml.m5.large", "ml.g5.xlarge")
    assert settings.transform_instance_types == ("ml.m5.xlarge", "ml.c5.2xlarge")
    assert flagged.realtime_instance_types == ("ml.t2.medium",)


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ('artifact_mode = "link"', {}, "artifact_mode 'link': use copy"),
        ('realtime_instance_types = "ml.m5.large"', {}, "must be an array of strings"),
        ("transform_instance_types = [1]", {}, "must be an array of strings"),
        ("", {"MLSYNC_REALTIME_INSTANCE_TYPES": "m5.large"}, "'m5.large' is not a SageMaker instance type"),
    ],
)
def test_bad_staging_settings_are_refused_by_name(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    (tmp_path / "mlsync.toml").write_text(toml)

    with pytest.raises(ConfigError, match=message):
        load_settings({}, env, tmp_path)
