"""End to end: a real `mlflow server` (SQLite) delivers real signed webhooks to `mlsync serve`.

Three loopback processes, started once for the module: the SageMaker emulator, an `mlflow server`
allowed to post to 127.0.0.1 over http, and `mlsync serve` reading MLflow through that server. The
webhook is installed with `mlsync webhook install`, so MLflow signs every delivery with the secret the
receiver checks. Each test registers its own model through the server, so the webhooks it causes are
its own; forged, replayed and stale deliveries are signed here exactly as MLflow signs them.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import mlflow
import numpy as np
import pytest
from cryptography.fernet import Fernet
from e2e_support import calls_since, mlsync, reviewer
from mlflow_server import mlflow_server
from sklearn.linear_model import LogisticRegression

from mlflow_sagemaker_registry.emulator import EmulatorProcess
from mlflow_sagemaker_registry.mapping.identity import KEY_MODEL, group_name
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN, TAG_REVIEW_DESCRIPTION
from mlflow_sagemaker_registry.triggers.webhook.process import ReceiverProcess
from mlflow_sagemaker_registry.triggers.webhook.receiver import MAX_WAIT_SECONDS
from mlflow_sagemaker_registry.triggers.webhook.signature import signed_headers

pytestmark = pytest.mark.e2e

SECRET = "e2e-webhook-secret-0123456789abcdef"
BUCKET = "mlsync-webhooks"
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Stack:
    root: Path
    emulator: EmulatorProcess
    mlflow_url: str
    receiver: ReceiverProcess
    serve_env: dict[str, str]

    def sagemaker(self) -> Any:
        return aws("sagemaker", self.emulator.url)

    def approvals(self, model: str) -> dict[str, str]:
        """MLflow version -> approval status of its package, for every package of the model's group."""
        sagemaker = self.sagemaker()
        try:
            summaries = sagemaker.list_model_packages(ModelPackageGroupName=group_name(model))
        except sagemaker.exceptions.ClientError:
            return {}
        described = [
            sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"])
            for s in summaries["ModelPackageSummaryList"]
        ]
        return {
            p["CustomerMetadataProperties"]["mlflow.version"]: p["ModelApprovalStatus"] for p in described
        }


def aws(service: str, endpoint: str) -> Any:
    """A boto3 client of the emulator, with the dummy credentials the receiver also uses."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint,
        region_name=AWS["AWS_REGION"],
        aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
    )


def wait_until(condition: Callable[[], object], *, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("webhooks")
    previous_uri = mlflow.get_tracking_uri()
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    server_env |= {
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",  # our receiver is on 127.0.0.1,
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",  # and speaks plain http
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    with EmulatorProcess() as emulator, mlflow_server(root, env=server_env) as mlflow_url:
        aws("s3", emulator.url).create_bucket(Bucket=BUCKET)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLSYNC_", "AWS_"))}
        env |= AWS | {
            "AWS_ENDPOINT_URL": emulator.url,
            "AWS_CONFIG_FILE": str(root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
            "MLFLOW_TRACKING_URI": mlflow_url,
            "MLSYNC_S3_PREFIX": f"s3://{BUCKET}/mlsync",
            "MLSYNC_WEBHOOK_SECRET": SECRET,
        }
        with (
            ReceiverProcess(env, log_path=root / "serve.log") as receiver,
            pytest.MonkeyPatch.context() as patch,
        ):
            installed = mlsync("webhook", "install", "--url", f"{receiver.url}/webhook", env=env)
            assert installed.exit_code == 0, installed.output
            patch.setenv("MLFLOW_TRACKING_URI", mlflow_url)  # set_tracking_uri exports it; restored after
            mlflow.set_tracking_uri(mlflow_url)
            try:
                yield Stack(root, emulator, mlflow_url, receiver, env)
            finally:
                mlflow.set_tracking_uri(previous_uri)


@pytest.fixture
def client(stack: Stack) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(stack.mlflow_url)


@pytest.fixture(scope="module")
def logged_model(stack: Stack) -> str:
    """One small model logged through the server once; each test registers versions of it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(stack.root)
        # Not mlflow.set_experiment: it exports MLFLOW_EXPERIMENT_ID, which would outlive this module.
        experiment = mlflow.MlflowClient().create_experiment("webhooks")
        features, labels = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]]), np.array([0, 0, 1, 1])
        with mlflow.start_run(experiment_id=experiment):
            mlflow.log_params({"C": 1.0})
            mlflow.log_metric("accuracy", 0.75)
            info = mlflow.sklearn.log_model(
                LogisticRegression().fit(features, labels), name="model", pip_requirements=["scikit-learn"]
            )
    uri: str = info.model_uri
    return uri


