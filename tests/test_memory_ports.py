"""The in-memory ports against the real ones: the same scenarios, so the fakes cannot drift from the gateways.

`MemoryRegistry` runs beside `SageMakerRegistry` over the in-process SageMaker emulator (stricter than moto),
`MemoryStorage` beside `S3Storage` over moto's S3 and `MemorySource` beside `MlflowSource` over a SQLite
MLflow; each scenario asserts one answer for both. The
emulator's own tables (approval transitions, write operations, account) are the oracle where the fake
restates a rule, so a change there fails here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from mlflow import MlflowClient
from moto import mock_aws

from mlflow_sagemaker_registry.config import Settings
from mlflow_sagemaker_registry.domain import (
    ApprovalStatus,
    Container,
    Document,
    GroupListing,
    Inference,
    Lifecycle,
    ModelCard,
    ObservedPackage,
    PackageSpec,
    PackageSummary,
    PackageUpdate,
    SourceModel,
    SourceVersion,
)
from mlflow_sagemaker_registry.emulator import (
    DEFAULT_ACCOUNT_ID,
    WRITE_OPERATIONS,
    emulated_aws,
    user_context,
)
from mlflow_sagemaker_registry.emulator.backend import OPERATIONS
from mlflow_sagemaker_registry.emulator.registry import APPROVAL_TRANSITIONS
from mlflow_sagemaker_registry.errors import GatewayError, NotFoundError, SourceError
from mlflow_sagemaker_registry.gateways.aws import aws_clients
from mlflow_sagemaker_registry.gateways.s3 import S3Storage
from mlflow_sagemaker_registry.gateways.sagemaker import SageMakerRegistry
from mlflow_sagemaker_registry.mapping import desired_group, desired_package
from mlflow_sagemaker_registry.ports import Registry, Source, Storage
from mlflow_sagemaker_registry.sources.mlflow_registry import MlflowSource
from mlflow_sagemaker_registry.testing import (
    ACCOUNT_ID,
    REGION,
    MemoryRegistry,
    MemorySource,
    MemoryStorage,
    TagWrite,
)

MODEL = GROUP = "churn-model"
SETTINGS = Settings(s3_prefix="s3://bucket/mlsync")
GROUP_SPEC = desired_group(SourceModel(MODEL), SETTINGS)  # tagged with its owner, the MLflow model
REVIEWER = f"arn:aws:iam::{ACCOUNT_ID}:user/AKIAREVIEWER"
IMAGE = f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/mlflow-pyfunc:3.1.0"
SERVED = Inference(
    Container(IMAGE, f"s3://bucket/mlsync/artifacts/{'ab' * 32}/model.tar.gz"),
    ("application/json", "text/csv"),
    ("application/json",),
)


def spec(version: str = "1") -> PackageSpec:
    """A package as the mapping makes it (so every field passes the emulator's validation)."""
    source = SourceVersion(
        model_name=MODEL,
        version=version,
        run_id="r1",
        description="Gradient boosting",
        params={"depth": "3"},
        metrics={"accuracy": 0.91},
        run_link="runs:/r1",
    )
    return desired_package(source, GROUP, "memory://contract", SETTINGS)


def package_arn(version: int) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:model-package/{GROUP}/{version}"


@dataclass
class Side:
    """One implementation of the Registry port, with what a test does around it."""

    registry: Registry
    caller: str
    """Who the registry reports as having made mlsync's own updates."""
    calls: Callable[[], Counter[str]]
    review: Callable[[str, ApprovalStatus, str], None]
    fail_next: Callable[[str, str, bool], None]
    """(operation, AWS error code, after_apply): the next call of the operation fails with the code."""
    edit_card: Callable[[str, ModelCard], None]
    """A reviewer's edit of the package's model card in Studio."""


def memory_side() -> Side:
    registry = MemoryRegistry()

    def fail_next(operation: str, code: str, after_apply: bool) -> None:
        registry.fail_next(
            operation, GatewayError(f"{operation} failed ({code})", code), after_apply=after_apply
        )

    return Side(
        registry,
        registry.caller,
        registry.call_counts,
        lambda arn, status, description: registry.review(arn, status, description, by=REVIEWER),
        fail_next,
        lambda arn, card: registry.edit_card(arn, card, by=REVIEWER),
    )


def emulator_side() -> Iterator[Side]:
    with emulated_aws() as backend:
        clients = aws_clients(REGION)
        reviewer = boto3.client(
            "sagemaker", region_name=REGION, aws_access_key_id="AKIAREVIEWER", aws_secret_access_key="x"
        )

        def review(arn: str, status: ApprovalStatus, description: str) -> None:
            reviewer.update_model_package(
                ModelPackageArn=arn, ModelApprovalStatus=status.value, ApprovalDescription=description
            )

        def edit_card(arn: str, card: ModelCard) -> None:
            sent = {"ModelCardContent": card.content, "ModelCardStatus": card.status}
            reviewer.update_model_package(ModelPackageArn=arn, ModelCard=sent)

        def fail_next(operation: str, code: str, after_apply: bool) -> None:
            # Status 400 and not a throttling code: botocore does not retry, the gateway raises at once.
            backend.inject_fault(operation, code, message="injected", after_apply=after_apply)

        credentials = boto3.Session().get_credentials()  # moto's, inside the emulation
        assert credentials is not None
        caller = user_context(DEFAULT_ACCOUNT_ID, credentials.access_key)["IamIdentity"]["Arn"]
        registry = SageMakerRegistry(clients.sagemaker, clients.sts)
        yield Side(registry, caller, backend.call_counts, review, fail_next, edit_card)


@pytest.fixture(params=["memory", "emulator"])
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    if request.param == "memory":
        yield memory_side()
    else:
        yield from emulator_side()


@pytest.fixture
def registry(side: Side) -> Registry:
    side.registry.create_group(GROUP_SPEC)
    return side.registry


def created(version: int = 1, package: PackageSpec | None = None) -> ObservedPackage:
    """What DescribeModelPackage reports of a package just created from `package` (default `spec()`)."""
    package = package or spec(str(version))
    assert package.quality_statistics is not None
    return ObservedPackage(
        arn=package_arn(version),
        group_name=GROUP,
        package_version=version,
        approval=package.approval,
        lifecycle=package.lifecycle,
        customer_metadata=package.customer_metadata,
        description=package.description,
        metadata_properties={"GeneratedBy": "runs:/r1"},
        quality_statistics_digest=package.quality_statistics.digest,
        model_data_url=SERVED.container.model_data_url,
        quality_statistics_uri=package.quality_statistics.s3_uri,
        model_card=package.model_card,
    )


def described(registry: Registry, arn: str) -> ObservedPackage:
    """The package without its modification time (which is now, on either side)."""
    package = registry.describe_package(arn)
    assert package.modified_time is not None
    datetime.fromisoformat(package.modified_time)
    return replace(package, modified_time=None)


# -- the registry -----------------------------------------------------------------------------------------


def test_a_missing_group_lists_as_none_after_one_describe(side: Side) -> None:
    assert side.registry.list_group("no-such-group") is None
    assert side.calls() == Counter({"DescribeModelPackageGroup": 1})


def test_a_created_package_lists_with_its_summary_and_describes_in_full(registry: Registry) -> None:
    arn = registry.create_package(spec(), SERVED)

    assert arn == package_arn(1)
    summary = PackageSummary(arn, 1, ApprovalStatus.PENDING, Lifecycle("Development", "PendingApproval"))
    assert registry.list_group(GROUP) == GroupListing(GROUP, GROUP_SPEC.description, (summary,))
    assert described(registry, arn) == created()


def test_every_group_lists_at_once_with_its_summaries_in_version_order(
    side: Side, registry: Registry
) -> None:
    """`list_groups` (a whole-registry plan's read) answers what `list_group` answers, for every group
    whose name starts with the prefix, in one listing page of groups and one of packages."""
    registry.create_package(spec("1"), SERVED)
    registry.create_package(spec("2"), SERVED)
    before = side.calls()

    listings = registry.list_groups()

    assert side.calls() - before == Counter({"ListModelPackageGroups": 1, "ListModelPackages": 1})
    listing = listings[GROUP]
    assert [s.package_version for s in listing.summaries] == [1, 2]
    assert listings == {GROUP: registry.list_group(GROUP)}
    assert registry.list_groups(GROUP[:3]) == listings
    assert registry.list_groups("zz-no-such-prefix") == {}


def test_versions_count_per_group_and_are_never_reused(registry: Registry) -> None:
    first = registry.create_package(spec("1"), SERVED)
    second = registry.create_package(spec("2"), SERVED)
    registry.delete_package(second)
    registry.delete_package(second)  # already gone: success, as for a retried delete
    third = registry.create_package(spec("3"), SERVED)

    listing = registry.list_group(GROUP)
    assert listing is not None
    assert [(s.arn, s.package_version) for s in listing.summaries] == [(first, 1), (third, 3)]
    with pytest.raises(NotFoundError, match="DescribeModelPackage"):
        registry.describe_package(second)


def test_a_client_token_replay_returns_the_first_package_and_other_parameters_are_refused(
    registry: Registry,
) -> None:
    first = registry.create_package(spec(), SERVED)

    assert registry.create_package(spec(), SERVED) == first
    with pytest.raises(GatewayError) as refused:
        registry.create_package(replace(spec(), description="another description"), SERVED)
    assert refused.value.code == "ValidationException"
    listing = registry.list_group(GROUP)
    assert listing is not None and [s.arn for s in listing.summaries] == [first]


def test_an_update_changes_only_what_it_sets_and_merges_metadata(side: Side, registry: Registry) -> None:
    arn = registry.create_package(spec(), SERVED)
    change = PackageUpdate(
        approval=ApprovalStatus.APPROVED,
        approval_reason="mlsync: alias @champion",
        lifecycle=Lifecycle("Production", "Approved"),
        metadata_set={"param.extra": "1", "metric.accuracy": "0.95"},
        metadata_remove=("param.depth",),
    )

    registry.update_package(arn, change)

    metadata = {k: v for k, v in spec().customer_metadata.items() if k != "param.depth"}
    assert described(registry, arn) == replace(
        created(),
        approval=ApprovalStatus.APPROVED,
        approval_description="mlsync: alias @champion",
        lifecycle=Lifecycle("Production", "Approved"),
        customer_metadata={**metadata, "param.extra": "1", "metric.accuracy": "0.95"},
        modified_by=side.caller,
    )


def test_an_update_that_sets_nothing_sends_nothing(side: Side, registry: Registry) -> None:
    arn = registry.create_package(spec(), SERVED)

    registry.update_package(arn, PackageUpdate())

    assert "UpdateModelPackage" not in side.calls()


def test_approval_transitions_are_those_sagemaker_documents(registry: Registry) -> None:
    pairs = [(current, wanted) for current in ApprovalStatus for wanted in ApprovalStatus]
    for number, (current, wanted) in enumerate(pairs, start=1):
        arn = registry.create_package(replace(spec(str(number)), approval=current, lifecycle=None), SERVED)
        change = PackageUpdate(approval=wanted, metadata_set={"param.extra": "1"})
        if wanted is current or wanted.value in APPROVAL_TRANSITIONS[current.value]:
            registry.update_package(arn, change)
            assert registry.describe_package(arn).approval is wanted
            continue
        with pytest.raises(GatewayError, match="PendingManualApproval") as refused:
            registry.update_package(arn, change)
        assert refused.value.code == "ValidationException"
        # Refused whole: the metadata it also set is not there either.
        assert registry.describe_package(arn).customer_metadata == spec(str(number)).customer_metadata


def test_a_key_both_set_and_removed_is_refused(registry: Registry) -> None:
    arn = registry.create_package(spec(), SERVED)

    with pytest.raises(GatewayError, match=r"param\.depth") as refused:
        registry.update_package(
            arn, PackageUpdate(metadata_set={"param.depth": "4"}, metadata_remove=("param.depth",))
        )
    assert refused.value.code == "ValidationException"


def test_group_names_are_unique_ignoring_case_while_lookups_are_exact(registry: Registry) -> None:
    another = desired_group(SourceModel(GROUP.upper()), SETTINGS)

    with pytest.raises(GatewayError) as refused:
        registry.create_group(replace(another, name=GROUP.upper()))

    assert refused.value.code == "Conflict"
    assert registry.list_group(GROUP.upper()) is None and registry.group_tags(GROUP.upper()) is None
    assert registry.list_group(GROUP) == GroupListing(GROUP, GROUP_SPEC.description, ())
    assert registry.group_tags(GROUP) == GROUP_SPEC.tags


def test_creating_a_group_the_model_already_has_is_success(registry: Registry) -> None:
    registry.create_group(GROUP_SPEC)  # a concurrent push made it: its owner tag names this model

    with pytest.raises(GatewayError, match=GROUP) as refused:
        registry.create_group(replace(GROUP_SPEC, model_name="fraud"))
    assert refused.value.code == "Conflict"


def test_what_does_not_exist_is_not_found(side: Side) -> None:
    with pytest.raises(NotFoundError, match="CreateModelPackage"):
        side.registry.create_package(spec(), SERVED)
    with pytest.raises(NotFoundError, match="DescribeModelPackage"):
        side.registry.describe_package(package_arn(9))
    with pytest.raises(NotFoundError, match="UpdateModelPackage"):
        side.registry.update_package(package_arn(9), PackageUpdate(approval=ApprovalStatus.APPROVED))


def test_a_review_is_reported_by_describe_with_its_author_and_description(
    side: Side, registry: Registry
) -> None:
    arn = registry.create_package(spec(), SERVED)

    side.review(arn, ApprovalStatus.REJECTED, "bias in the holdout set")

    listing = registry.list_group(GROUP)
    assert listing is not None and listing.summaries[0].approval is ApprovalStatus.REJECTED
    assert described(registry, arn) == replace(
        created(),
        approval=ApprovalStatus.REJECTED,
        approval_description="bias in the holdout set",
        modified_by=REVIEWER,
    )


def test_a_model_card_is_kept_replaced_whole_and_frozen_once_a_reviewer_archives_it(
    side: Side, registry: Registry
) -> None:
    arn = registry.create_package(spec(), SERVED)
    written = ModelCard('{"intended_uses":{"intended_uses":"churn scoring"}}', "Approved")

    registry.update_package(arn, PackageUpdate(model_card=written))
    assert registry.describe_package(arn).model_card == written

    archived = replace(written, status="Archived")
    side.edit_card(arn, archived)
    package = described(registry, arn)
    assert (package.model_card, package.modified_by) == (archived, REVIEWER)
    with pytest.raises(GatewayError, match="Model Card is in Archived state") as refused:
        registry.update_package(
            arn, PackageUpdate(model_card=replace(written, content='{"intended_uses":{}}'))
        )
    assert refused.value.code == "ValidationException"
    assert registry.describe_package(arn).model_card == archived


def test_a_create_whose_answer_is_lost_is_replayed_to_the_same_package(
    side: Side, registry: Registry
) -> None:
    side.fail_next("CreateModelPackage", "InternalFailure", True)
    with pytest.raises(GatewayError) as failed:
        registry.create_package(spec(), SERVED)
    assert failed.value.code == "InternalFailure"

    assert registry.create_package(spec(), SERVED) == package_arn(1)
    listing = registry.list_group(GROUP)
    assert listing is not None and len(listing.summaries) == 1


def test_a_failed_update_changes_nothing(side: Side, registry: Registry) -> None:
    arn = registry.create_package(spec(), SERVED)
    side.fail_next("UpdateModelPackage", "AccessDeniedException", False)

    with pytest.raises(GatewayError) as failed:
        registry.update_package(arn, PackageUpdate(approval=ApprovalStatus.APPROVED))

    assert failed.value.code == "AccessDeniedException"
    assert registry.describe_package(arn).approval is ApprovalStatus.PENDING


def test_the_same_calls_reach_sagemaker(side: Side, registry: Registry) -> None:
    registry.list_group("no-such-group")
    first = registry.create_package(spec("1"), SERVED)
    registry.create_package(spec("1"), SERVED)
    registry.create_package(spec("2"), SERVED)
    registry.list_group(GROUP)
    registry.describe_package(first)
    registry.update_package(first, PackageUpdate())
    registry.update_package(first, PackageUpdate(approval_reason="why"))
    registry.delete_package(first)
    registry.delete_package(first)
    registry.create_group(GROUP_SPEC)
    registry.group_tags("no-such-group")

    assert side.calls() == Counter(
        {
            "CreateModelPackageGroup": 2,
            "DescribeModelPackageGroup": 4,
            "ListTags": 1,
            "CreateModelPackage": 3,
            "ListModelPackages": 1,
            "DescribeModelPackage": 1,
            "UpdateModelPackage": 1,
            "DeleteModelPackage": 2,
        }
    )


def test_a_group_policy_is_put_read_back_as_sent_and_deleted(side: Side, registry: Registry) -> None:
    policy = '{"Statement":[{"Effect":"Allow","Sid":"MlsyncReadGroup"}],"Version":"2012-10-17"}'
    assert registry.group_arn(GROUP) == f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:model-package-group/{GROUP}"
    assert registry.get_group_policy(GROUP) is None

    registry.put_group_policy(GROUP, policy)

    assert registry.get_group_policy(GROUP) == policy
    registry.delete_group_policy(GROUP)
    registry.delete_group_policy(GROUP)  # already gone: deleted
    assert registry.get_group_policy(GROUP) is None
    assert registry.get_group_policy("no-such-group") is None
    with pytest.raises(NotFoundError):
        registry.put_group_policy("no-such-group", policy)
    assert {op: n for op, n in side.calls().items() if "Policy" in op} == {
        "GetModelPackageGroupPolicy": 4,
        "PutModelPackageGroupPolicy": 2,
        "DeleteModelPackageGroupPolicy": 2,
    }


def test_the_default_image_is_this_accounts_pyfunc_image(side: Side) -> None:
    assert side.registry.default_image("3.1.0") == IMAGE


def test_the_fake_restates_the_emulators_tables() -> None:
    assert ACCOUNT_ID == DEFAULT_ACCOUNT_ID
    assert set(OPERATIONS) >= MemoryRegistry.OPERATIONS
    assert MemoryRegistry.WRITE_OPERATIONS == WRITE_OPERATIONS & MemoryRegistry.OPERATIONS


def test_a_failure_for_an_operation_the_fake_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="no operation 'CreateModelPackages'"):
        MemoryRegistry().fail_next("CreateModelPackages")


