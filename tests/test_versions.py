"""`mlsync --version` names mlsync's version and the libraries a bug report needs, read from metadata."""

from __future__ import annotations

from importlib import metadata

from e2e_support import mlsync

from mlflow_sagemaker_registry.versions import UNKNOWN, installed, summary


def test_version_names_mlsync_mlflow_boto3_and_botocore() -> None:
    result = mlsync("--version")

    assert result.exit_code == 0
    expected = (
        f"mlsync {installed()} (mlflow {metadata.version('mlflow')}, boto3 {metadata.version('boto3')}, "
        f"botocore {metadata.version('botocore')})"
    )
    assert result.output.strip() == expected == summary()


def test_a_package_that_is_not_installed_has_the_unknown_version() -> None:
    assert installed("no-such-distribution-here") == UNKNOWN
