"""The Lambda deployment package builds, fits Lambda's limits, and its handler runs with nothing else.

`python -m mlflow_sagemaker_registry.lambda_package` builds the zip of a copy of the sources as for a
function of this interpreter's Python version and this machine's architecture (Lambda's manylinux
wheels, which run on this Linux too; the default 3.12 could not run here). The zip is unpacked into a
fresh folder, and the handler runs in `python -I -S` with that folder alone on `sys.path` beside the standard
library (as Lambda's runtime puts the function's folder first): configured by the environment only,
against the emulator process and a real `mlflow server` over http. The probe fails if any module came
from anywhere else.
"""

from __future__ import annotations

import json
import platform
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from e2e_support import mlsync
from install_support import Estate, copy_sources, estate, register, run

from mlflow_sagemaker_registry.config import ApprovalRules
from mlflow_sagemaker_registry.lambda_package import DIRECT_UPLOAD_LIMIT, UNZIPPED_LIMIT
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN, TAG_REVIEW_DESCRIPTION

pytestmark = [pytest.mark.e2e, pytest.mark.install]

MODEL = "lambda package model"

HANDLE = """
import json, sys, sysconfig
task = sys.argv[1]
sys.path.insert(0, task)
from mlflow_sagemaker_registry.lambda_handler import handler
answers = [handler(event, None) for event in json.load(sys.stdin)]
homes = (task, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
strays = sorted(
    name for name, module in list(sys.modules.items())
    if getattr(module, "__file__", None) and not module.__file__.startswith(homes)
)
print(json.dumps({"answers": answers, "strays": strays}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The zip built from a copy of the sources, and what the build printed."""
    root = tmp_path_factory.mktemp("lambda-package")
    sources = copy_sources(root / "sources")
    output = root / "mlsync-lambda.zip"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}[platform.machine()]
    command = (sys.executable, "-m", "mlflow_sagemaker_registry.lambda_package", sources, "--output", output)
    report = run(*command, "--python", python, "--arch", arch, cwd=root)
    return output, report


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Estate, str]]:
    """A version of MODEL pushed from this process, then approved by a reviewer in SageMaker."""
    with estate(tmp_path_factory.mktemp("lambda-estate")) as found:
        register(found, MODEL)
        assert mlsync("push", MODEL, env=dict(found.env)).exit_code == 0
        arn = mlflow.MlflowClient().get_model_version(MODEL, "1").tags[TAG_PACKAGE_ARN]
        reviewer = found.client(
            "sagemaker", aws_access_key_id="AKIAREVIEWER0000004", aws_secret_access_key="r"
        )
        reviewer.update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="fits in a zip"
        )
        yield found, arn


def test_the_package_fits_lambdas_limits_and_says_so(built: tuple[Path, str]) -> None:
    output, report = built

    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
        unzipped = sum(entry.file_size for entry in archive.infolist())

    assert "mlflow_sagemaker_registry/lambda_handler.py" in names
    assert any(name.startswith("mlflow_skinny-") for name in names)
    assert not any(name.startswith(("mlflow-", "sqlalchemy/", "pandas/", "numpy/", "bin/")) for name in names)
    assert unzipped <= UNZIPPED_LIMIT
    assert report.startswith(f"{output}: ") and "unzipped (Lambda's limit 250.0 MiB" in report
    direct = output.stat().st_size <= DIRECT_UPLOAD_LIMIT
    assert ("small enough to upload directly" in report) == direct
    assert ("copy it to S3" in report) == (not direct)


def test_the_handler_runs_from_the_unpacked_package_alone(
    built: tuple[Path, str], reviewed: tuple[Estate, str], tmp_path: Path
) -> None:
    output, _ = built
    found, arn = reviewed
    task = tmp_path / "task"
    with zipfile.ZipFile(output) as archive:
        archive.extractall(task)
    events = found.emulator.events()

    result = json.loads(
        run(sys.executable, "-I", "-S", "-c", HANDLE, task, cwd=task, env=found.env, stdin=json.dumps(events))
    )

    assert result["strays"] == []
    assert result["answers"][-1] == {"status": "pulled", "model": MODEL, "package": arn}
    tags = mlflow.MlflowClient().get_model_version(MODEL, "1").tags
    assert tags[ApprovalRules().tag] == "Approved"
    assert tags[TAG_REVIEW_DESCRIPTION] == "fits in a zip"
