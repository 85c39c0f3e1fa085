"""`mlsync doctor` against the emulator process (SageMaker, with moto's S3 and STS) and a real MLflow:
a SQLite registry, or a real `mlflow server` on 127.0.0.1 for the server's version.

An unreachable MLflow must not wait out MLflow's HTTP retries (7 by default, with backoff: minutes):
the check asks `GET /version` with no retry, and reads the registry only from a server that answered,
so these tests leave `MLFLOW_HTTP_REQUEST_MAX_RETRIES` alone and still finish at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import mlflow
import pytest
from click.testing import Result
from e2e_support import mlsync
from mlflow_server import mlflow_server, refused_port

from mlflow_sagemaker_registry.config import Settings
from mlflow_sagemaker_registry.doctor import (
    PROBE_NAME,
    Identity,
    MlflowAnswer,
    ProbeObject,
    Region,
    Status,
    diagnose,
)
from mlflow_sagemaker_registry.emulator import DEFAULT_ACCOUNT_ID, EmulatorProcess
from mlflow_sagemaker_registry.errors import GatewayError
from mlflow_sagemaker_registry.mapping.identity import group_name

BUCKET = "doctor-bucket"
PREFIX = f"s3://{BUCKET}/mlsync"
READS = (
    "sagemaker:DescribeModelPackageGroup",
    "sagemaker:DescribeModelPackage",
    "sagemaker:ListTags",
    "sagemaker:ListModelPackageGroups",
    "sagemaker:ListModelPackages",
)
WRITES = (
    "sagemaker:CreateModelPackageGroup",
    "sagemaker:AddTags",
    "sagemaker:CreateModelPackage",
    "sagemaker:UpdateModelPackage",
)


@pytest.fixture
def aws(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorProcess]:
    """The emulator as AWS, with the bucket of PREFIX; its faults cleared afterwards."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no credentials may mean no IMDS probe
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    yield emulator
    emulator.clear_faults()


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite MLflow registry holding one model, made once: doctor only reads it."""
    root = tmp_path_factory.mktemp("doctor-registry")
    mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}").create_registered_model("fraud")
    return root


@pytest.fixture
def registry(registry_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """That registry as MLFLOW_TRACKING_URI, run from an empty directory (for a test's mlsync.toml)."""
    uri = f"sqlite:///{registry_root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


def doctor(*args: str, **env: str) -> Result:
    return mlsync("doctor", *args, env={"MLSYNC_S3_PREFIX": PREFIX, **env})


def checks(result: Result) -> dict[str, dict[str, str]]:
    """The JSON checklist by check name."""
    return {check["name"]: check for check in json.loads(result.output)["checks"]}


def test_a_working_setup_passes_and_exits_0(aws: EmulatorProcess, registry: str) -> None:
    result = doctor()

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[1] for line in lines[:5]] == ["settings", "mlflow", "aws", "region", "s3"]
    assert "registry sqlite:///" in lines[1] and "(1 registered models)" in lines[1]
    assert f"account {DEFAULT_ACCOUNT_ID}" in lines[2]
    assert f"wrote and removed {PREFIX}/{PROBE_NAME}" in lines[4]
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET)  # the probe is gone
    assert lines[-1].endswith("ready (the warnings say what could not be checked).")
    # Nothing was written to SageMaker: only reads of a group that does not exist.
    assert set(aws.call_counts()) <= {action.removeprefix("sagemaker:") for action in READS}


