"""What MLflow's registry webhooks carry, and the part of it mlsync acts on (pure, no I/O).

A delivery's body is `{"entity", "action", "timestamp", "data"}` (mlflow/webhooks/delivery.py), and for
every registry event `data.name` is the registered model. A reconcile mirrors a whole model, so the model
name is all the receiver needs to queue a `Job` (reconcile.py), plus `data.version` (where a failure is
recorded), and the tag key and value, to recognise the tags mlsync writes itself and the echo of a tag
write mlsync just made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ...mapping.tags import is_own_tag
from ..reconcile import Job

TAG_SET = "model_version_tag.set"
EVENTS = (
    "registered_model.created",
    "model_version.created",
    TAG_SET,
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
)
"""The registry events mlsync subscribes to and accepts: every one MLflow has that can change a package."""


@dataclass(frozen=True)
class TagWrite:
    """One version tag set to one value: what a `model_version_tag.set` delivery reports."""

    model: str
    version: str
    key: str
    value: str


@dataclass(frozen=True)
class ModelEvent:
    """The part of a delivery mlsync acts on."""

    event: str
    model: str
    tag: str | None = None
    version: str | None = None
    value: str | None = None

    @property
    def is_own_tag(self) -> bool:
        """A tag only mlsync sets (`mapping.tags.is_own_tag`): reconciling again for it would only loop.
        Deleting one still triggers a reconcile."""
        return self.event == TAG_SET and self.tag is not None and is_own_tag(self.tag)

    @property
    def tag_write(self) -> TagWrite | None:
        """The tag write a `model_version_tag.set` delivery reports (None for other events)."""
        if self.event != TAG_SET or self.version is None or self.tag is None or self.value is None:
            return None
        return TagWrite(self.model, self.version, self.tag, self.value)

    @property
    def job(self) -> Job:
        """The reconcile the delivery asks for: its model, touched at its version (if it names one)."""
        return Job(self.model, versions=frozenset() if self.version is None else frozenset({self.version}))


def parse_event(body: bytes) -> ModelEvent:
    """The event, model, version and tag of a verified delivery body.

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
    return ModelEvent(
        event, name, _text(data.get("key")), _text(data.get("version")), _text(data.get("value"))
    )


def _text(value: object) -> str | None:
    """A payload field that should be a string (MLflow's payload types say so), or None."""
    return value if isinstance(value, str) else None