def register(stack: Stack, model_uri: str, model: str, versions: int = 1) -> None:
    """Register `versions` versions of `model`; return once they are mirrored and the receiver idle."""
    for _ in range(versions):
        mlflow.register_model(model_uri, model)
    expected = {str(n): "PendingManualApproval" for n in range(1, versions + 1)}
    wait_until(lambda: stack.approvals(model) == expected, what=f"packages of {model!r}")
    wait_until(lambda: settled(stack), what="the receiver to settle")


def delivery(model: str) -> bytes:
    """The body MLflow posts when a version of `model` is created."""
    payload = {"entity": "model_version", "action": "created", "timestamp": "", "data": {"name": model}}
    return json.dumps(payload).encode()


def signed(body: bytes, secret: str = SECRET, *, age: float = 0) -> dict[str, str]:
    """Headers as MLflow signs them, for a delivery sent `age` seconds ago."""
    return signed_headers(secret, body, str(uuid.uuid4()), str(int(time.time() - age)))


def reconciles(stack: Stack) -> int:
    runs: int = stack.receiver.health()["reconciles"]["runs"]
    return runs


def settled(stack: Stack) -> bool:
    queue = stack.receiver.health()["reconciles"]
    return bool(queue["waiting"] == 0 and queue["running"] == 0)


def test_registering_a_version_creates_its_package(
    stack: Stack, client: mlflow.MlflowClient, logged_model: str
) -> None:
    model = "webhook churn"
    register(stack, logged_model, model)

    wait_until(lambda: TAG_PACKAGE_ARN in client.get_model_version(model, "1").tags, what="the back-link")
    described = stack.sagemaker().describe_model_package(
        ModelPackageName=client.get_model_version(model, "1").tags[TAG_PACKAGE_ARN]
    )
    assert described["CustomerMetadataProperties"][KEY_MODEL] == model


def test_setting_alias_champion_approves_the_version(
    stack: Stack, client: mlflow.MlflowClient, logged_model: str
) -> None:
    model = "webhook champion"
    register(stack, logged_model, model, versions=2)

    client.set_registered_model_alias(model, "champion", "2")

    wait_until(lambda: stack.approvals(model) == {"1": "PendingManualApproval", "2": "Approved"})


def test_approval_tag_set_and_deleted_maps(
    stack: Stack, client: mlflow.MlflowClient, logged_model: str
) -> None:
    model = "webhook tagged"
    register(stack, logged_model, model)

    client.set_model_version_tag(model, "1", "sagemaker.approval", "Approved")
    wait_until(lambda: stack.approvals(model) == {"1": "Approved"}, what="the tag to approve")
    client.delete_model_version_tag(model, "1", "sagemaker.approval")
    # Back to the stage's PendingManualApproval, which SageMaker cannot return to: Rejected instead.
    wait_until(lambda: stack.approvals(model) == {"1": "Rejected"}, what="the deleted tag to demote")


def test_a_review_survives_an_unrelated_change_and_its_pull_does_not_come_back(
    stack: Stack, client: mlflow.MlflowClient, logged_model: str
) -> None:
    model = "webhook reviewed"
    register(stack, logged_model, model)
    arn = client.get_model_version(model, "1").tags[TAG_PACKAGE_ARN]
    reviewer(stack.emulator.url).update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="risk review passed"
    )
    mark = len(stack.emulator.calls())

    mlflow.register_model(logged_model, model)  # version 2: a webhook, a reconcile of the model

    pulled = lambda: client.get_model_version(model, "1").tags.get("sagemaker.approval")  # noqa: E731
    wait_until(lambda: pulled() == "Approved", what="the review to reach MLflow")
    wait_until(lambda: settled(stack), what="the receiver to settle")
    assert stack.approvals(model) == {"1": "Approved", "2": "PendingManualApproval"}
    updates = [c.params for c in calls_since(stack.emulator, mark) if c.operation == "UpdateModelPackage"]
    assert not [p for p in updates if p["ModelPackageArn"] == arn and "ModelApprovalStatus" in p]
    assert client.get_model_version(model, "1").tags[TAG_REVIEW_DESCRIPTION] == "risk review passed"
    # The pull's own tag writes came back as deliveries; they are echoes, not news.
    runs, ignored = reconciles(stack), stack.receiver.health()["deliveries"].get("ignored", 0)
    assert ignored >= 1
    time.sleep(MAX_WAIT_SECONDS / 2)
    assert reconciles(stack) == runs and settled(stack)


