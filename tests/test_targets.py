"""Several targets (`[[targets]]`): settings, and pushes into two regions and an assumed role's account.

End to end against the emulator process (SageMaker per region; S3 and STS from moto, whose AssumeRole
answers with credentials of the role's account) and a real SQLite MLflow registry.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import mlflow
import pytest
from e2e_support import building_registry, calls_since, mlsync, use_registry, writes
from mlflow_models import log_version

from mlflow_sagemaker_registry.config import Settings, load_settings
from mlflow_sagemaker_registry.domain import ApprovalStatus
from mlflow_sagemaker_registry.emulator import EmulatorProcess
from mlflow_sagemaker_registry.engine import Engine
from mlflow_sagemaker_registry.errors import ConfigError
from mlflow_sagemaker_registry.fleet import Fleet
from mlflow_sagemaker_registry.gateways.aws import aws_session
from mlflow_sagemaker_registry.mapping.identity import group_name
from mlflow_sagemaker_registry.mapping.tags import (
    TAG_GROUP_POLICY,
    TAG_PACKAGE_ARN,
    TAG_SYNC_STATUS,
    is_own_tag,
    target_tag,
)
from mlflow_sagemaker_registry.ports import Gateways
from mlflow_sagemaker_registry.sources.target_view import TargetView
from mlflow_sagemaker_registry.targets import Target
from mlflow_sagemaker_registry.testing import MemoryRegistry, MemorySource, MemoryStorage
from mlflow_sagemaker_registry.triggers.webhook.process import ReceiverProcess

FRAUD = "fraud-model"
CHURN = "churn-model"
DEV_BUCKET = "mlsync-targets-dev"
PROD_BUCKET = "mlsync-targets-prod"
PROD_ROLE = "arn:aws:iam::222222222222:role/mlsync-writer"
DEV = """
[[targets]]
name = "dev"
region = "us-east-1"
"""
BROKEN = """
[[targets]]
name = "broken"
region = "us-west-2"
s3_prefix = "s3://mlsync-no-such-bucket/x"
"""
PROD_ONLY = f"""
[[targets]]
name = "prod"
region = "eu-west-1"
role_arn = "{PROD_ROLE}"
external_id = "mlsync-test"
s3_prefix = "s3://{PROD_BUCKET}/mlsync"
group_prefix = "prod"
models = ["fraud-*"]
only_approved = true
"""
PROD = DEV + PROD_ONLY


def settings_from(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "mlsync.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings({"config": str(path)}, env={})


# --- settings ---------------------------------------------------------------------------------------


def test_without_targets_the_settings_are_the_one_primary_target(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, 'region = "us-east-1"\ngroup_prefix = "ml"\n')
    assert settings.all_targets() == (Target(),)
    assert settings.for_target(Target()) == settings


def test_a_target_inherits_what_it_leaves_unset(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, f's3_prefix = "s3://{DEV_BUCKET}/x"\nregion = "us-west-2"\n' + PROD)
    dev, prod = settings.all_targets()
    assert (dev.name, prod.name, prod.only_approved, prod.models) == ("dev", "prod", True, ("fraud-*",))
    assert settings.for_target(dev).s3_prefix == f"s3://{DEV_BUCKET}/x"
    assert settings.for_target(dev).region == "us-east-1"
    assert (settings.for_target(prod).group_prefix, settings.for_target(dev).group_prefix) == ("prod", "")
    assert prod.selects("fraud-eu") and not prod.selects(CHURN) and dev.selects(CHURN)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ('[[targets]]\nregion = "us-east-1"', "target #1: name = None"),
        ('[[targets]]\nname = "a b"', "target #1: name = 'a b'"),
        ('[[targets]]\nname = "a"\n[[targets]]\nname = "a"\nregion = "eu-west-1"', "'a' is listed twice"),
        ('[[targets]]\nname = "a"\n[[targets]]\nname = "b"', "targets 'a' and 'b' name the same account"),
        ('[[targets]]\nname = "a"\nprofile = "p"\nrole_arn = "arn:aws:iam::1:role/r"', "profile or role_arn"),
        ('[[targets]]\nname = "a"\nexternal_id = "xyz"', "target 'a': external_id is used when"),
        ('[[targets]]\nname = "a"\nrole_arn = "arn:aws:iam::1:role/r"', "is not an IAM role ARN"),
        ('[[targets]]\nname = "a"\nonly_approved = "yes"', "only_approved must be true or false"),
        ('[[targets]]\nname = "a"\nmodels = "fraud"', "target 'a': models must be an array"),
        ('[[targets]]\nname = "a"\nbucket = "b"', "target 'a': unknown key(s) ['bucket']"),
        ('[[targets]]\nname = "a"\ns3_prefix = "s3://Bad_Bucket/x"', "target 'a': MLSYNC_S3_PREFIX"),
        ('[[targets]]\nname = "a"\ngroup_prefix = "-x"', "target 'a': group_prefix '-x'"),
        ("targets = 3", "targets must be an array of tables"),
    ],
)
def test_bad_targets_fail_at_load_naming_the_target(tmp_path: Path, entries: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, entries + "\n")
    assert message in str(caught.value)


def test_each_non_primary_target_tag_is_its_own_and_mlsyncs() -> None:
    assert target_tag("prod", TAG_PACKAGE_ARN) == "mlsync.target.prod.model_package_arn"
    assert target_tag("prod", TAG_SYNC_STATUS) == "mlsync.target.prod.sync_status"
    assert is_own_tag(target_tag("prod", TAG_SYNC_STATUS)) and not is_own_tag("sagemaker.approval")


def test_iam_policy_for_a_target_names_its_bucket_groups_and_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlsync.toml").write_text(f's3_prefix = "s3://{DEV_BUCKET}/mlsync"\n' + PROD, "utf-8")
    result = mlsync("iam-policy", "--target", "prod")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert f"arn:aws:s3:::{PROD_BUCKET}/mlsync/*" in text and DEV_BUCKET not in text
    assert "arn:aws:sagemaker:eu-west-1:222222222222:model-package-group/prod-*" in text
    primary = mlsync("iam-policy").stdout
    assert f"arn:aws:s3:::{DEV_BUCKET}/mlsync/*" in primary
    assert mlsync("iam-policy", "--target", "nope").exit_code == 2


def test_the_plugin_reconciles_every_target_each_in_its_region(mlflow_uri: str, tmp_path: Path) -> None:
    from mlflow_sagemaker_registry.triggers.plugin import _connect

    mlflow.MlflowClient().search_registered_models()  # makes the SQLite registry
    fleet = _connect(settings_from(tmp_path, PROD))
    assert isinstance(fleet, Fleet)
    assert [(e.target.name, e.primary) for e in fleet.engines] == [("dev", True), ("prod", False)]
    regions = [e.registry._sm.meta.region_name for e in fleet.engines]  # type: ignore[attr-defined]
    assert regions == ["us-east-1", "eu-west-1"]


# --- reviews: pulled from the primary only (in memory) -----------------------------------------------


def memory_fleet(
    source: MemorySource, prod_models: tuple[str, ...] = (), share_with: tuple[str, ...] = ()
) -> tuple[Fleet, MemoryRegistry, MemoryRegistry]:
    """A primary and a production target over one MLflow registry, each with its own SageMaker."""
    prod = Target("prod", region="eu-west-1", models=prod_models, only_approved=True)
    targets = (Target("dev"), prod)
    settings = Settings(s3_prefix="s3://bucket/mlsync", targets=targets, share_with=share_with)
    registries = (MemoryRegistry(), MemoryRegistry(region="eu-west-1"))
    engines = [
        Engine(
            settings.for_target(target),
            Gateways(
                TargetView(source, target, settings.approval, primary=index == 0),
                registry,
                MemoryStorage(),
            ),
            target=target,
            primary=index == 0,
        )
        for index, (target, registry) in enumerate(zip(targets, registries, strict=True))
    ]
    return Fleet(engines), *registries


def test_a_review_in_the_primary_is_pulled_and_reaches_the_others_which_follow_mlflow() -> None:
    source = MemorySource()
    source.add_version("m", stage="Production")
    fleet, dev, prod = memory_fleet(source)
    assert fleet.push()[1].ok
    tags = dict(source.get_version("m", "1").tags)
    dev_arn, prod_arn = tags[TAG_PACKAGE_ARN], tags[target_tag("prod", TAG_PACKAGE_ARN)]

    # A review in prod is not pulled: prod follows MLflow's mapping, so the next push sets it back.
    prod.review(prod_arn, ApprovalStatus.REJECTED, "not here", by="bob")
    assert fleet.pull()[0].is_empty
    fleet.push()
    assert prod.package(prod_arn).approval is ApprovalStatus.APPROVED
    assert "sagemaker.approval" not in source.get_version("m", "1").tags

    # A review in the primary is pulled into MLflow, and the mapping carries it to prod.
    dev.review(dev_arn, ApprovalStatus.REJECTED, "bias", by="alice")
    fleet.push()
    assert source.get_version("m", "1").tags["sagemaker.approval"] == "Rejected"
    fleet.push()
    assert prod.package(prod_arn).approval is ApprovalStatus.REJECTED
    source.clear_writes()
    plan, report = fleet.push()
    assert plan.is_empty and report.ok and not source.tag_writes


def test_a_model_goes_only_to_the_targets_whose_models_take_it() -> None:
    source = MemorySource()
    source.add_version("churn", stage="Production")
    fleet, dev, prod = memory_fleet(source, prod_models=("fraud-*",))
    fleet.push(["churn"])
    fleet.push()
    assert dev.packages(group_name("churn")) and prod.writes() == []


def test_each_target_keeps_its_own_record_of_its_group_policy() -> None:
    source = MemorySource()
    source.add_version("m", stage="Production")
    fleet, dev, prod = memory_fleet(source, share_with=("333333333333",))
    assert fleet.push()[1].ok
    assert set(dev.policies) == set(prod.policies) == {group_name("m")}
    assert {key for key, _ in source.model_tag_writes} == {
        TAG_GROUP_POLICY,
        target_tag("prod", TAG_GROUP_POLICY),
    }
    dev.clear_calls()
    prod.clear_calls()
    assert fleet.push()[0].is_empty
    assert dev.writes() == prod.writes() == []


# --- end to end -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """fraud-model v1 (Production: Approved), v2 (pending); churn-model v1 (pending)."""
    root = tmp_path_factory.mktemp("targets")
    with building_registry(root, "targets"):
        log_version(FRAUD, metrics={"accuracy": 0.9}, seed=0)
        log_version(FRAUD, metrics={"accuracy": 0.8}, seed=1)
        log_version(CHURN, kind="regressor", metrics={"rmse": 0.5}, seed=2)
        mlflow.MlflowClient().transition_model_version_stage(FRAUD, "1", "Production")
        yield root


@pytest.fixture
def env(emulator: EmulatorProcess, registry_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = use_registry(monkeypatch, emulator.url, registry_dir, DEV_BUCKET)
    prod_s3 = aws_session(role_arn=PROD_ROLE, external_id="mlsync-test").client("s3", region_name="eu-west-1")
    if PROD_BUCKET not in {b["Name"] for b in prod_s3.list_buckets()["Buckets"]}:
        prod_s3.create_bucket(
            Bucket=PROD_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    (registry_dir / "mlsync.toml").write_text(PROD, encoding="utf-8")
    return values


def summaries(region: str, group: str, *, prod: bool = False) -> list[Any]:
    """The described packages of a group, read as the pipeline's own account, or as prod's (the role)."""
    session = aws_session(role_arn=PROD_ROLE, external_id="mlsync-test") if prod else boto3
    sagemaker = session.client("sagemaker", region_name=region)
    groups = {
        g["ModelPackageGroupName"]
        for g in sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    }
    if group not in groups:
        return []
    listed = sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    return [sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in listed]


def version_tags(model: str, version: str) -> dict[str, str]:
    return dict(mlflow.MlflowClient().get_model_version(model, version).tags)


@pytest.mark.e2e
def test_two_targets_receive_their_packages_and_a_second_push_writes_nothing(
    env: dict[str, str], emulator: EmulatorProcess
) -> None:
    result = mlsync("push", "--all")
    assert result.exit_code == 0, result.output
    assert "== target dev ==" in result.output and "== target prod ==" in result.output

    # dev (us-east-1, the primary, the default credentials): every version of both models.
    assert [p["ModelApprovalStatus"] for p in summaries("us-east-1", group_name(FRAUD))] == [
        "Approved",
        "PendingManualApproval",
    ]
    assert len(summaries("us-east-1", group_name(CHURN))) == 1
    # prod (eu-west-1, assumed role, only approved, only fraud-*): fraud v1 only, in its own bucket.
    prod = summaries("eu-west-1", group_name(FRAUD, "prod"), prod=True)
    assert [p["ModelApprovalStatus"] for p in prod] == ["Approved"]
    assert prod[0]["InferenceSpecification"]["Containers"][0]["ModelDataUrl"].startswith(
        f"s3://{PROD_BUCKET}/"
    )
    assert summaries("eu-west-1", group_name(CHURN, "prod"), prod=True) == []
    assert summaries("eu-west-1", group_name(FRAUD), prod=True) == []
    # In prod's own account (the role's): the pipeline's account sees nothing of it.
    assert prod[0]["ModelPackageArn"].startswith("arn:aws:sagemaker:eu-west-1:222222222222:")
    assert summaries("eu-west-1", group_name(FRAUD, "prod")) == []
    # Written with the assumed role's credentials (moto's STS gives an ASIA key), not the default ones.
    assert "/ASIA" in prod[0]["CreatedBy"]["IamIdentity"]["Arn"]
    assert "/testing" in summaries("us-east-1", group_name(CHURN))[0]["CreatedBy"]["IamIdentity"]["Arn"]

    # Back-links: the primary's are today's tags, prod's its own; nothing of prod on a version it lacks.
    v1, v2 = version_tags(FRAUD, "1"), version_tags(FRAUD, "2")
    assert ":us-east-1:" in v1[TAG_PACKAGE_ARN] and v1[TAG_SYNC_STATUS].startswith("synced")
    assert v1[target_tag("prod", TAG_PACKAGE_ARN)] == prod[0]["ModelPackageArn"]
    assert v1[target_tag("prod", TAG_SYNC_STATUS)].startswith("synced")
    assert ":us-east-1:" in v2[TAG_PACKAGE_ARN]
    assert not any(key.startswith("mlsync.target.") for key in v2)

    mark = len(emulator.calls())
    before = {(m, v): version_tags(m, v) for m, v in ((FRAUD, "1"), (FRAUD, "2"), (CHURN, "1"))}
    again = mlsync("push", "--all")
    assert again.exit_code == 0, again.output
    assert writes(calls_since(emulator, mark)) == []
    assert {(m, v): version_tags(m, v) for m, v in before} == before

    status = mlsync("status", FRAUD, "--target", "prod", "--output", "json")
    assert status.exit_code == 0, status.output
    rows = json.loads(status.output)["targets"]["prod"]["result"]
    assert [(row["version"], row["approval"]) for row in rows] == [("1", "Approved")]


@pytest.mark.e2e
def test_a_version_approved_later_reaches_the_production_target(env: dict[str, str]) -> None:
    assert mlsync("push", "--all").exit_code == 0
    mlflow.MlflowClient().set_model_version_tag(FRAUD, "2", "sagemaker.approval", "Approved")
    result = mlsync("push", FRAUD, "--target", "prod")
    assert result.exit_code == 0, result.output
    assert [
        p["ModelApprovalStatus"] for p in summaries("eu-west-1", group_name(FRAUD, "prod"), prod=True)
    ] == [
        "Approved",
        "Approved",
    ]
    # Only prod was pushed: dev still holds v2 pending until its own push.
    assert summaries("us-east-1", group_name(FRAUD))[1]["ModelApprovalStatus"] == "PendingManualApproval"
    assert mlsync("push", "--all").exit_code == 0
    assert summaries("us-east-1", group_name(FRAUD))[1]["ModelApprovalStatus"] == "Approved"


@pytest.mark.e2e
def test_a_failing_target_does_not_block_the_others(env: dict[str, str], registry_dir: Path) -> None:
    (registry_dir / "mlsync.toml").write_text(DEV + BROKEN + PROD_ONLY, encoding="utf-8")
    result = mlsync("push", "--all", "--output", "json")
    assert result.exit_code == 1, result.output
    documents = json.loads(result.stdout)["targets"]
    assert list(documents) == ["dev", "broken", "prod"]
    assert documents["broken"]["exit_code"] == 1
    assert {f["model_name"] for f in documents["broken"]["result"]["report"]["failures"]} == {FRAUD, CHURN}
    assert documents["dev"]["exit_code"] == 0 and documents["prod"]["exit_code"] == 0
    assert summaries("us-west-2", group_name(CHURN)) == []
    assert "target broken failed" in result.stderr


@pytest.mark.e2e
def test_a_target_whose_credentials_fail_reports_under_its_name(
    env: dict[str, str], registry_dir: Path
) -> None:
    assert mlsync("push", "--all").exit_code == 0
    lost = BROKEN.replace('s3_prefix = "s3://mlsync-no-such-bucket/x"', 'profile = "no-such-profile"')
    (registry_dir / "mlsync.toml").write_text(DEV + lost + PROD_ONLY, encoding="utf-8")
    result = mlsync("push", "--all")
    assert result.exit_code == 1, result.output
    assert "no-such-profile" in result.stderr and "target broken failed" in result.stderr
    sections = result.stdout.split("== target ")
    assert [section.split(" ==")[0] for section in sections[1:]] == ["dev", "broken", "prod"]
    assert "In sync" in sections[1] and "In sync" in sections[3]


@pytest.mark.e2e
def test_doctor_checks_one_target_with_its_own_credentials_and_prefix(env: dict[str, str]) -> None:
    result = mlsync("doctor", "--target", "prod", "--output", "json")
    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    assert checks["aws identity"]["status"] == "pass"
    assert "account 222222222222" in checks["aws identity"]["detail"]
    assert "eu-west-1" in checks["region"]["detail"]
    assert PROD_BUCKET in checks["s3 prefix"]["detail"]
    primary = mlsync("doctor", "--target", "dev", "--output", "json")
    identity = {c["name"]: c for c in json.loads(primary.stdout)["checks"]}["aws identity"]
    assert "account 222222222222" not in identity["detail"]
    # Without --target, every target is checked, each with its own identity.
    every = json.loads(mlsync("doctor", "--output", "json").stdout)["targets"]
    assert list(every) == ["dev", "prod"]
    identities = {name: {c["name"]: c for c in doc["checks"]}["aws identity"] for name, doc in every.items()}
    assert "account 222222222222" in identities["prod"]["detail"]
    assert "account 222222222222" not in identities["dev"]["detail"]
    text = mlsync("doctor").stdout
    assert "== target dev ==" in text and "== target prod ==" in text
    unknown = mlsync("doctor", "--target", "nope")
    assert unknown.exit_code == 1 and "unknown target(s) ['nope']" in unknown.stdout


@pytest.mark.e2e
def test_mlsync_serve_reconciles_every_target(env: dict[str, str], registry_dir: Path) -> None:
    """The receiver's startup reconcile (its periodic one is the same) reaches both targets."""
    assert mlsync("push", "--all").exit_code == 0
    mlflow.MlflowClient().set_model_version_tag(FRAUD, "1", "sagemaker.approval", "Rejected")
    child_env = {**os.environ, "MLSYNC_WEBHOOK_SECRET": "k3y"}
    with ReceiverProcess(child_env, log_path=registry_dir / "serve.log") as receiver:
        deadline = time.monotonic() + 60
        while not receiver.health()["reconciles"]["runs"] or receiver.health()["reconciles"]["running"]:
            assert time.monotonic() < deadline, (registry_dir / "serve.log").read_text()
            time.sleep(0.2)
    assert summaries("us-east-1", group_name(FRAUD))[0]["ModelApprovalStatus"] == "Rejected"
    assert (
        summaries("eu-west-1", group_name(FRAUD, "prod"), prod=True)[0]["ModelApprovalStatus"] == "Rejected"
    )
