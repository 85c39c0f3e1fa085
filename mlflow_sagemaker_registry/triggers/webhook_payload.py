"""What MLflow's registry webhooks carry, and the part of it mlsync acts on (pure, no I/O).

A delivery's body is `{"entity", "action", "timestamp", "data"}` (mlflow/webhooks/delivery.py), and for
every registry event `data.name` is the registered model. A reconcile mirrors a whole model, so the model
name is all the receiver needs, plus the tag key to recognise the tags mlsync writes itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..mapping import TAG_PACKAGE_ARN, TAG_SYNC_STATUS

EVENTS = (
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
)
"""The registry events mlsync subscribes to and accepts: every one MLflow has that can change a package."""

OWN_TAGS = frozenset({TAG_PACKAGE_ARN, TAG_SYNC_STATUS})
"""Version tags each reconcile writes; reconciling again because one was set would only loop."""


@dataclass(frozen=True)
class ModelEvent:
    """The part of a delivery mlsync acts on."""

    event: str
    model: str
    tag: str | None = None

    @property
    def is_own_tag(self) -> bool:
        """A tag mlsync itself set after a reconcile (deleting one still triggers a reconcile)."""
        return self.event == "model_version_tag.set" and self.tag in OWN_TAGS


def parse_event(body: bytes) -> ModelEvent:
    """The event, model and tag key of a verified delivery body.

    Raises:
        ValueError: the body is not an MLflow webhook payload, names no model, or its event is not one
            of `EVENTS`.
    """
    try:
        payload = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError("body is not JSON") from exc
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise ValueError("body is not an MLflow webhook payload (no data object)")
    event = f"{payload.get('entity')}.{payload.get('action')}"
    if event not in EVENTS:
        raise ValueError(f"unsupported event {event[:80]!r}; mlsync handles {', '.join(EVENTS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{event} payload has no model name")
    tag = data.get("key")
    return ModelEvent(event, name, tag if isinstance(tag, str) else None)