def test_wrong_secret_is_refused_with_401_and_changes_nothing(
    stack: Stack, client: mlflow.MlflowClient, logged_model: str
) -> None:
    model = "webhook forged"
    register(stack, logged_model, model)
    # A stage transition fires no webhook: MLflow now wants Approved, SageMaker still has Pending.
    client.transition_model_version_stage(model, "1", "Production")
    mark, runs = len(stack.emulator.calls()), reconciles(stack)

    # MLflow itself signing with another secret (a disabled webhook can still be sent a test event).
    other = client.create_webhook(
        "wrong-secret",
        f"{stack.receiver.url}/webhook",
        ["model_version.created"],
        secret="not-the-secret",
        status="DISABLED",
    )
    try:
        tested = mlsync("webhook", "test", "--name", "wrong-secret", env=stack.serve_env)
    finally:
        client.delete_webhook(other.webhook_id)
    assert tested.exit_code == 1
    assert tested.output.startswith('failed: HTTP 401 {"status":"rejected","reason":"invalid signature"}')
    body = delivery(model)
    status, answer = stack.receiver.post(body, signed(body, "not-the-secret"))
    assert (status, answer) == (401, {"status": "rejected", "reason": "invalid signature"})

    time.sleep(MAX_WAIT_SECONDS / 2)  # longer than a reconcile waits for quiet
    assert reconciles(stack) == runs and settled(stack)
    assert calls_since(stack.emulator, mark) == []  # not even a read
    assert stack.approvals(model) == {"1": "PendingManualApproval"}
    # The same delivery, correctly signed, would have changed it.
    assert stack.receiver.post(body, signed(body))[0] == 202
    wait_until(lambda: stack.approvals(model) == {"1": "Approved"})

    log = stack.receiver.log_path.read_text()
    assert "rejected delivery" in log and "signature does not match" in log
    assert SECRET not in log and "not-the-secret" not in log and body.decode() not in log


def test_replayed_delivery_is_acknowledged_once_and_reconciled_once(
    stack: Stack, client: mlflow.MlflowClient, logged_model: str
) -> None:
    model = "webhook replayed"
    register(stack, logged_model, model)
    before = stack.receiver.health()
    body = delivery(model)
    headers = signed(body)

    first = stack.receiver.post(body, headers)
    replays = [stack.receiver.post(body, headers) for _ in range(3)]

    assert first == (202, {"status": "accepted"})
    assert replays == [(200, {"status": "duplicate"})] * 3
    wait_until(lambda: reconciles(stack) > before["reconciles"]["runs"] and settled(stack))
    after = stack.receiver.health()
    assert after["reconciles"]["runs"] == before["reconciles"]["runs"] + 1
    assert after["deliveries"]["duplicate"] == before["deliveries"].get("duplicate", 0) + 3
    assert stack.approvals(model) == {"1": "PendingManualApproval"}


@pytest.mark.parametrize("age", [3600, -3600], ids=["stale", "future"])
def test_delivery_outside_the_replay_window_is_rejected(stack: Stack, age: float) -> None:
    body = delivery("webhook churn")
    before = stack.receiver.health()

    status, _ = stack.receiver.post(body, signed(body, age=age))

    assert status == 401
    after = stack.receiver.health()
    assert after["deliveries"]["rejected"] == before["deliveries"]["rejected"] + 1
    assert after["deliveries"].get("accepted") == before["deliveries"].get("accepted")


