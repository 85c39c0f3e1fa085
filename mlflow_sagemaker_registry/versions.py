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


def _mlflow_distribution() -> str:
    """Which MLflow is installed: `mlflow`, or `mlflow-skinny` alone (a plain install of mlsync).

    The full distribution requires the skinny one of its own version, so with both it is `mlflow`.
    """
    return "mlflow" if installed("mlflow") != UNKNOWN else "mlflow-skinny"


def summary() -> str:
    """`mlsync --version`: mlsync's version and those of the libraries a bug report needs."""
    names = (_mlflow_distribution(), "boto3", "botocore")
    others = ", ".join(f"{name} {installed(name)}" for name in names)
    return f"mlsync {installed()} ({others})"
