"""Build the AWS Lambda deployment package of the handler: a zip of mlsync and its plain dependencies.

    python -m mlflow_sagemaker_registry.lambda_package [SOURCE] [--output mlsync-lambda.zip]
        [--python 3.12] [--arch x86_64|arm64]

SOURCE is what `pip wheel` takes: a checkout (default `.`), a built wheel, or a requirement such as
`mlflow-sagemaker-registry==0.1.0`. The zip holds mlsync and exactly its plain install's dependencies
(mlflow-skinny, boto3, click, PyYAML and theirs; no extra: the handler pulls, and a pull needs none), as
binary wheels for Lambda's Linux and Python (`pip install --target --platform --only-binary=:all:`).
boto3 and botocore are included, not taken from the runtime: the runtime's copy lags behind releases and
changes when AWS updates it, and mlsync needs the SageMaker API of botocore >= 1.35 (`ModelLifeCycle`).

Lambda takes at most 250 MiB unzipped (function and layers together; the build fails above it) and a zip
of at most 50 MiB uploaded directly (a bigger one goes through S3, which the report then says). Bytecode
is compiled only when the building interpreter is of the function's Python version: Lambda's code
directory is read-only, so modules without it are compiled again at every cold start.

tests/test_lambda_package.py builds it for this machine's Python (a Linux one, as Lambda's) and runs its
handler with nothing else on `sys.path`. docs/deployment.md, "The Lambda package", says how to deploy it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import MlsyncError

MiB = 1024 * 1024
UNZIPPED_LIMIT = 250 * MiB
"""Lambda's limit on a function's unzipped code and layers: 262,144,000 bytes, as its error message says."""
DIRECT_UPLOAD_LIMIT = 50 * MiB
"""The biggest zip Lambda takes in the request itself; a bigger one is uploaded to S3 first."""
DEFAULT_PYTHON = "3.12"
PLATFORMS = {
    # manylinux2014 (glibc 2.17) is what AWS's guide names; manylinux_2_28 admits the wheels that no
    # longer come for 2014. Lambda's Python 3.12+ runtimes run Amazon Linux 2023 (glibc 2.34).
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
}
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest: the same files give the same archive


@dataclass(frozen=True)
class Built:
    """A built package: the zip, its size and the size of what it unpacks to (bytes)."""

    path: Path
    zipped: int
    unzipped: int
    largest: tuple[tuple[str, int], ...]
    """The biggest top-level entries (packages) and their unpacked sizes, largest first."""

    def report(self) -> str:
        """What the build prints: the sizes against Lambda's limits, and how to upload the zip."""
        upload = (
            "small enough to upload directly (aws lambda update-function-code --zip-file fileb://...)"
            if self.zipped <= DIRECT_UPLOAD_LIMIT
            else f"over the {_mib(DIRECT_UPLOAD_LIMIT)} direct upload: copy it to S3 and pass "
            "--s3-bucket/--s3-key to aws lambda create-function or update-function-code"
        )
        lines = [
            f"{self.path}: {_mib(self.zipped)} zipped, {_mib(self.unzipped)} unzipped "
            f"(Lambda's limit {_mib(UNZIPPED_LIMIT)}, with any layers)",
            f"  {upload}",
            "  largest: " + ", ".join(f"{name} {_mib(size)}" for name, size in self.largest),
        ]
        return "\n".join(lines)


def build(source: str, output: Path, *, python: str = DEFAULT_PYTHON, arch: str = "x86_64") -> Built:
    """Build the deployment zip of `source` at `output`.

    Args:
        source: What `pip wheel` takes: a checkout, a wheel, or a requirement of mlsync.
        output: Where the zip goes (replaced if it exists).
        python: The function's Python version (`3.12`).
        arch: The function's architecture, `x86_64` or `arm64`.

    Raises:
        MlsyncError: pip failed (its output says why), or the package is over Lambda's unzipped limit.
    """
    if Path(source).exists():  # pip takes a bare `name` for a requirement even where a folder has it
        source = str(Path(source).resolve())
    with tempfile.TemporaryDirectory(prefix="mlsync-lambda-") as scratch:
        wheels, root = Path(scratch, "wheels"), Path(scratch, "root")
        _pip("wheel", "--no-deps", "--wheel-dir", str(wheels), source)
        (wheel,) = wheels.glob("*.whl")
        _pip("install", "--target", str(root), *_binary_options(python, arch), str(wheel))
        return _zip(root, output)


def _binary_options(python: str, arch: str) -> list[str]:
    """pip's options for installing binary wheels for CPython `python` on Lambda's Linux on `arch`."""
    platforms = [f"--platform={platform}" for platform in PLATFORMS[arch]]
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    compiled = "--compile" if python == running else "--no-compile"
    return ["--only-binary=:all:", *platforms, "--implementation=cp", f"--python-version={python}", compiled]


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise MlsyncError(f"`pip {' '.join(args)}` failed:\n{done.stdout}{done.stderr}".rstrip())


def _zip(root: Path, output: Path) -> Built:
    """Zip `root`'s files, in a fixed order with fixed times, and measure it against Lambda's limits."""
    # pip's console scripts (bin/) name the building interpreter in their first line: of no use on Lambda.
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "bin")
    sizes: dict[str, int] = {}
    for path in files:
        top = path.relative_to(root).parts[0]
        sizes[top] = sizes.get(top, 0) + path.stat().st_size
    unzipped = sum(sizes.values())
    if unzipped > UNZIPPED_LIMIT:
        raise MlsyncError(
            f"the package unpacks to {_mib(unzipped)}, over Lambda's {_mib(UNZIPPED_LIMIT)}: deploy the "
            "container image instead (docs/deployment.md, 'The Lambda package')"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            entry = zipfile.ZipInfo(path.relative_to(root).as_posix(), _FIXED_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            executable = os.access(path, os.X_OK)
            entry.external_attr = (0o100755 if executable else 0o100644) << 16
            with path.open("rb") as source, archive.open(entry, "w") as target:
                shutil.copyfileobj(source, target, MiB)
    largest = tuple(sorted(sizes.items(), key=lambda item: -item[1])[:6])
    return Built(output, output.stat().st_size, unzipped, largest)


def _mib(size: int) -> str:
    return f"{size / MiB:.1f} MiB"


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: build, print the report; exit 1 when the build failed."""
    parser = argparse.ArgumentParser(
        prog="python -m mlflow_sagemaker_registry.lambda_package",
        description="Build the AWS Lambda deployment zip of mlsync's EventBridge handler.",
    )
    parser.add_argument("source", nargs="?", default=".", help="a checkout, a wheel or a requirement")
    parser.add_argument("--output", type=Path, default=Path("mlsync-lambda.zip"), help="the zip to write")
    parser.add_argument("--python", default=DEFAULT_PYTHON, help="the function's Python version (3.12)")
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64", help="the function's")
    args = parser.parse_args(argv)
    try:
        built = build(args.source, args.output, python=args.python, arch=args.arch)
    except MlsyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(built.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
