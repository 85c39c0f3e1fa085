"""Model packaging: a deterministic model.tar.gz, the MLmodel reader and content-addressed keys."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from mlflow_sagemaker_registry.artifacts import (
    MLmodel,
    artifact_key,
    file_digest,
    key_digest,
    package_model,
    package_payload,
    payload_key,
    read_mlmodel,
    unpack,
)
from mlflow_sagemaker_registry.errors import SourceError

MLMODEL = """\
artifact_path: model
flavors:
  sklearn:
    pickled_model: model.pkl
    sklearn_version: 1.5.2
  python_function:
    loader_module: mlflow.sklearn
    model_path: model.pkl
mlflow_version: 3.17.2
model_uuid: 0a1b2c
"""

SIGNED_MLMODEL = """\
flavors:
  python_function:
    loader_module: mlflow.sklearn
    python_version: 3.11.7
mlflow_version: 3.17.2
saved_input_example_info:
  artifact_path: input_example.json
  serving_input_path: serving_input_example.json
  type: ndarray
signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 3]}}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
"""


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small MLflow model directory, with a nested folder and an empty one."""
    root = tmp_path / "model"
    (root / "code" / "helpers").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "MLmodel").write_text(MLMODEL)
    (root / "model.pkl").write_bytes(bytes(range(256)) * 64)
    (root / "requirements.txt").write_text("mlflow==3.17.2\nscikit-learn==1.5.2\n")
    (root / "code" / "helpers" / "features.py").write_text("X = 1\n")
    return root


def test_same_directory_gives_the_same_bytes(model_dir: Path, tmp_path: Path) -> None:
    first = package_model(model_dir, tmp_path / "a.tar.gz")
    second = package_model(model_dir, tmp_path / "b.tar.gz")

    assert first == second
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def test_file_times_and_permissions_on_disk_do_not_change_the_digest(model_dir: Path, tmp_path: Path) -> None:
    before = package_model(model_dir, tmp_path / "a.tar.gz")
    copy = shutil.copytree(model_dir, tmp_path / "copy")
    for path in [copy, *copy.rglob("*")]:
        os.utime(path, (1_700_000_000, 1_700_000_000))
    (copy / "model.pkl").chmod(0o600)

    assert package_model(copy, tmp_path / "b.tar.gz") == before


def test_different_content_gives_a_different_digest(model_dir: Path, tmp_path: Path) -> None:
    before = package_model(model_dir, tmp_path / "a.tar.gz")
    (model_dir / "requirements.txt").write_text("mlflow==3.17.2\n")

    assert package_model(model_dir, tmp_path / "b.tar.gz") != before


