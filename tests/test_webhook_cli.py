"""`mlsync serve` and `mlsync webhook install|test` as a user types them (click's CliRunner).

`install` runs against a SQLite registry here (the SQL store has the webhook API too); sending test
events needs a server, so `webhook test`'s success path is in test_webhook_e2e.py.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pytest
from click.testing import CliRunner, Result

from mlflow_sagemaker_registry.triggers.cli import cli
from mlflow_sagemaker_registry.triggers.cli.shell import Context
from mlflow_sagemaker_registry.triggers.cli.webhook import parse_duration
from mlflow_sagemaker_registry.triggers.webhook import receiver as webhook
from mlflow_sagemaker_registry.triggers.webhook.payload import EVENTS


def mlsync(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("2.5", 2.5), ("45s", 45), ("5m", 300), ("1h30m", 5400), ("1.5d", 129600), (" 10m ", 600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "5 m", "5w", "-5s", "1h-30m", "5m3", "1e3"])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Stand in for the engine and the server: what `serve` would run with."""
    calls: dict[str, Any] = {}
    engine = object()
    monkeypatch.setattr(
        Context, "engines", lambda _self, settings: calls.setdefault("settings", settings) and [engine]
    )
    monkeypatch.setattr(webhook, "serve", lambda *args, **kwargs: calls.update(args=args, kwargs=kwargs))
    monkeypatch.setenv("MLSYNC_S3_PREFIX", "s3://bucket/mlsync")
    monkeypatch.setenv("MLSYNC_WEBHOOK_SECRET", "k3y")
    calls["engine"] = engine
    return calls


def test_serve_runs_the_receiver_with_the_engine_secret_and_options(served: dict[str, Any]) -> None:
    result = mlsync("serve", "--host", "0.0.0.0", "--port", "0", "--reconcile-every", "1h30m")

    assert result.exit_code == 0, result.output
    assert served["args"] == ([served["engine"]], "k3y")
    kwargs = served["kwargs"]
    assert (kwargs["host"], kwargs["port"], kwargs["reconcile_every"], kwargs["drain_timeout"]) == (
        "0.0.0.0",
        0,
        5400.0,
        30.0,
    )


def test_serve_defaults_to_loopback_and_no_periodic_reconcile(served: dict[str, Any]) -> None:
    assert mlsync("serve", "--drain-timeout", "0").exit_code == 0
    kwargs = served["kwargs"]
    assert (kwargs["host"], kwargs["port"], kwargs["reconcile_every"], kwargs["drain_timeout"]) == (
        "127.0.0.1",
        8000,
        None,
        0.0,
    )


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ("MLSYNC_WEBHOOK_SECRET", "no webhook secret: set MLSYNC_WEBHOOK_SECRET"),
        ("MLSYNC_S3_PREFIX", "no S3 prefix"),
    ],
)
def test_serve_refuses_to_start_without_a_secret_or_an_s3_prefix(
    served: dict[str, Any], monkeypatch: pytest.MonkeyPatch, variable: str, message: str
) -> None:
    monkeypatch.delenv(variable)
    result = mlsync("serve")
    assert result.exit_code == 2 and message in result.output
    assert "args" not in served


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--reconcile-every", "0", "must be more than zero"),
        ("--reconcile-every", "soon", "is not a duration"),
        ("--drain-timeout", "1y", "is not a duration"),
        ("--port", "70000", "not in the range"),
    ],
)
def test_serve_refuses_bad_options(served: dict[str, Any], option: str, value: str, message: str) -> None:
    result = mlsync("serve", option, value)
    assert result.exit_code == 2 and message in result.output


def test_a_port_in_use_is_an_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Context, "engines", lambda _self, _settings: [object()])
    monkeypatch.setenv("MLSYNC_S3_PREFIX", "s3://bucket/mlsync")
    monkeypatch.setenv("MLSYNC_WEBHOOK_SECRET", "k3y")
    with webhook.listen("127.0.0.1", 0) as taken:
        result = mlsync("serve", "--port", str(taken.getsockname()[1]))
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot listen on 127.0.0.1:")


# -- webhook install / test ---------------------------------------------------------------------


