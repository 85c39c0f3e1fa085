"""mlsync: keep the Amazon SageMaker Model Registry in step with an MLflow Model Registry, both ways.

The public API, for scripts and services that drive mlsync from Python rather than the `mlsync` command::

    from mlflow_sagemaker_registry import connect, load_settings

    engine = connect(load_settings({"s3_prefix": "s3://bucket/mlsync"}))
    plan, report = engine.push(["fraud model"])      # or .pull(), .plan(), .status(), .plan_rollback()

Everything named in `__all__` is kept stable; other modules are implementation. Beside it:
`mlflow_sagemaker_registry.lambda_handler.handler` (AWS Lambda, SageMaker's events),
`mlflow_sagemaker_registry.testing` (in-memory ports for tests of code around mlsync) and
`mlflow_sagemaker_registry.emulator` (the SageMaker emulator; the `emulator` extra).

Importing this package imports nothing else: each name loads its module on first use, and only `connect`
loads boto3 and mlflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ApprovalRules, Settings, load_settings
    from .domain import ApprovalStatus
    from .engine import Engine, StatusRow
    from .errors import (
        ConfigError,
        GatewayError,
        MappingError,
        MissingExtraError,
        MlsyncError,
        NotFoundError,
        RollbackError,
        SourceError,
        UnsafePlanError,
    )
    from .executor import Report
    from .planner import Plan
    from .wiring import connect

_HOMES = {
    "ApprovalRules": "config",
    "Settings": "config",
    "load_settings": "config",
    "ApprovalStatus": "domain",
    "Engine": "engine",
    "StatusRow": "engine",
    "ConfigError": "errors",
    "GatewayError": "errors",
    "MappingError": "errors",
    "MissingExtraError": "errors",
    "MlsyncError": "errors",
    "NotFoundError": "errors",
    "RollbackError": "errors",
    "SourceError": "errors",
    "UnsafePlanError": "errors",
    "Report": "executor",
    "Plan": "planner",
    "connect": "wiring",
}
"""Where each public name lives; imported on first use (PEP 562)."""

__all__ = [
    "ApprovalRules",
    "ApprovalStatus",
    "ConfigError",
    "Engine",
    "GatewayError",
    "MappingError",
    "MissingExtraError",
    "MlsyncError",
    "NotFoundError",
    "Plan",
    "Report",
    "RollbackError",
    "Settings",
    "SourceError",
    "StatusRow",
    "UnsafePlanError",
    "connect",
    "load_settings",
]


def __getattr__(name: str) -> Any:
    """The public names on first use: MLflow imports this package whenever it loads its registry-store
    plugins, and most of those processes never mirror anything."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{home}", __name__), name)