def test_burst_of_200_alias_moves_costs_a_bounded_number_of_reconciles(
    stack: Stack, client: mlflow.MlflowClient, logged_model: str
) -> None:
    model = "webhook burst"
    register(stack, logged_model, model, versions=2)
    before = stack.receiver.health()
    mark = len(stack.emulator.calls())

    started = time.monotonic()
    for move in range(200):
        client.set_registered_model_alias(model, "champion", str(1 + move % 2))  # ends on version 2
    burst = time.monotonic() - started
    accepted = before["deliveries"].get("accepted", 0) + 200
    wait_until(
        lambda: stack.receiver.health()["deliveries"].get("accepted", 0) >= accepted and settled(stack),
        timeout=60,
        what="200 deliveries and their reconciles",
    )

    runs = reconciles(stack) - before["reconciles"]["runs"]
    observed = [
        c
        for c in calls_since(stack.emulator, mark)
        if c.operation == "DescribeModelPackageGroup"
        and c.params["ModelPackageGroupName"] == group_name(model)
    ]
    # Coalescing: one reconcile per MAX_WAIT_SECONDS of uninterrupted changes, plus the first and last.
    bound = math.ceil(burst / MAX_WAIT_SECONDS) + 2
    print(f"200 alias moves in {burst:.1f} s -> {runs} reconciles (bound {bound})")
    assert 1 <= runs <= bound
    assert len(observed) == runs
    # Right final state: champion's version approved, and nothing left for a fresh reconcile to do.
    assert stack.approvals(model)["2"] == "Approved"
    assert stack.approvals(model)["1"] != "Approved"
    plan = mlsync("--output", "json", "plan", model, env=stack.serve_env)
    assert json.loads(plan.output)["actions"] == [], plan.output


def test_periodic_reconcile_mirrors_stage_transitions(
    stack: Stack, client: mlflow.MlflowClient, logged_model: str
) -> None:
    model = "webhook staged"
    register(stack, logged_model, model)
    with ReceiverProcess(
        stack.serve_env, log_path=stack.root / "periodic.log", args=["--reconcile-every", "1s"]
    ) as periodic:
        wait_until(lambda: periodic.health()["reconciles"]["runs"] >= 1, what="the startup reconcile")
        client.transition_model_version_stage(model, "1", "Archived")  # no webhook fires for this

        wait_until(lambda: stack.approvals(model) == {"1": "Rejected"}, what="the periodic reconcile")
        assert periodic.health()["deliveries"] == {}


def test_shutdown_finishes_queued_reconciles(
    stack: Stack, client: mlflow.MlflowClient, logged_model: str
) -> None:
    model = "webhook shutdown"
    register(stack, logged_model, model)
    receiver = ReceiverProcess(stack.serve_env, log_path=stack.root / "shutdown.log")
    receiver.start()
    wait_until(lambda: receiver.health()["reconciles"]["runs"] >= 1, what="the startup reconcile")
    client.transition_model_version_stage(model, "1", "Production")  # no webhook: left to the delivery

    body = delivery(model)
    assert receiver.post(body, signed(body))[0] == 202
    code = receiver.stop(signal.SIGTERM)  # while the reconcile still waits for quiet

    assert code == -signal.SIGTERM  # uvicorn re-raises the signal once it has shut down gracefully
    assert stack.approvals(model) == {"1": "Approved"}
    log = receiver.log_path.read_text()
    assert "reconciled model 'webhook shutdown'" in log and "not started" not in log


def test_install_again_updates_in_place_and_test_event_is_accepted(
    stack: Stack, client: mlflow.MlflowClient
) -> None:
    url = f"{stack.receiver.url}/webhook"

    again = mlsync(
        "webhook", "install", "--url", url, "--events", "model_version.created", env=stack.serve_env
    )
    tested = mlsync("webhook", "test", env=stack.serve_env)

    assert again.exit_code == 0 and again.output.startswith("updated webhook 'mlsync'"), again.output
    (hook,) = [h for h in client.list_webhooks() if h.name == "mlsync"]
    assert [str(e) for e in hook.events] == ["model_version.created"]
    assert tested.exit_code == 0, tested.output
    assert tested.output.startswith("delivered: HTTP 202")
    restored = mlsync("webhook", "install", "--url", url, env=stack.serve_env)
    assert restored.exit_code == 0, restored.output
