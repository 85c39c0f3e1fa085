"""mlsync's webhook on the MLflow server: create or update it, and have MLflow send it a test event.

MLflow has no webhook CLI, only `MlflowClient.create_webhook` / `update_webhook` / `test_webhook`. Point
the client at the tracking server (an http(s) URI), not at its database: the server encrypts webhook
secrets with its own `MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`, and a secret written with another key is
one it cannot read back. The webhook is found again by name, so `install` is safe to rerun, and a rerun
with a new `MLSYNC_WEBHOOK_SECRET` is how the secret is rotated (docs/webhooks.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ...config import Settings
from ...errors import SourceError

DEFAULT_NAME = "mlsync"
DESCRIPTION = "mlsync: mirror registry changes into the SageMaker Model Registry"


@dataclass(frozen=True)
class Installed:
    """The webhook `install` left on the server."""

    webhook_id: str
    created: bool


@dataclass(frozen=True)
class DeliveryReport:
    """What MLflow reported after sending a test event (the answer of our receiver, or its error)."""

    success: bool
    status: int | None
    body: str
    error: str


def install_webhook(
    settings: Settings, url: str, events: Sequence[str], name: str = DEFAULT_NAME
) -> Installed:
    """Create the webhook `name`, or update it in place: URL, events, secret, and status ACTIVE."""
    secret = settings.require_webhook_secret()
    client = _client(settings)
    with _failures(f"installing webhook {name!r}"):
        existing = _find(client, name)
        if existing is None:
            hook = client.create_webhook(
                name=name,
                url=url,
                events=list(events),
                description=DESCRIPTION,
                secret=secret,
                status="ACTIVE",
            )
            return Installed(hook.webhook_id, created=True)
        client.update_webhook(
            existing.webhook_id, url=url, events=list(events), secret=secret, status="ACTIVE"
        )
        return Installed(existing.webhook_id, created=False)


def send_test_event(settings: Settings, name: str = DEFAULT_NAME, event: str | None = None) -> DeliveryReport:
    """Ask MLflow to send webhook `name` a signed example of `event` (default: its first event).

    MLflow's example payloads name a model `example_model`, so the receiver acknowledges the delivery
    and then logs that it cannot reconcile a model that does not exist; the acknowledgement is the test.
    """
    client = _client(settings)
    with _failures(f"testing webhook {name!r}"):
        hook = _find(client, name)
        if hook is None:
            raise SourceError(f"no webhook named {name!r} on the MLflow server; run `mlsync webhook install`")
        result = client.test_webhook(hook.webhook_id, event)
    return DeliveryReport(
        success=bool(result.success),
        status=result.response_status,
        body=result.response_body or "",
        error=result.error_message or "",
    )


def _client(settings: Settings) -> Any:
    """An `MlflowClient` with the webhook API (ConfigError naming the fix when MLflow is older than 3.3)."""
    import mlflow  # only for these commands: importing mlflow takes a while

    from ...sources.mlflow_compat import require_webhooks

    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)
    require_webhooks(client)
    return client


def _find(client: Any, name: str) -> Any:
    """The one webhook called `name`, or None."""
    found, token = [], None
    while True:
        page = client.list_webhooks(max_results=100, page_token=token)
        found += [hook for hook in page if hook.name == name]
        token = page.token
        if not token:
            break
    if len(found) > 1:
        ids = ", ".join(hook.webhook_id for hook in found)
        raise SourceError(
            f"{len(found)} webhooks are named {name!r} ({ids}); delete all but one, or use --name"
        )
    return found[0] if found else None


@contextmanager
def _failures(action: str) -> Iterator[None]:
    """MLflow's errors (and unreachable servers) as one `SourceError` naming what was being done."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except NotImplementedError as exc:  # e.g. a SQL store reached directly cannot send test events
        raise SourceError(
            f"{action} failed: {exc}; point --tracking-uri / MLFLOW_TRACKING_URI at the tracking server"
        ) from exc
    except (MlflowException, OSError) as exc:
        raise SourceError(f"{action} on the MLflow server failed: {exc}") from exc
