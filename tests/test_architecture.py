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
]


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_io_library(module: str) -> None:
    probe = (
        f"import sys, mlflow_sagemaker_registry.{module}; "
        "print(sorted({'boto3', 'botocore', 'mlflow', 'click'} & {m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
