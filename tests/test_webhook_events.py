"""`mlsync serve`'s `POST /events`: SageMaker's EventBridge events through an API destination.

The HTTP layer (token, body, status codes) with a recording stand-in for the answer, then the real path
(the Lambda handler's `answer_event`) over real SQLite MLflow and the in-process SageMaker emulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping

import boto3
import mlflow
import pytest
from e2e_support import reviewer
from mlflow_models import log_version
from test_webhook import SECRET, FakeEngine, request, serving

from mlflow_sagemaker_registry.config import load_settings
from mlflow_sagemaker_registry.emulator import WRITE_OPERATIONS, emulated_aws
from mlflow_sagemaker_registry.lambda_handler import answer_event
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN, TAG_REVIEW_DESCRIPTION
from mlflow_sagemaker_registry.triggers.reconcile import Runner
from mlflow_sagemaker_registry.triggers.webhook.receiver import (
    MAX_BODY_BYTES,
    EventsRoute,
    ReconcileService,
    WebhookReceiver,
    create_app,
)
from mlflow_sagemaker_registry.wiring import connect

TOKEN = "events-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


class Answers:
    """Records the events the route hands on, and answers with a chosen outcome."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.outcome: Mapping[str, object] = {"status": "pulled", "model": "churn"}

    def __call__(self, event: object) -> Mapping[str, object]:
        self.events.append(event)
        return self.outcome


def events_server(
    answer: Callable[[object], Mapping[str, object]], max_body: int = MAX_BODY_BYTES
) -> Iterator[tuple[str, int]]:
    reconciles = ReconcileService(FakeEngine().runner(), every=None, drain_timeout=5, quiet=0.02)
    receiver = WebhookReceiver(SECRET, reconciles.submit)
    app = create_app(receiver, reconciles, max_body=max_body, events=EventsRoute(TOKEN, answer))
    with serving(app) as address:
        yield address


@pytest.fixture
def answers() -> Answers:
    return Answers()


@pytest.fixture
def server(answers: Answers) -> Iterator[tuple[str, int]]:
    yield from events_server(answers, max_body=1024)


def test_an_event_with_the_token_is_answered_by_the_lambda_path(
    server: tuple[str, int], answers: Answers
) -> None:
    event = {"source": "aws.sagemaker", "detail": {"ModelPackageArn": "arn"}}
    assert request(server, "POST", "/events", json.dumps(event).encode(), BEARER) == (
        200,
        {"status": "pulled", "model": "churn"},
    )
    assert answers.events == [event]
    answers.outcome = {"status": "ignored", "reason": "not mlsync's"}
    assert request(server, "POST", "/events", b"{}", BEARER)[0] == 200  # retrying would change nothing


def test_a_failed_pull_answers_503_so_eventbridge_retries(server: tuple[str, int], answers: Answers) -> None:
    answers.outcome = {"status": "failed", "reason": "MLflow is down"}
    assert request(server, "POST", "/events", b"{}", BEARER) == (
        503,
        {"status": "failed", "reason": "MLflow is down"},
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN + "x"},
        {"Authorization": f"Basic {TOKEN}"},
    ],
)
def test_without_the_token_nothing_is_handed_on(
    server: tuple[str, int], answers: Answers, headers: dict[str, str]
) -> None:
    assert request(server, "POST", "/events", b"{}", headers) == (
        401,
        {"status": "rejected", "reason": "unauthorized"},
    )
    assert answers.events == []


def test_a_body_that_is_not_json_or_too_large_is_refused(server: tuple[str, int], answers: Answers) -> None:
    assert request(server, "POST", "/events", b"{not json", BEARER)[0] == 400
    assert request(server, "POST", "/events", b"{" + b" " * 2000 + b"}", BEARER)[0] == 413
    assert answers.events == []


def test_without_a_token_the_route_does_not_exist() -> None:
    reconciles = ReconcileService(FakeEngine().runner(), every=None, drain_timeout=5, quiet=0.02)
    with serving(create_app(WebhookReceiver(SECRET, reconciles.submit), reconciles)) as address:
        assert request(address, "POST", "/events", b"{}", BEARER)[0] == 404


def test_a_review_in_sagemaker_reaches_mlflow_through_the_route(mlflow_uri: str) -> None:
    with emulated_aws() as backend:
        boto3.client("s3").create_bucket(Bucket="mlsync-events-route")
        log_version("churn", seed=1)
        engine = connect(load_settings({"s3_prefix": "s3://mlsync-events-route/mlsync"}, env={}))
        engine.push(["churn"])
        arn = mlflow.MlflowClient().get_model_version("churn", "1").tags[TAG_PACKAGE_ARN]
        reviewer(None).update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus="Rejected", ApprovalDescription="bias found"
        )
        (event,) = [e for e in backend.events() if e["detail"].get("ApprovalDescription") == "bias found"]
        runner = Runner(lambda: engine, engine.gateways.source)
        mark = len(backend.calls())
        for address in events_server(lambda sent: answer_event(sent, lambda: (engine, runner))):
            status, answer = request(address, "POST", "/events", json.dumps(event).encode(), BEARER)

        assert (status, answer.get("status"), answer.get("model")) == (200, "pulled", "churn"), answer
        assert [c.operation for c in backend.calls()[mark:] if c.operation in WRITE_OPERATIONS] == []
    tags = mlflow.MlflowClient().get_model_version("churn", "1").tags
    assert (tags["sagemaker.approval"], tags[TAG_REVIEW_DESCRIPTION]) == ("Rejected", "bias found")