# -- S3 ---------------------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "moto"])
def storage(request: pytest.FixtureRequest) -> Iterator[Storage]:
    if request.param == "memory":
        yield MemoryStorage()
        return
    with mock_aws():
        clients = aws_clients(REGION)
        clients.s3.create_bucket(Bucket="bucket")
        yield S3Storage(clients.s3)


def test_storage_keeps_documents_and_uploads_a_key_only_once(storage: Storage, tmp_path: Path) -> None:
    document = Document("s3://bucket/mlsync/documents/a.json", b'{"a": 1}', "sha256:" + "0" * 64)
    upload = tmp_path / "model.tar.gz"
    upload.write_bytes(b"model bytes")
    storage.put_document(document)

    assert storage.upload_file(upload, "s3://bucket/mlsync/artifacts/x/model.tar.gz") is True
    assert storage.upload_file(upload, "s3://bucket/mlsync/artifacts/x/model.tar.gz") is False
    assert storage.read(document.s3_uri) == b'{"a": 1}'
    assert storage.list_prefix("s3://bucket/mlsync/") == ["artifacts/x/model.tar.gz", "documents/a.json"]
    storage.download_file("s3://bucket/mlsync/artifacts/x/model.tar.gz", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == b"model bytes"


def test_storage_reports_a_missing_key_as_not_found(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="GetObject"):
        storage.read("s3://bucket/mlsync/missing")
    with pytest.raises(NotFoundError, match="Download"):
        storage.download_file("s3://bucket/mlsync/missing", tmp_path / "missing")
    assert storage.list_prefix("s3://bucket/nothing/") == []


# -- MLflow -----------------------------------------------------------------------------------------------

MLMODEL = "flavors:\n  python_function: {loader_module: mlflow.pyfunc.model}\nmlflow_version: 3.1.0\n"


def memory_source(model_dir: Path) -> MemorySource:
    source = MemorySource()
    source.add_version(MODEL, tags={"team": "risk"}, model_dir=model_dir)
    source.add_version(MODEL, aliases=["champion"], model_dir=model_dir)
    source.add_version(MODEL, model_dir=model_dir)
    return source


def mlflow_source(model_dir: Path) -> Source:
    """The same three versions in a real (SQLite) MLflow registry, registered from a bare directory."""
    client = MlflowClient()
    client.create_registered_model(MODEL)
    for _ in range(3):
        client.create_model_version(MODEL, source=str(model_dir))
    client.set_model_version_tag(MODEL, "1", "team", "risk")
    client.set_registered_model_alias(MODEL, "champion", "2")
    return MlflowSource()


@pytest.fixture(params=["memory", "mlflow"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Source:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text(MLMODEL)
    if request.param == "memory":
        return memory_source(model_dir)
    request.getfixturevalue("mlflow_uri")  # a fresh SQLite registry as the tracking URI
    return mlflow_source(model_dir)


def test_the_source_reads_versions_in_order_and_writes_tags_and_aliases(
    source: Source, tmp_path: Path
) -> None:
    def versions() -> list[tuple[str, tuple[str, ...], dict[str, str]]]:
        return [(v.version, v.aliases, dict(v.tags)) for v in source.read_model(MODEL).versions]

    assert source.model_names() == [MODEL]
    assert versions() == [("1", (), {"team": "risk"}), ("2", ("champion",), {}), ("3", (), {})]

    source.set_version_tags(MODEL, "1", {"team": "risk", "owner": "ana"})
    source.set_alias(MODEL, "champion", "3")

    assert versions() == [
        ("1", (), {"team": "risk", "owner": "ana"}),
        ("2", (), {}),
        ("3", ("champion",), {}),
    ]
    downloaded = source.download_model(source.artifact_location(MODEL, "1"), tmp_path / "dl")
    assert (downloaded / "MLmodel").read_text() == MLMODEL


def test_the_source_reads_and_writes_the_registered_models_own_tags(source: Source) -> None:
    assert dict(source.read_model(MODEL).tags) == {}

    source.set_model_tags(MODEL, {"mlsync.group_policy": "none"})
    source.set_model_tags(MODEL, {"mlsync.group_policy": "sha256:ab"})

    assert dict(source.read_model(MODEL).tags) == {"mlsync.group_policy": "sha256:ab"}
    assert all(v.tags.get("mlsync.group_policy") is None for v in source.read_model(MODEL).versions)


def test_the_source_refuses_what_does_not_exist(source: Source) -> None:
    with pytest.raises(SourceError):
        source.read_model("no such model")
    with pytest.raises(SourceError):
        source.set_version_tags(MODEL, "9", {"team": "risk"})
    with pytest.raises(SourceError):
        source.set_alias(MODEL, "champion", "9")


def test_the_memory_source_records_only_the_tags_whose_value_changed(tmp_path: Path) -> None:
    source = memory_source(tmp_path)

    source.set_version_tags(MODEL, "1", {"team": "risk", "owner": "ana"})
    source.set_version_tags(MODEL, "1", {})

    assert source.tag_writes == [TagWrite(MODEL, "1", "owner", "ana")]
    assert source.calls == ["set_version_tags"]


def test_the_memory_source_skips_versions_that_are_not_ready_and_never_reuses_a_number() -> None:
    source = MemorySource()
    source.add_version(MODEL)
    source.add_version(MODEL, status="PENDING_REGISTRATION")
    source.delete_version(MODEL, "1")

    assert source.add_version(MODEL) == "3"
    model = source.read_model(MODEL)
    assert ([v.version for v in model.versions], model.registering) == (["3"], ("2",))


def test_the_memory_registry_times_changes_by_its_clock() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    registry = MemoryRegistry(clock=lambda: moment)
    registry.create_group(GROUP_SPEC)
    arn = registry.create_package(spec(), SERVED)

    registry.review(arn, ApprovalStatus.APPROVED, by="alice")

    package = registry.package(arn)
    assert (package.modified_by, package.modified_time) == ("alice", "2026-01-02T03:04:05+00:00")
    assert registry.calls == ["CreateModelPackageGroup", "CreateModelPackage"]  # a review is not logged
