"""lambda_handler.handler: SageMaker's events, as the emulator emits them, pull reviews into MLflow.

In process: the SageMaker emulator (`emulated_aws()`), moto's S3, a real SQLite MLflow with real sklearn
versions. mlsync pushes the model first; a reviewer (another AWS identity) then approves or rejects in
SageMaker, and the events the emulator emitted for that are handed to the handler, which reads its
settings from the process environment, as in Lambda.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import mlflow
import pytest
from e2e_support import calls_since, writes
from mlflow_models import log_version

from mlflow_sagemaker_registry.config import ApprovalRules, load_settings
from mlflow_sagemaker_registry.emulator import Event, RegistryBackend, emulated_aws
from mlflow_sagemaker_registry.lambda_handler import forget_engine, handler
from mlflow_sagemaker_registry.mapping.tags import (
    TAG_PACKAGE_ARN,
    TAG_REVIEW_BY,
    TAG_REVIEW_DESCRIPTION,
    TAG_REVIEW_TIME,
)
from mlflow_sagemaker_registry.wiring import connect

MODEL = "lambda model"
BUCKET = "mlsync-lambda"
PREFIX = f"s3://{BUCKET}/mlsync"
REVIEWER_KEY = "AKIAREVIEWER0000002"
APPROVAL_TAG = ApprovalRules().tag


@pytest.fixture
def backend(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RegistryBackend]:
    """Two versions pushed by mlsync; then MLflow and mlsync configured only by the environment."""
    with emulated_aws() as emulated:
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        log_version(MODEL, seed=1)
        log_version(MODEL, seed=2)
        assert connect(load_settings({"s3_prefix": PREFIX}, env={})).push([MODEL])[1].ok
        use_environment_uri(mlflow_uri, monkeypatch)
        monkeypatch.setenv("MLSYNC_S3_PREFIX", PREFIX)
        forget_engine()
        yield emulated
        forget_engine()


def use_environment_uri(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow finds its registry as in Lambda: from MLFLOW_TRACKING_URI, no `mlflow.set_tracking_uri`."""
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None forgets the URI; the hint omits it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # set_tracking_uri(None) also unset it


def reviewer() -> Any:
    """A SageMaker client of another identity: the person reviewing packages in SageMaker."""
    return boto3.client(
        "sagemaker",
        region_name="us-east-1",
        aws_access_key_id=REVIEWER_KEY,
        aws_secret_access_key="reviewer-secret",
    )


def package_arn(version: str) -> str:
    return str(mlflow.MlflowClient().get_model_version(MODEL, version).tags[TAG_PACKAGE_ARN])


def review(backend: RegistryBackend, version: str, status: str, why: str) -> Event:
    """Approve or reject the version's package in SageMaker; the one event that emitted."""
    mark = len(backend.events())
    reviewer().update_model_package(
        ModelPackageArn=package_arn(version), ModelApprovalStatus=status, ApprovalDescription=why
    )
    (event,) = backend.events()[mark:]
    return event


def tags(version: str) -> dict[str, str]:
    return dict(mlflow.MlflowClient().get_model_version(MODEL, version).tags)


def handle_all(backend: RegistryBackend, events: list[Event]) -> list[dict[str, Any]]:
    """Hand each event to the handler; the answers. The handler made no SageMaker write, so no event."""
    mark, events_before = len(backend.calls()), len(backend.events())
    answers = [dict(handler(event, None)) for event in events]
    assert writes(calls_since(backend, mark)) == []
    assert len(backend.events()) == events_before
    return answers


def test_a_review_in_sagemaker_reaches_mlflow(backend: RegistryBackend) -> None:
    event = review(backend, "1", "Approved", "fairness review passed")

    assert handle_all(backend, [event]) == [{"status": "pulled", "model": MODEL, "package": package_arn("1")}]

    pulled = tags("1")
    assert pulled[APPROVAL_TAG] == "Approved"
    assert pulled[TAG_REVIEW_DESCRIPTION] == "fairness review passed"
    assert pulled[TAG_REVIEW_BY].endswith(f":user/{REVIEWER_KEY}")
    assert pulled[TAG_REVIEW_TIME].startswith("20")
    assert APPROVAL_TAG not in tags("2")  # only the reviewed version changed