def test_json_output_parses_and_says_each_status(aws: EmulatorProcess, registry: str) -> None:
    after = doctor("--output", "json")
    before = mlsync("--output", "json", "doctor", env={"MLSYNC_S3_PREFIX": PREFIX})

    assert after.exit_code == before.exit_code == 0
    document = json.loads(after.output)
    assert document["ok"] is True and document["counts"]["fail"] == 0
    by_name = checks(after)
    assert list(by_name) == list(checks(before))
    assert all(by_name[action]["status"] == "pass" for action in READS)
    for action in WRITES:  # no dry run: said, not hidden, and not a failure
        assert by_name[action]["status"] == "warn"
        assert f"mlsync iam-policy --account {DEFAULT_ACCOUNT_ID}" in by_name[action]["fix"]
    assert by_name["image"]["detail"].count(f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com/") == 1
    assert by_name["webhook secret"]["status"] == "skip"


def test_a_missing_bucket_fails_with_the_command_that_creates_it(aws: EmulatorProcess, registry: str) -> None:
    result = doctor("--output", "json", MLSYNC_S3_PREFIX="s3://no-such-bucket/mlsync")

    assert result.exit_code == 1
    s3 = checks(result)["s3 prefix"]
    assert s3["status"] == "fail" and "NoSuchBucket" in s3["detail"]
    assert "`aws s3 mb s3://no-such-bucket --region us-east-1`" in s3["fix"]
    assert "MLSYNC_S3_PREFIX" in s3["fix"]


def test_a_denied_sagemaker_call_names_the_action_resource_and_policy(
    aws: EmulatorProcess, registry: str
) -> None:
    aws.deny_group(group_name(PROBE_NAME, "team-a"))  # an IAM policy denying the group's ARN
    aws.inject_fault("ListModelPackageGroups", "AccessDeniedException", message="User: ci is not authorized")

    result = doctor("--output", "json", MLSYNC_GROUP_PREFIX="team-a")

    assert result.exit_code == 1
    by_name = checks(result)
    for action in READS:
        check = by_name[action]
        assert check["status"] == "fail" and "AccessDeniedException" in check["detail"], action
        assert f"allow {action} on " in check["fix"]
        assert f"to arn:aws:sts::{DEFAULT_ACCOUNT_ID}:" in check["fix"]
        assert f"`mlsync iam-policy --account {DEFAULT_ACCOUNT_ID}`" in check["fix"]
    resource = f"arn:aws:sagemaker:us-east-1:{DEFAULT_ACCOUNT_ID}:model-package-group/team-a-*"
    assert resource in by_name["sagemaker:DescribeModelPackageGroup"]["fix"]
    assert " on * to " in by_name["sagemaker:ListModelPackageGroups"]["fix"]  # a listing has no ARN
    assert by_name["s3 prefix"]["status"] == "pass"  # the others still ran


def test_an_unreachable_mlflow_fails_at_once_and_aws_is_still_checked(aws: EmulatorProcess) -> None:
    with refused_port() as port:  # no test on another worker can listen on it meanwhile
        result = doctor("--output", "json", MLFLOW_TRACKING_URI=f"http://admin:hunter2@127.0.0.1:{port}")

    assert result.exit_code == 1
    check = checks(result)["mlflow"]
    assert check["status"] == "fail"
    assert f"MLflow at http://127.0.0.1:{port} does not answer" in check["detail"]
    assert "hunter2" not in result.output
    assert "--tracking-uri (MLFLOW_TRACKING_URI)" in check["fix"]
    assert checks(result)["aws identity"]["status"] == "pass"


def test_an_mlflow_server_says_its_version(aws: EmulatorProcess, registry_root: Path) -> None:
    with mlflow_server(registry_root) as url:
        result = doctor("--output", "json", MLFLOW_TRACKING_URI=url)

    assert result.exit_code == 0, result.output
    detail = checks(result)["mlflow"]["detail"]
    assert f"server {url} runs MLflow {mlflow.__version__}" in detail
    assert "(1 registered models)" in detail


def test_settings_that_do_not_load_fail_and_skip_the_rest(aws: EmulatorProcess, registry: str) -> None:
    result = doctor("--output", "json", MLSYNC_CONCURRENCY="0")

    assert result.exit_code == 1
    statuses = {name: check["status"] for name, check in checks(result).items()}
    assert statuses.pop("settings") == "fail"
    assert set(statuses.values()) == {"skip"}
    assert "concurrency 0" in checks(result)["settings"]["detail"]


def test_no_credentials_fail_identity_and_skip_what_needs_them(
    aws: EmulatorProcess, registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    result = doctor("--output", "json")

    by_name = checks(result)
    assert result.exit_code == 1
    assert by_name["aws identity"]["status"] == "fail"
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in by_name["aws identity"]["fix"]
    for name in ("s3 prefix", *READS, *WRITES, "image"):
        assert by_name[name] | {"fix": ""} == {
            "name": name,
            "status": "skip",
            "detail": "no working AWS credentials (see 'aws identity')",
            "fix": "",
        }
    assert by_name["mlflow"]["status"] == "pass"


def test_no_region_fails_the_region_check(
    aws: EmulatorProcess, registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")

    by_name = checks(doctor("--output", "json"))

    assert by_name["region"]["status"] == "fail" and "AWS_DEFAULT_REGION" in by_name["region"]["fix"]
    assert by_name["aws identity"]["status"] == by_name["s3 prefix"]["status"] == "skip"


def test_a_region_botocore_does_not_know_is_a_warning(aws: EmulatorProcess, registry: str) -> None:
    by_name = checks(doctor("--output", "json", MLSYNC_REGION="us-esat-1"))

    assert by_name["region"]["status"] == "warn" and "typo" in by_name["region"]["fix"]


def test_the_webhook_secret_is_checked_where_serve_runs(aws: EmulatorProcess, registry: str) -> None:
    missing = checks(doctor("--serve", "--output", "json"))["webhook secret"]
    configured = checks(doctor("--output", "json", MLSYNC_EVENTS_TOKEN="t"))["webhook secret"]
    present = checks(doctor("--serve", "--output", "json", MLSYNC_WEBHOOK_SECRET="s3cr3t"))

    assert missing["status"] == configured["status"] == "fail"
    assert "MLSYNC_WEBHOOK_SECRET" in missing["fix"]
    assert present["webhook secret"]["status"] == "pass" and "s3cr3t" not in json.dumps(present)


def test_a_configured_image_in_another_region_fails(
    aws: EmulatorProcess, registry: str, tmp_path: Path
) -> None:
    elsewhere = f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.eu-west-1.amazonaws.com/serving:1"
    (tmp_path / "mlsync.toml").write_text(f'[images]\nfraud = "{elsewhere}"\nother = "has spaces"\n')

    by_name = checks(doctor("--output", "json"))

    assert by_name["image"]["status"] == "pass"  # the models without an entry get the default
    assert by_name["image (fraud)"]["status"] == "fail"
    assert "ECR of eu-west-1 and the packages in us-east-1" in by_name["image (fraud)"]["detail"]
    assert "set [images] 'fraud' in mlsync.toml" in by_name["image (fraud)"]["fix"]
    assert "not an image URI" in by_name["image (other)"]["detail"]


@dataclass
class RefusingS3:
    """Probes whose S3 write is refused, as a bucket policy would refuse it: moto does not enforce IAM, so
    this one answer is written by hand; every other answer is a working account's."""

    code: str

    def mlflow(self) -> MlflowAnswer:
        return MlflowAnswer("sqlite:////tmp/mlflow.db", 1, "3.0.0")

    def region(self) -> Region:
        return Region("eu-west-1", "the settings", known=True)

    def identity(self) -> Identity:
        return Identity("111122223333", "arn:aws:iam::111122223333:user/ci", "https://sts.eu-west-1")

    def write_probe(self, s3_uri: str) -> ProbeObject:
        raise GatewayError(f"PutObject {s3_uri} failed: Access Denied ({self.code})", code=self.code)

    def sagemaker_read(self, operation: str) -> bool:
        return True

    def default_image(self, mlflow_version: str) -> str:
        return f"image:{mlflow_version}"

    def image_problem(self, image: str) -> str | None:
        return None


def test_an_s3_write_refused_names_put_object_on_the_prefix() -> None:
    settings = Settings(s3_prefix="s3://artifacts/team/mlsync", region="eu-west-1")

    def probes(_settings: Settings) -> Any:
        return RefusingS3("AccessDenied")

    (s3,) = [check for check in diagnose(lambda: settings, probes) if check.name == "s3 prefix"]

    assert s3.status is Status.FAIL
    assert s3.fix == (
        "allow s3:PutObject on arn:aws:s3:::artifacts/team/mlsync/* to arn:aws:iam::111122223333:user/ci; "
        "`mlsync iam-policy --account 111122223333` prints the whole policy"
    )