def test_digest_is_the_sha256_of_the_tarball(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.tar.gz"
    digest = package_model(model_dir, out)

    assert digest == "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest()


def test_layout_has_mlmodel_at_the_root_and_fixed_metadata(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.tar.gz"
    package_model(model_dir, out)

    with tarfile.open(out, "r:gz") as tar:
        members = tar.getmembers()
        assert tar.extractfile("MLmodel").read().decode() == MLMODEL  # type: ignore[union-attr]

    assert [member.name for member in members] == [
        "MLmodel",
        "code",
        "code/helpers",
        "code/helpers/features.py",
        "empty",
        "model.pkl",
        "requirements.txt",
    ]
    for member in members:
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
        assert member.mode == (0o755 if member.isdir() else 0o644)


def test_gzip_header_has_no_time_and_no_file_name(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.tar.gz"
    package_model(model_dir, out)
    header = out.read_bytes()[:10]

    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] == 0  # flags: no FNAME, no FCOMMENT
    assert header[4:8] == b"\x00\x00\x00\x00"  # MTIME


def test_memory_does_not_grow_with_the_model_size(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    with (model / "weights.bin").open("wb") as weights:
        for _ in range(32):
            weights.write(os.urandom(1024 * 1024))

    tracemalloc.start()
    try:
        package_model(model, tmp_path / "model.tar.gz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 4 * 1024 * 1024  # a 32 MiB file, packed through buffers of a few hundred KiB
    with gzip.open(tmp_path / "model.tar.gz") as unpacked:
        assert len(unpacked.read()) > 32 * 1024 * 1024


@pytest.mark.parametrize(
    ("content", "stored"),
    [(lambda size: os.urandom(size), True), (lambda size: b"weights " * (size // 8), False)],
    ids=["incompressible", "compressible"],
)
def test_big_files_that_do_not_compress_are_stored_not_deflated(
    tmp_path: Path, content: Callable[[int], bytes], stored: bool
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text(MLMODEL)
    (model / "weights.bin").write_bytes(content(17 * 1024 * 1024))

    digest = package_model(model, tmp_path / "a.tar.gz")

    size = (tmp_path / "a.tar.gz").stat().st_size
    assert (size > 17 * 1024 * 1024) is stored  # stored: the tar's own bytes plus deflate's block headers
    assert size < 18 * 1024 * 1024
    assert package_model(model, tmp_path / "b.tar.gz") == digest
    with tarfile.open(tmp_path / "a.tar.gz", "r:gz") as tar:
        assert tar.extractfile("weights.bin").read() == (model / "weights.bin").read_bytes()  # type: ignore[union-attr]


def test_file_symlinks_are_stored_as_files_and_directory_symlinks_refused(
    model_dir: Path, tmp_path: Path
) -> None:
    (model_dir / "link.txt").symlink_to(model_dir / "requirements.txt")
    out = tmp_path / "model.tar.gz"
    package_model(model_dir, out)
    with tarfile.open(out, "r:gz") as tar:
        assert tar.getmember("link.txt").isfile()

    (model_dir / "linked-dir").symlink_to(model_dir / "code", target_is_directory=True)
    with pytest.raises(SourceError, match="linked-dir"):
        package_model(model_dir, out)


def test_packaging_a_missing_directory_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a directory"):
        package_model(tmp_path / "nowhere", tmp_path / "model.tar.gz")


def test_read_mlmodel_returns_sorted_flavors_and_mlflow_version(model_dir: Path) -> None:
    mlmodel = read_mlmodel(model_dir)

    assert list(mlmodel.flavors) == ["python_function", "sklearn"]
    assert mlmodel.flavors["sklearn"]["sklearn_version"] == "1.5.2"
    assert mlmodel.mlflow_version == "3.17.2"
    assert (mlmodel.python_version, mlmodel.signature_inputs, mlmodel.serving_example) == (None, None, None)


def test_read_mlmodel_without_a_version(model_dir: Path) -> None:
    (model_dir / "MLmodel").write_text("flavors:\n  python_function: {}\n")
    assert read_mlmodel(model_dir) == MLmodel({"python_function": {}}, None, None, None, None)


def test_read_mlmodel_reads_the_signature_the_example_and_the_python_version(model_dir: Path) -> None:
    (model_dir / "MLmodel").write_text(SIGNED_MLMODEL)

    mlmodel = read_mlmodel(model_dir)

    assert mlmodel.signature_inputs == (
        {"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 3]}},
    )
    assert mlmodel.serving_example == "serving_input_example.json"
    assert mlmodel.python_version == "3.11.7"


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        ("'[{\"type\": '", "not valid JSON"),
        ('\'{"type": "double"}\'', "not a list of column or tensor specs"),
    ],
)
def test_a_broken_signature_is_a_source_error(tmp_path: Path, inputs: str, problem: str) -> None:
    (tmp_path / "MLmodel").write_text(f"flavors: {{}}\nsignature:\n  inputs: {inputs}\n")
    with pytest.raises(SourceError, match=problem):
        read_mlmodel(tmp_path)


def test_missing_mlmodel_is_a_source_error_naming_the_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=f"no MLmodel file in {tmp_path}"):
        read_mlmodel(tmp_path)


@pytest.mark.parametrize("content", ["flavors: [unclosed", "just a string"])
def test_unreadable_mlmodel_is_a_source_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "MLmodel").write_text(content)
    with pytest.raises(SourceError, match="MLmodel"):
        read_mlmodel(tmp_path)


@pytest.mark.parametrize("prefix", ["s3://bucket/mlsync", "s3://bucket/mlsync/"])
def test_artifact_key_is_content_addressed(prefix: str) -> None:
    digest = "sha256:" + "0f" * 32
    assert artifact_key(prefix, digest) == f"s3://bucket/mlsync/artifacts/{'0f' * 32}/model.tar.gz"


@pytest.mark.parametrize("digest", ["md5:" + "0" * 32, "sha256:abc", "0f" * 32])
def test_artifact_key_refuses_other_digests(digest: str) -> None:
    with pytest.raises(ValueError, match="sha256:<64 hex>"):
        artifact_key("s3://bucket/mlsync", digest)


def test_payload_key_is_content_addressed() -> None:
    digest = "sha256:" + "0f" * 32
    assert (
        payload_key("s3://bucket/mlsync/", digest)
        == f"s3://bucket/mlsync/payloads/{'0f' * 32}/payload.tar.gz"
    )


@pytest.mark.parametrize(
    "uri",
    [
        f"s3://b/p/artifacts/{'ab' * 32}/model.tar.gz",
        f"s3://b/p/payloads/{'ab' * 32}/payload.tar.gz",
        f"s3://b/p/documents/{'ab' * 32}.json",
    ],
)
def test_key_digest_reads_the_digest_a_content_addressed_key_promises(uri: str) -> None:
    assert key_digest(uri) == "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "uri", ["s3://b/p/model.tar.gz", "s3://b/mlflow/artifacts/", f"s3://b/{'ab' * 31}/x"]
)
def test_key_digest_of_other_keys_is_none(uri: str) -> None:
    assert key_digest(uri) is None


def test_a_payload_holds_one_request_body_and_is_deterministic(tmp_path: Path) -> None:
    example = tmp_path / "serving_input_example.json"
    example.write_text('{"inputs": [[1.0, 2.0, 3.0]]}')

    first = package_payload(example, tmp_path / "a.tar.gz")
    os.utime(example, (1_700_000_000, 1_700_000_000))

    assert package_payload(example, tmp_path / "b.tar.gz") == first == file_digest(tmp_path / "a.tar.gz")
    with tarfile.open(tmp_path / "a.tar.gz", "r:gz") as tar:
        assert tar.getnames() == ["serving_input_example.json"]


def test_unpack_gives_back_the_packaged_directory(model_dir: Path, tmp_path: Path) -> None:
    package_model(model_dir, tmp_path / "model.tar.gz")

    out = unpack(tmp_path / "model.tar.gz", tmp_path / "unpacked")

    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == sorted(
        p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")
    )
    assert (out / "model.pkl").read_bytes() == (model_dir / "model.pkl").read_bytes()


def test_unpack_refuses_an_archive_that_escapes_its_directory(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))

    with pytest.raises(SourceError, match=r"cannot unpack evil\.tar\.gz"):
        unpack(evil, tmp_path / "unpacked")
    assert not (tmp_path / "outside.txt").exists()


def test_unpack_of_bytes_that_are_not_an_archive_is_a_source_error(tmp_path: Path) -> None:
    broken = tmp_path / "model.tar.gz"
    broken.write_bytes(b"tampered")
    with pytest.raises(SourceError, match=r"cannot unpack model\.tar\.gz"):
        unpack(broken, tmp_path / "unpacked")