def test_a_rejection_reaches_mlflow_on_the_right_version(backend: RegistryBackend) -> None:
    event = review(backend, "2", "Rejected", "drift on the holdout set")

    assert handle_all(backend, [event])[0]["status"] == "pulled"

    assert tags("2")[APPROVAL_TAG] == "Rejected"
    assert tags("2")[TAG_REVIEW_DESCRIPTION] == "drift on the holdout set"
    assert APPROVAL_TAG not in tags("1")


def test_duplicates_and_an_older_event_after_a_newer_one_leave_the_newest_state(
    backend: RegistryBackend,
) -> None:
    approved = review(backend, "1", "Approved", "looked fine")
    rejected = review(backend, "1", "Rejected", "found a leak")

    answers = handle_all(backend, [rejected])
    settled = tags("1")
    answers += handle_all(backend, [rejected, approved, approved])  # duplicates, then the older one

    assert [answer["status"] for answer in answers] == ["pulled"] * 4
    assert settled[APPROVAL_TAG] == "Rejected"
    assert settled[TAG_REVIEW_DESCRIPTION] == "found a leak"
    assert tags("1") == settled  # the later events changed nothing


def test_every_event_of_the_push_and_the_reviews_in_any_order_converges(backend: RegistryBackend) -> None:
    review(backend, "1", "Approved", "ok")
    review(backend, "2", "Rejected", "not ok")
    review(backend, "1", "Rejected", "changed my mind")
    events = backend.events()  # the push's two creates, then the three reviews

    handle_all(backend, events[::-1])
    reversed_order = {version: tags(version) for version in ("1", "2")}
    handle_all(backend, events)

    assert {version: tags(version) for version in ("1", "2")} == reversed_order
    assert reversed_order["1"][APPROVAL_TAG] == "Rejected"
    assert reversed_order["2"][APPROVAL_TAG] == "Rejected"


def test_the_events_of_mlsyncs_own_push_pull_nothing(backend: RegistryBackend) -> None:
    before = {version: tags(version) for version in ("1", "2")}

    answers = handle_all(backend, backend.events())  # the push's two creates

    assert [answer["status"] for answer in answers] == ["pulled", "pulled"]
    assert {version: tags(version) for version in ("1", "2")} == before


def test_a_package_created_in_sagemaker_without_mlsync_is_ignored(backend: RegistryBackend) -> None:
    mark = len(backend.events())
    team = reviewer()
    team.create_model_package_group(ModelPackageGroupName="hand-made")
    arn = team.create_model_package(ModelPackageGroupName="hand-made")["ModelPackageArn"]
    (created,) = backend.events()[mark:]

    (answer,) = handle_all(backend, [created])

    assert answer["status"] == "ignored"
    assert f"{arn} was not mirrored by mlsync from this MLflow registry" in answer["reason"]


