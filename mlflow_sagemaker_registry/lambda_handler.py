"""AWS Lambda entry point for SageMaker's own events: a review made in SageMaker reaches MLflow at once.

Point the function's handler at `mlflow_sagemaker_registry.lambda_handler.handler` and an EventBridge rule
for `aws.sagemaker` "SageMaker Model Package State Change" events at the function (docs/eventbridge.md).

For each event: parse it (triggers/eventbridge.py), find the MLflow model from the package's metadata as
SageMaker holds it now (`Engine.model_of_package`), and hand `Job(model, Kind.PULL)` to a `Runner`
(triggers/reconcile.py), which calls `Engine.pull([model])`. A pull reads SageMaker's current approvals
of that model and writes only MLflow, so it never trusts the event's copy of the package: an event that
arrives twice, or after a newer one, pulls the same current state again and changes nothing.

The handler never raises. Lambda retries a failed asynchronous invocation and then drops it: an event
that is malformed or not mlsync's would fail again on every retry, and a pull that failed (MLflow down)
is repaired by the next event of that model or any `mlsync pull` or `mlsync push`. Everything,
building the engine included, runs inside a catch-all that logs and answers `{"status": "failed"}`.

Settings come from the environment as for every mlsync entry point (`load_settings()`: `MLSYNC_*`,
`MLFLOW_TRACKING_URI`, an `mlsync.toml` in the working directory; AWS credentials and region from
boto3's own chain, i.e. the function's role). The engine is built once per Lambda container, at its first
event, and kept for the next ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, TypedDict

from .config import load_settings
from .engine import Engine
from .errors import MlsyncError, NotFoundError
from .triggers.eventbridge import Ignored, parse_event
from .triggers.reconcile import Job, Kind, Runner

log = logging.getLogger(__name__)


class Outcome(TypedDict, total=False):
    """What the handler did with one event: JSON-able, for the function's logs, destinations and tests.

    `status` is always there: "pulled" (MLflow now records SageMaker's approvals of `model`), "ignored"
    (`reason` says why) or "failed" (`reason`, and the log, say why).
    """

    status: Literal["pulled", "ignored", "failed"]
    reason: str
    model: str
    package: str


_mirror: tuple[Engine, Runner] | None = None
"""This container's engine and the runner that pulls through it."""


def handler(event: object, context: object) -> Outcome:
    """Pull SageMaker's current approvals of the model whose package the event is about into MLflow.

    Args:
        event: What EventBridge delivers (anything, as far as the handler is concerned).
        context: Lambda's context object; unused.

    Returns:
        An `Outcome`; never raises.
    """
    return answer_event(event, _container_mirror)


def answer_event(event: object, mirror: Callable[[], tuple[Engine, Runner]]) -> Outcome:
    """`handle_event` inside the catch-all: an `Outcome` always, never an exception."""
    try:
        return handle_event(event, mirror)
    except Exception as exc:  # a raise would only make Lambda retry; the log line is what helps
        log.error(
            "mlsync: an event could not be handled: %s; the next event of the model, or `mlsync pull`, "
            "pulls its reviews",
            exc,
            # mlsync's own errors say what to do; anything else is a bug whose traceback is needed.
            exc_info=not isinstance(exc, MlsyncError),
        )
        return {"status": "failed", "reason": str(exc) or type(exc).__name__}


def forget_engine() -> None:
    """Drop this container's engine, so that the next event builds one from the environment as it is then.

    Lambda never needs this (a container's environment does not change); tests call it between cases that
    set different environments.
    """
    global _mirror
    _mirror = None


def handle_event(event: object, mirror: Callable[[], tuple[Engine, Runner]]) -> Outcome:
    """What `handler` does, with the engine and runner `mirror` gives (built only for a package event).

    `mlsync serve` calls it for EventBridge events posted to `/events`, with its own engine.

    Raises:
        MlsyncError: the package could not be read from SageMaker, or the engine not built.
    """
    parsed = parse_event(event)
    if isinstance(parsed, Ignored):
        return _ignored(parsed.reason, warn=parsed.malformed)
    engine, runner = mirror()
    arn = parsed.arn
    try:
        model = engine.model_of_package(arn)
    except NotFoundError:
        return _ignored(f"{arn} no longer exists (deleted since): nothing to pull", warn=False)
    if model is None:
        return _ignored(
            f"{arn} was not mirrored by mlsync from this MLflow registry ({engine.source.identity()})",
            warn=False,
        )
    fields = f" ({', '.join(parsed.updated_fields)})" if parsed.updated_fields else ""
    log.info("mlsync: %s changed%s: pulling model %r", arn, fields, model)
    if runner.run(Job(model, Kind.PULL)):
        return {"status": "pulled", "model": model, "package": arn}
    return {
        "status": "failed",
        "model": model,
        "package": arn,
        "reason": f"pulling model {model!r} failed; the log says why",
    }


def _container_mirror() -> tuple[Engine, Runner]:
    """This container's engine and runner, built at the first event that needs them.

    A failed build is not kept, so the next event tries again (after a fix to the function's settings,
    Lambda starts new containers anyway).
    """
    global _mirror
    if _mirror is None:
        # Imports boto3 and mlflow: here, inside the handler's catch-all, a broken install is an answered
        # and logged failure rather than an import error at the function's start.
        from .wiring import connect

        settings = load_settings()
        settings.require_s3_prefix()  # the mapping a pull compares with names S3 documents
        engine = connect(settings)
        _mirror = engine, Runner(lambda: engine, engine.gateways.source)
    return _mirror


def _ignored(reason: str, *, warn: bool) -> Outcome:
    log.log(logging.WARNING if warn else logging.INFO, "mlsync: ignored an event: %s", reason)
    return {"status": "ignored", "reason": reason}
