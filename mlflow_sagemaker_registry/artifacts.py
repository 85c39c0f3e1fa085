"""Model packaging: an MLflow model directory as a deterministic, content-addressed `model.tar.gz`.

The same directory always gives the same bytes (and so the same S3 key), whatever the file times,
owners or umask on the machine that packs it: a re-push finds the object already there and uploads
nothing. Stdlib and PyYAML only.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from pathlib import Path
from typing import BinaryIO

import yaml  # type: ignore[import-untyped]

from .errors import SourceError

_FILE_MODE = 0o644
_DIR_MODE = 0o755
# Model weights barely compress; level 1 is several times faster than 9 for about the same size.
_COMPRESS_LEVEL = 1


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
    not grow with the model's size.

    Returns:
        `sha256:<hex>` of the tarball's bytes.

    Raises:
        SourceError: `model_dir` is not a directory, or holds something other than files and directories.
    """
    if not model_dir.is_dir():
        raise SourceError(f"cannot package {model_dir}: not a directory (was the model downloaded?)")
    with out_path.open("wb") as raw:
        hashing = _HashingWriter(raw)
        # filename="" and mtime=0 keep the gzip header free of the output name and the current time.
        with (
            gzip.GzipFile(
                filename="", mode="wb", fileobj=hashing, mtime=0, compresslevel=_COMPRESS_LEVEL
            ) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for path in _sorted_entries(model_dir):
                _add(tar, path, path.relative_to(model_dir).as_posix())
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


def read_mlmodel(model_dir: Path) -> tuple[tuple[str, ...], str | None]:
    """The flavor names (sorted) and `mlflow_version` from the directory's MLmodel file.

    Raises:
        SourceError: there is no MLmodel file, or it is not a YAML mapping.
    """
    path = model_dir / "MLmodel"
    if not path.is_file():
        raise SourceError(f"no MLmodel file in {model_dir}: the artifact is not an MLflow model directory")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SourceError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(content, dict):
        raise SourceError(f"{path} is not an MLmodel file (expected a YAML mapping)")
    flavors = content.get("flavors") or {}
    version = content.get("mlflow_version")
    return tuple(sorted(flavors)), None if version is None else str(version)


def artifact_key(s3_prefix: str, digest: str) -> str:
    """The content-addressed S3 URI of a packaged model: `<prefix>/artifacts/<hex>/model.tar.gz`.

    The same model always lands on the same key, so an upload can be skipped when the key exists.
    """
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise ValueError(f"expected a digest of the form sha256:<64 hex>, got {digest!r}")
    return f"{s3_prefix.rstrip('/')}/artifacts/{hexdigest}/model.tar.gz"