@pytest.fixture
def registry(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> mlflow.MlflowClient:
    monkeypatch.setenv("MLSYNC_WEBHOOK_SECRET", "k3y")
    # MLflow resolves a webhook's host when it is saved and refuses private addresses by default; there
    # is no DNS here, so the URLs below are loopback ones.
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
    return mlflow.MlflowClient(mlflow_uri)


def test_install_creates_the_webhook_with_the_secret_and_every_event(registry: mlflow.MlflowClient) -> None:
    result = mlsync("webhook", "install", "--url", "https://127.0.0.1:8443/webhook")

    assert result.exit_code == 0, result.output
    (hook,) = registry.list_webhooks()
    assert result.output.startswith(f"created webhook 'mlsync' ({hook.webhook_id}): https://127.0.0.1:8443")
    assert (hook.name, hook.url, str(hook.status)) == (
        "mlsync",
        "https://127.0.0.1:8443/webhook",
        "ACTIVE",
    )
    assert sorted(str(event) for event in hook.events) == sorted(EVENTS)
    assert hook.secret == "k3y"


def test_install_again_updates_the_same_webhook(
    registry: mlflow.MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mlsync("webhook", "install", "--url", "https://127.0.0.1:8001/webhook").exit_code == 0
    (first,) = registry.list_webhooks()
    registry.update_webhook(first.webhook_id, status="DISABLED")
    monkeypatch.setenv("MLSYNC_WEBHOOK_SECRET", "rotated")

    result = mlsync(
        "webhook",
        "install",
        "--url",
        "https://127.0.0.2:8002/webhook",
        "--events",
        "model_version.created,model_version_alias.created",
        "--events",
        "model_version_tag.set",
    )

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"updated webhook 'mlsync' ({first.webhook_id})")
    (hook,) = registry.list_webhooks()
    assert (hook.webhook_id, hook.url, str(hook.status), hook.secret) == (
        first.webhook_id,
        "https://127.0.0.2:8002/webhook",
        "ACTIVE",
        "rotated",
    )
    assert sorted(str(e) for e in hook.events) == [
        "model_version.created",
        "model_version_alias.created",
        "model_version_tag.set",
    ]


def test_install_refuses_an_event_mlsync_does_not_handle(registry: mlflow.MlflowClient) -> None:
    result = mlsync(
        "webhook", "install", "--url", "https://127.0.0.1:8001/webhook", "--events", "prompt.created"
    )
    assert result.exit_code == 2 and "prompt.created: choose from registered_model.created" in result.output
    assert list(registry.list_webhooks()) == []


def test_install_refuses_without_a_secret(
    registry: mlflow.MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLSYNC_WEBHOOK_SECRET")
    result = mlsync("webhook", "install", "--url", "https://127.0.0.1:8001/webhook")
    assert result.exit_code == 2 and "MLSYNC_WEBHOOK_SECRET" in result.output


def test_two_webhooks_of_the_same_name_are_not_guessed_between(registry: mlflow.MlflowClient) -> None:
    for _ in range(2):
        registry.create_webhook("mlsync", "https://127.0.0.1:8001/webhook", ["model_version.created"])
    result = mlsync("webhook", "install", "--url", "https://127.0.0.1:8001/webhook")
    assert result.exit_code == 1 and "2 webhooks are named 'mlsync'" in result.output


def test_mlflow_refusing_the_url_is_an_error_line(registry: mlflow.MlflowClient) -> None:
    # MLflow accepts only https unless MLFLOW_WEBHOOK_ALLOWED_SCHEMES says otherwise.
    result = mlsync("webhook", "install", "--url", "ftp://127.0.0.1/webhook")
    assert result.exit_code == 1
    assert result.output.startswith("error: installing webhook 'mlsync' on the MLflow server failed:")


def test_test_without_the_webhook_says_to_install_it(registry: mlflow.MlflowClient) -> None:
    result = mlsync("webhook", "test")
    assert result.exit_code == 1 and "no webhook named 'mlsync'" in result.output
    assert "mlsync webhook install" in result.output


def test_test_needs_the_tracking_server(registry: mlflow.MlflowClient) -> None:
    registry.create_webhook(
        "mlsync", "https://127.0.0.1:8001/webhook", ["model_version.created"], secret="k3y"
    )
    result = mlsync("webhook", "test")
    assert result.exit_code == 1
    assert "point --tracking-uri / MLFLOW_TRACKING_URI at the tracking server" in result.output
