"""Model packaging: an MLflow model directory as a deterministic, content-addressed `model.tar.gz`.

The same directory always gives the same bytes (and so the same S3 key), whatever the file times,
owners or umask on the machine that packs it: a re-push finds the object already there and uploads
nothing. The sample payload (the model's input example as a request body) is packed the same way.
Also here: what an `MLmodel` file says, and the digest a content-addressed key promises, which
`mlsync verify` checks. Stdlib and PyYAML only.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import yaml  # type: ignore[import-untyped]

from .errors import SourceError

_FILE_MODE = 0o644
_DIR_MODE = 0o755
# Level 1 is several times faster than 9 for about the same size. Trained weights barely compress at
# all, and deflating them runs at about 35 MiB/s a core, so a model whose big files do not compress is
# stored in the gzip stream uncompressed (level 0, about 600 MiB/s): a valid `.tar.gz` all the same.
_COMPRESS_LEVEL = 1
_STORE_LEVEL = 0
_BIG_FILE = 16 * 1024 * 1024
_INCOMPRESSIBLE = 0.9  # level 1 keeps more than 90 % of a sample's bytes
_CHUNK = 1024 * 1024
# The 64 hex digits of a sha256 in a content-addressed key: `.../<hex>/model.tar.gz`, `.../<hex>.json`.
_KEY_DIGEST = re.compile(r"/([0-9a-f]{64})(?:/[^/]+|\.json)$")


class _HashingWriter:
    """A write-only file that hashes what passes through, so the digest costs no second read."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self._target.write(data)

    def flush(self) -> None:
        self._target.flush()


def package_model(model_dir: Path, out_path: Path) -> str:
    """Write `model_dir`'s contents as a deterministic `model.tar.gz` at `out_path`; return its digest.

    Entries sit at the archive root (`MLmodel`, not `model/MLmodel`), which is where SageMaker unpacks
    them to and where mlflow's serving container looks. Files are streamed in chunks, so memory does
    not grow with the model's size; big files that do not compress (trained weights) are stored
    rather than deflated, several times faster (`_compress_level`).

    Returns:
        `sha256:<hex>` of the tarball's bytes.

    Raises:
        SourceError: `model_dir` is not a directory, or holds something other than files and directories.
    """
    if not model_dir.is_dir():
        raise SourceError(f"cannot package {model_dir}: not a directory (was the model downloaded?)")
    entries = _sorted_entries(model_dir)
    named = ((path, path.relative_to(model_dir).as_posix()) for path in entries)
    return _pack(named, out_path, _compress_level(entries))


def package_payload(example: Path, out_path: Path) -> str:
    """Pack one request body as the `.tar.gz` SageMaker's `SamplePayloadUrl` must point to.

    Deterministic like `package_model`, so the same example always lands on the same key.

    Returns:
        `sha256:<hex>` of the archive's bytes.
    """
    return _pack([(example, example.name)], out_path, _COMPRESS_LEVEL)


def _compress_level(paths: Iterable[Path]) -> int:
    """Store (level 0) when the first MiB of each big file (16 MiB or more) deflates by under 10 %.

    Reads at most a MiB of each big file, one at a time. The choice depends only on the content, so
    the same directory still always gives the same bytes.
    """
    raw = packed = 0
    for path in paths:
        if path.is_file() and path.stat().st_size >= _BIG_FILE:
            with path.open("rb") as handle:
                sample = handle.read(_CHUNK)
            raw += len(sample)
            packed += len(zlib.compress(sample, _COMPRESS_LEVEL))
    return _STORE_LEVEL if raw and packed > raw * _INCOMPRESSIBLE else _COMPRESS_LEVEL


