"""The emulator as a separate server process: SageMaker from us, S3 and STS from moto, on one port."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from mlflow_sagemaker_registry.emulator import EmulatorProcess

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorProcess]:
    with EmulatorProcess() as process:
        yield process


@pytest.fixture
def emulator(server: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> EmulatorProcess:
    """The module's server, emptied, with boto3 pointed at it through the environment."""
    server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return server


@pytest.fixture
def sm(emulator: EmulatorProcess) -> SageMakerClient:
    return boto3.client("sagemaker")


def test_one_endpoint_serves_sagemaker_s3_and_sts(emulator: EmulatorProcess, sm: SageMakerClient) -> None:
    assert emulator.url.startswith("http://127.0.0.1:")
    sm.create_model_package_group(ModelPackageGroupName="churn")
    arn = sm.create_model_package(
        ModelPackageGroupName="churn", ModelLifeCycle={"Stage": "QA", "StageStatus": "InProgress"}
    )["ModelPackageArn"]
    assert sm.describe_model_package(ModelPackageName=arn)["ModelLifeCycle"]["Stage"] == "QA"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="mlsync-artifacts")
    s3.put_object(Bucket="mlsync-artifacts", Key="model.tar.gz", Body=b"weights")
    assert s3.get_object(Bucket="mlsync-artifacts", Key="model.tar.gz")["Body"].read() == b"weights"
    assert boto3.client("sts").get_caller_identity()["Account"] == "123456789012"
    assert emulator.call_counts() == {
        "CreateModelPackageGroup": 1,
        "CreateModelPackage": 1,
        "DescribeModelPackage": 1,
    }


def test_the_server_is_as_strict_and_logs_refusals(emulator: EmulatorProcess, sm: SageMakerClient) -> None:
    sm.create_model_package_group(ModelPackageGroupName="churn")
    with pytest.raises(ClientError) as excinfo:
        sm.create_model_package(ModelPackageGroupName="churn", CustomerMetadataProperties={"k": "x" * 300})
    assert "Member must have length less than or equal to 256" in excinfo.value.response["Error"]["Message"]
    (call,) = emulator.calls_to("CreateModelPackage")
    assert (call.error, call.params["CustomerMetadataProperties"]) == (
        "ValidationException",
        {"k": "x" * 300},
    )


def test_faults_injected_from_the_test_process(emulator: EmulatorProcess, sm: SageMakerClient) -> None:
    sm.create_model_package_group(ModelPackageGroupName="churn")
    emulator.inject_fault("CreateModelPackage", "ThrottlingException", after_apply=True)
    assert sm.create_model_package(ModelPackageGroupName="churn")["ResponseMetadata"]["RetryAttempts"] == 1
    assert len(sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]) == 1


def test_fault_knobs_from_the_test_process(emulator: EmulatorProcess, sm: SageMakerClient) -> None:
    once = boto3.client("sagemaker", config=Config(retries={"total_max_attempts": 1}))
    sm.create_model_package_group(ModelPackageGroupName="churn")
    sm.create_model_package_group(ModelPackageGroupName="fraud")
    emulator.lose_answers(["CreateModelPackage"], retries_pass=True)
    emulator.deny_group("fraud")
    emulator.fault_rate("ListModelPackageGroups", 1.0, codes=["ServiceUnavailable"])
    assert (
        sm.create_model_package(ModelPackageGroupName="churn", ClientToken="t")["ResponseMetadata"][
            "RetryAttempts"
        ]
        == 1
    )
    with pytest.raises(ClientError) as denied:
        sm.describe_model_package_group(ModelPackageGroupName="fraud")
    with pytest.raises(ClientError) as unavailable:
        once.list_model_package_groups()
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert unavailable.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert [(call.operation, call.faults) for call in emulator.calls() if call.faults] == [
        ("CreateModelPackage", ("lost",)),
        ("DescribeModelPackageGroup", ("denied",)),
        ("ListModelPackageGroups", ("error",)),
    ]
    emulator.clear_faults()
    assert sm.describe_model_package_group(ModelPackageGroupName="fraud")
    assert len(sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]) == 1


def test_a_delayed_answer_can_be_waited_for_and_cut_short(
    emulator: EmulatorProcess, sm: SageMakerClient
) -> None:
    sm.create_model_package_group(ModelPackageGroupName="churn")
    emulator.delay("CreateModelPackage", 60, after_apply=True)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(sm.create_model_package, ModelPackageGroupName="churn")
        while not emulator.calls_to("CreateModelPackage"):
            assert time.monotonic() - started < 10, "the delayed create never arrived"
            time.sleep(0.05)
        assert not pending.done()
        emulator.reset()  # as clear_faults, ends the wait
        assert pending.result(timeout=10)["ModelPackageArn"].endswith("/churn/1")
    assert time.monotonic() - started < 20


