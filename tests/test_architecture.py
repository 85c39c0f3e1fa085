"""The layering docs/architecture.md promises: the core never imports boto3, mlflow or click."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = [
    "domain",
    "errors",
    "config",
    "mapping",
    "approval_merge",
    "actions",
    "planner",
    "rollback",
    "plan_output",
    "ports",
    "executor",
    "engine",
    "triggers.reconcile",
    "triggers.eventbridge",
    "versions",
    "iam_policy",
    "doctor",
    "targets",
    "fleet",
    "sources.target_view",
]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_io_library(module: str) -> None:
    probe = (
        f"import sys, mlflow_sagemaker_registry.{module}; "
        "print(sorted({'boto3', 'botocore', 'mlflow', 'click'} & {m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_public_api_resolves_every_name_and_imports_lightly() -> None:
    """`__all__` is the stable API (docs/architecture.md); importing the package costs nothing until used."""
    probe = (
        "import sys, mlflow_sagemaker_registry as m; "
        "light = sorted({'boto3', 'mlflow', 'click'} & {x.split('.')[0] for x in sys.modules}); "
        "names = [n for n in m.__all__ if n != 'connect' and getattr(m, n) is None]; "
        "print(light, names, sorted(m.__all__) == sorted(m._HOMES))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[] [] True"