def _pack(entries: Iterable[tuple[Path, str]], out_path: Path, level: int) -> str:
    """A gzip'd tar of `(path, name in the archive)` entries at `level`, hashed as it is written."""
    with out_path.open("wb") as raw:
        hashing = _HashingWriter(raw)
        # filename="" and mtime=0 keep the gzip header free of the output name and the current time.
        with (
            gzip.GzipFile(filename="", mode="wb", fileobj=hashing, mtime=0, compresslevel=level) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for path, name in entries:
                _add(tar, path, name)
    return f"sha256:{hashing.sha256.hexdigest()}"


def _sorted_entries(root: Path) -> list[Path]:
    """Every path under `root`, parents before children, in an order that does not depend on the OS."""
    return sorted(root.rglob("*"), key=lambda path: path.relative_to(root).parts)


def _add(tar: tarfile.TarFile, path: Path, name: str) -> None:
    """Add one entry with fixed metadata: owner 0/0 without names, mtime 0, modes 644/755.

    A symlink to a file is stored as the file; a symlink to a directory is refused, as its contents
    would be silently left out.
    """
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    if path.is_dir() and not path.is_symlink():
        info.type, info.mode = tarfile.DIRTYPE, _DIR_MODE
        tar.addfile(info)
    elif path.is_file():
        info.type, info.mode, info.size = tarfile.REGTYPE, _FILE_MODE, path.stat().st_size
        with path.open("rb") as content:
            tar.addfile(info, content)
    else:
        raise SourceError(
            f"cannot package {path}: only regular files and directories can go into model.tar.gz"
        )


@dataclass(frozen=True)
class MLmodel:
    """What an `MLmodel` file says that serving the model depends on.

    `flavors` maps each flavor name to its settings (`sklearn_version`, `loader_module`, ...).
    `signature_inputs` is the parsed input schema (a list of column or tensor specs), None without a
    signature. `serving_example` is the path, relative to the model directory, of the input example
    as a request body for MLflow's scoring server (`serving_input_example.json`), None without one.
    """

    flavors: Mapping[str, Mapping[str, Any]]
    mlflow_version: str | None
    python_version: str | None
    signature_inputs: tuple[Mapping[str, Any], ...] | None
    serving_example: str | None


def read_mlmodel(model_dir: Path) -> MLmodel:
    """Parse the MLmodel file of a local model directory.

    Raises:
        SourceError: there is no MLmodel file, or it is not one (see `parse_mlmodel`).
    """
    path = model_dir / "MLmodel"
    if not path.is_file():
        raise SourceError(f"no MLmodel file in {model_dir}: the artifact is not an MLflow model directory")
    return parse_mlmodel(path.read_text(encoding="utf-8"), str(path))


def parse_mlmodel(text: str, where: str) -> MLmodel:
    """Parse the text of an MLmodel file; `where` names it in errors.

    Raises:
        SourceError: it is not valid YAML, not a mapping, or its signature is not valid JSON.
    """
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SourceError(f"{where} is not valid YAML: {exc}") from exc
    if not isinstance(content, dict):
        raise SourceError(f"{where} is not an MLmodel file (expected a YAML mapping)")
    flavors = {str(name): settings or {} for name, settings in (content.get("flavors") or {}).items()}
    version = content.get("mlflow_version")
    python_version = flavors.get("python_function", {}).get("python_version")
    example = (content.get("saved_input_example_info") or {}).get("serving_input_path")
    return MLmodel(
        flavors=dict(sorted(flavors.items())),
        mlflow_version=None if version is None else str(version),
        python_version=None if python_version is None else str(python_version),
        signature_inputs=_signature_inputs(content.get("signature"), where),
        serving_example=None if example is None else str(example),
    )


def _signature_inputs(signature: Any, where: str) -> tuple[Mapping[str, Any], ...] | None:
    """The input specs of a signature, which MLflow stores as a JSON string inside the YAML."""
    inputs = signature.get("inputs") if isinstance(signature, dict) else None
    if not inputs:
        return None
    try:
        specs = json.loads(inputs)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{where}: the signature's inputs are not valid JSON: {exc}") from exc
    if not isinstance(specs, list) or not all(isinstance(spec, dict) for spec in specs):
        raise SourceError(f"{where}: the signature's inputs are not a list of column or tensor specs")
    return tuple(specs)


def artifact_key(s3_prefix: str, digest: str) -> str:
    """The content-addressed S3 URI of a packaged model: `<prefix>/artifacts/<hex>/model.tar.gz`.

    The same model always lands on the same key, so an upload can be skipped when the key exists.
    """
    return f"{s3_prefix.rstrip('/')}/artifacts/{_hex(digest)}/model.tar.gz"


def _hex(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise ValueError(f"expected a digest of the form sha256:<64 hex>, got {digest!r}")
    return hexdigest


def payload_key(s3_prefix: str, digest: str) -> str:
    """The content-addressed S3 URI of a sample payload: `<prefix>/payloads/<hex>/payload.tar.gz`."""
    return f"{s3_prefix.rstrip('/')}/payloads/{_hex(digest)}/payload.tar.gz"


def key_digest(s3_uri: str) -> str | None:
    """The `sha256:<hex>` a content-addressed URI promises (artifact, payload or document), else None."""
    found = _KEY_DIGEST.search(s3_uri)
    return f"sha256:{found.group(1)}" if found else None


def sha256_of(data: bytes) -> str:
    """`sha256:<hex>` of bytes in memory, the form of SageMaker's `ContentDigest`."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def file_digest(path: Path) -> str:
    """`sha256:<hex>` of a file, read in chunks (a downloaded `model.tar.gz` may be many GiB)."""
    sha256 = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha256.update(chunk)
    return f"sha256:{sha256.hexdigest()}"


def unpack(tarball: Path, dest: Path) -> Path:
    """Extract a `model.tar.gz` into `dest` (created), refusing absolute paths, `..` and device files.

    Raises:
        SourceError: the file is not a gzip'd tar archive, or holds an entry that would land outside
            `dest` (what a tampered archive might do).
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SourceError(f"cannot unpack {tarball.name}: {exc}") from exc
    return dest