def test_a_rule_the_child_refuses_is_a_value_error(emulator: EmulatorProcess) -> None:
    with pytest.raises(ValueError, match="unknown operations"):
        emulator.delay("CreateModelPackages", 1)


def test_events_and_reviewers_through_the_control_api(emulator: EmulatorProcess, sm: SageMakerClient) -> None:
    sm.create_model_package_group(ModelPackageGroupName="churn")
    arn = sm.create_model_package(ModelPackageGroupName="churn")["ModelPackageArn"]
    reviewer = boto3.client("sagemaker", aws_access_key_id="reviewer", aws_secret_access_key="testing")
    reviewer.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="ok"
    )
    with pytest.raises(ClientError):  # refused: no event
        reviewer.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="PendingManualApproval")
    created, approved = emulator.events()
    assert (created["detail-type"], created["resources"]) == ("SageMaker Model Package State Change", [arn])
    assert "UpdatedModelPackageFields" not in created["detail"]
    assert approved["detail"]["UpdatedModelPackageFields"] == ["ModelApprovalStatus", "ApprovalDescription"]
    who = {"Arn": "arn:aws:iam::123456789012:user/reviewer", "PrincipalId": "reviewer"}
    assert approved["detail"]["LastModifiedBy"] == {"IamIdentity": who}
    assert sm.describe_model_package(ModelPackageName=arn)["LastModifiedBy"] == {"IamIdentity": who}
    assert created["detail"]["CreatedBy"]["IamIdentity"]["PrincipalId"] == "testing"
    emulator.reset()
    assert emulator.events() == []


def test_the_child_appends_events_to_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    lines = tmp_path / "events.jsonl"
    with EmulatorProcess(events_file=lines) as emulator:
        sm = boto3.client("sagemaker", endpoint_url=emulator.url, region_name="eu-west-1")
        sm.create_model_package_group(ModelPackageGroupName="churn")
        arn = sm.create_model_package(ModelPackageGroupName="churn")["ModelPackageArn"]
        sm.update_model_package(
            ModelPackageArn=arn, ModelLifeCycle={"Stage": "QA", "StageStatus": "Approved"}
        )
        events = emulator.events()
    assert [json.loads(line) for line in lines.read_text().splitlines()] == events
    assert [event["region"] for event in events] == ["eu-west-1", "eu-west-1"]


def test_raw_requests_are_read_as_sagemaker_reads_them(emulator: EmulatorProcess) -> None:
    body = json.dumps({"ModelPackageGroupName": "churn", "Colour": "blue"}).encode()
    request = urllib.request.Request(
        f"{emulator.url}/",
        data=body,
        method="POST",
        headers={
            "X-Amz-Target": "SageMaker.CreateModelPackageGroup",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=5)
    assert excinfo.value.code == 400
    assert json.load(excinfo.value)["__type"] == "SerializationException"


def test_unknown_control_routes_are_404(emulator: EmulatorProcess) -> None:
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(f"{emulator.url}/_emulator/nothing", timeout=5)
    assert excinfo.value.code == 404


def test_a_stopped_process_has_no_url() -> None:
    process = EmulatorProcess()
    with pytest.raises(RuntimeError):
        process.url  # noqa: B018 - the property raises
    process.stop()  # stopping what never started is harmless


def test_mlsync_emulator_serves_the_emulator_with_its_options() -> None:
    """`mlsync emulator` is the supported way to start it; its options are the module's."""
    import signal as signals
    import subprocess as child
    import sys as system

    from click.testing import CliRunner

    from mlflow_sagemaker_registry.triggers.cli import cli

    helped = CliRunner().invoke(cli, ["emulator", "--help"])
    assert (
        helped.exit_code == 0
        and "usage: mlsync emulator" in helped.output
        and "--events-file" in helped.output
    )
    command = [system.executable, "-m", "mlflow_sagemaker_registry", "emulator", "--port", "0"]
    with child.Popen(command, stdout=child.PIPE, text=True) as served:
        assert served.stdout is not None
        line = served.stdout.readline()
        served.send_signal(signals.SIGTERM)
        served.wait(10)
    assert line.startswith("listening on http://127.0.0.1:")
