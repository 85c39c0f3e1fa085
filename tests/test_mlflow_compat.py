"""What mlsync does where the installed MLflow lacks a feature (sources/mlflow_compat.py).

Marked `mlflow_compat`, so it runs with the oldest supported MLflow too (scripts/test_mlflow2); the
other MLflow-facing tests show that what both versions have works alike.
"""

from __future__ import annotations

import mlflow
import pytest
from click.testing import CliRunner

from mlflow_sagemaker_registry.sources.mlflow_compat import WEBHOOKS_SINCE
from mlflow_sagemaker_registry.triggers.cli import cli

pytestmark = pytest.mark.mlflow_compat


@pytest.mark.skipif(
    hasattr(mlflow.MlflowClient, "create_webhook"),
    reason=f"MLflow {mlflow.__version__} has webhooks (test_webhook_cli.py installs one)",
)
def test_webhook_install_without_mlflow_webhooks_says_what_to_do(
    mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSYNC_WEBHOOK_SECRET", "s" * 32)

    result = CliRunner().invoke(cli, ["webhook", "install", "--url", "https://127.0.0.1:8443/webhook"])

    assert result.exit_code == 2, result.output
    assert f"MLflow webhooks need MLflow {WEBHOOKS_SINCE} or newer" in result.output
    assert f"this is MLflow {mlflow.__version__}" in result.output
    assert "pip install 'mlflow-skinny>=3.3'" in result.output
    assert "Traceback" not in result.output
