"""The installed versions of mlsync and of what it talks through, read from package metadata.

Read with `importlib.metadata`, never by importing the packages, so `mlsync --version` answers at once
and a broken MLflow install still lets it say which MLflow that is.
"""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "mlflow-sagemaker-registry"
UNKNOWN = "0+unknown"
"""The version of a package that is not installed (mlsync run from a source tree never installed)."""


def installed(distribution: str = DISTRIBUTION) -> str:
    """The installed version of `distribution` (mlsync's own by default), or UNKNOWN."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def summary() -> str:
    """`mlsync --version`: mlsync's version and those of the libraries a bug report needs."""
    others = ", ".join(f"{name} {installed(name)}" for name in ("mlflow", "boto3", "botocore"))
    return f"mlsync {installed()} ({others})"