def test_a_package_mirrored_from_another_mlflow_registry_is_ignored(
    backend: RegistryBackend, mlflow_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another MLflow registry with a model of the same name, mirrored into the same group.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        log_version(MODEL, seed=3)
        mark = len(backend.events())
        assert connect(load_settings({"s3_prefix": PREFIX}, env={})).push([MODEL])[1].ok
    finally:
        use_environment_uri(mlflow_uri, monkeypatch)
    (created,) = backend.events()[mark:]

    (answer,) = handle_all(backend, [created])

    assert answer["status"] == "ignored"
    assert "not mirrored by mlsync from this MLflow registry" in answer["reason"]
    assert answer["reason"].endswith(f"({mlflow_uri})")


def test_an_event_of_a_package_deleted_since_is_ignored(backend: RegistryBackend) -> None:
    event = review(backend, "2", "Rejected", "retire it")
    boto3.client("sagemaker").delete_model_package(ModelPackageName=package_arn("2"))

    (answer,) = handle_all(backend, [event])

    assert answer == {
        "status": "ignored",
        "reason": f"{package_arn('2')} no longer exists (deleted since): nothing to pull",
    }


def _other_kind(arn: str) -> dict[str, Any]:
    return {
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Model Package State Change",
        "resources": [arn],
    }


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        {},
        "not json",
        {"source": "aws.s3", "detail-type": "Object Created", "detail": {}},
        {"source": "aws.sagemaker", "detail-type": "SageMaker Model Package State Change", "detail": {}},
        _other_kind("arn:aws:sagemaker:us-east-1:123456789012:model/lambda-model"),
        _other_kind("arn:aws:sagemaker:us-east-1:123456789012:model-package-group/lambda-model"),
        _other_kind("arn:aws:sagemaker:us-east-1:123456789012:model-package/unversioned"),
    ],
    ids=["None", "list", "empty", "str", "s3", "no-arn", "model-arn", "group-arn", "unversioned"],
)
def test_malformed_and_unrelated_events_are_ignored_without_a_call(
    backend: RegistryBackend, event: object, caplog: pytest.LogCaptureFixture
) -> None:
    mark = len(backend.calls())
    with caplog.at_level(logging.INFO, logger="mlflow_sagemaker_registry"):
        answer = handler(event, None)

    assert answer["status"] == "ignored"
    assert answer["reason"]
    assert backend.calls()[mark:] == []  # not even a read: nothing to find out about
    assert [r.getMessage() for r in caplog.records] == [f"mlsync: ignored an event: {answer['reason']}"]


def test_an_engine_that_cannot_be_built_fails_without_raising_and_is_built_at_the_next_event(
    backend: RegistryBackend, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    event = review(backend, "1", "Approved", "ok")
    monkeypatch.delenv("MLSYNC_S3_PREFIX")

    with caplog.at_level(logging.ERROR, logger="mlflow_sagemaker_registry"):
        answer = handler(event, None)

    assert answer["status"] == "failed"
    assert "set MLSYNC_S3_PREFIX" in answer["reason"]
    assert "an event could not be handled" in caplog.text
    assert APPROVAL_TAG not in tags("1")

    monkeypatch.setenv("MLSYNC_S3_PREFIX", PREFIX)  # fixed: the failed build was not kept
    assert handler(event, None)["status"] == "pulled"
    assert tags("1")[APPROVAL_TAG] == "Approved"


def test_a_tracking_uri_naming_no_database_fails_without_raising(
    backend: RegistryBackend, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    event = review(backend, "1", "Approved", "ok")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}")

    answer = handler(event, None)

    assert answer["status"] == "failed"
    assert "there is no MLflow store at" in answer["reason"]
    assert not (tmp_path / "missing").exists()  # nothing was created in its place


def test_the_engine_is_built_once_per_container(
    backend: RegistryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = review(backend, "1", "Approved", "ok")
    assert handler(first, None)["status"] == "pulled"
    # A later change of the environment is not seen: the container keeps the engine it built.
    monkeypatch.delenv("MLSYNC_S3_PREFIX")
    second = review(backend, "2", "Rejected", "no")

    assert handler(second, None)["status"] == "pulled"

    forget_engine()
    assert handler(second, None)["status"] == "failed"


def test_a_pull_that_fails_is_answered_failed(
    backend: RegistryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    event = review(backend, "1", "Approved", "ok")
    # As when the function's role may describe packages but not groups.
    backend.inject_fault(
        "DescribeModelPackageGroup", "AccessDeniedException", message="not authorized", times=1
    )

    with caplog.at_level(logging.ERROR, logger="mlflow_sagemaker_registry"):
        answer = handler(event, None)

    assert answer == {
        "status": "failed",
        "model": MODEL,
        "package": package_arn("1"),
        "reason": f"pulling model {MODEL!r} failed; the log says why",
    }
    assert "not authorized" in caplog.text  # the runner logged why
    assert APPROVAL_TAG not in tags("1")
    assert handler(event, None)["status"] == "pulled"  # the next event of the model repairs it
    assert tags("1")[APPROVAL_TAG] == "Approved"
