"""Record the exact requests a boto3 client sends, as the caller built them.

moto drops or rewrites several SageMaker fields (`ClientToken`, `ModelLifeCycle`, metadata on update),
so what it stores cannot prove what mlsync asked for; the request itself can.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.client import BaseClient


@dataclass
class RecordedCalls:
    """(operation name, request parameters) for every call made through one client, in order."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, _snapshot(params)))

    def of(self, operation: str) -> list[dict[str, Any]]:
        """The requests of one operation, e.g. "UpdateModelPackage"."""
        return [params for name, params in self.calls if name == operation]

    @property
    def operations(self) -> list[str]:
        return [name for name, _ in self.calls]


def record_calls(client: BaseClient) -> RecordedCalls:
    """Start recording `client`'s requests (botocore's provide-client-params event, before validation)."""
    recorded = RecordedCalls()
    client.meta.events.register("provide-client-params", recorded)
    return recorded


def _snapshot(value: Any) -> Any:
    """A copy of the request's dicts and lists (botocore adds to them later); bodies are kept as they are."""
    if isinstance(value, dict):
        return {key: _snapshot(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_snapshot(item) for item in value]
    return value
