"""The executor over the in-memory ports: each action's handler, what a failure skips and records, the report.

No I/O but a temporary directory for staging: plans are built by hand from the mapping's own specs, so
each handler is tested alone, and failures are injected where they are hard to reach for real.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mlflow_sagemaker_registry.actions import (
    Action,
    CreateGroup,
    CreatePackage,
    DeletePackage,
    LinkVersion,
    MoveAlias,
    PullApproval,
    RecordProblem,
    UpdatePackage,
)
from mlflow_sagemaker_registry.config import Settings
from mlflow_sagemaker_registry.domain import ApprovalStatus, Document, PackageSpec, PackageUpdate, SourceModel
from mlflow_sagemaker_registry.errors import GatewayError
from mlflow_sagemaker_registry.executor import Executor, Failure, Report
from mlflow_sagemaker_registry.mapping import desired_group, desired_package, sync_status
from mlflow_sagemaker_registry.mapping.tags import (
    MAX_TAG_VALUE,
    TAG_APPROVED_AT,
    TAG_PACKAGE_ARN,
    TAG_SYNC_STATUS,
    TAG_SYNCED_APPROVAL,
)
from mlflow_sagemaker_registry.planner import Plan
from mlflow_sagemaker_registry.testing import (
    MODEL_MLFLOW_VERSION,
    PYFUNC_ENVIRONMENT,
    AliasWrite,
    MemoryRegistry,
    MemorySource,
    MemoryStorage,
    memory_gateways,
)

SETTINGS = Settings(s3_prefix="s3://bucket/mlsync")
MODEL = "churn"
OTHER = "fraud"
APPROVED = ApprovalStatus.APPROVED


class Ports:
    """One executor's fakes, with the specs the mapping gives for their versions."""

    def __init__(self, settings: Settings = SETTINGS) -> None:
        self.source = MemorySource()
        self.registry = MemoryRegistry()
        self.storage = MemoryStorage()
        self.settings = settings

    def apply(self, *actions: Action, progress: list[Action] | None = None) -> Report:
        executor = Executor(self.settings, memory_gateways(self.source, self.registry, self.storage))
        return executor.apply(Plan(actions), None if progress is None else progress.append)

    def group(self, model: str = MODEL) -> CreateGroup:
        return CreateGroup(desired_group(SourceModel(model), self.settings))

    def spec(self, version: str = "1", model: str = MODEL) -> PackageSpec:
        group = desired_group(SourceModel(model), self.settings).name
        found = self.source.get_version(model, version)
        return desired_package(found, group, self.source.identity(), self.settings)

    def created(self, version: str = "1", model: str = MODEL) -> str:
        """The ARN of the version's package, created through the executor."""
        if self.registry.group(desired_group(SourceModel(model), self.settings).name) is None:
            self.apply(self.group(model))
        return self.apply(CreatePackage(self.spec(version, model))).packages_created[0]

    def tags(self, version: str = "1", model: str = MODEL) -> dict[str, str]:
        return dict(self.source.get_version(model, version).tags)


@pytest.fixture
def ports() -> Ports:
    ports = Ports()
    ports.source.add_version(MODEL, metrics={"accuracy": 0.9})
    return ports


def assert_recent(stamp: str) -> None:
    """An ISO 8601 UTC time of the last few seconds (what `mlsync.approved_at` holds)."""
    assert datetime.now(timezone.utc) - datetime.fromisoformat(stamp) < timedelta(seconds=5)


# -- one handler per action ------------------------------------------------------------------------------


def test_create_group_creates_and_reports_the_group(ports: Ports) -> None:
    report = ports.apply(ports.group())

    assert ports.registry.group(MODEL) == desired_group(SourceModel(MODEL), SETTINGS)
    assert report.groups_created == [MODEL]


def test_create_package_writes_documents_and_artifact_then_the_package_then_the_back_link(
    ports: Ports,
) -> None:
    spec = ports.spec()
    ports.apply(ports.group())

    report = ports.apply(CreatePackage(spec))

    (arn,) = report.packages_created
    assert ports.storage.calls == ["PutObject", "PutObject", "HeadObject", "Upload"]
    assert {d.s3_uri for d in spec.documents} < set(ports.storage.objects)
    assert report.artifacts_uploaded == 1
    _, inference = ports.registry.created_with(arn)
    assert inference.container.image == ports.registry.default_image(MODEL_MLFLOW_VERSION)
    assert inference.container.environment == PYFUNC_ENVIRONMENT
    assert inference.container.model_data_url in ports.storage.objects
    assert ports.tags() == {
        TAG_PACKAGE_ARN: arn,
        TAG_SYNC_STATUS: sync_status(spec),
        TAG_SYNCED_APPROVAL: ApprovalStatus.PENDING.value,
    }


def test_an_approved_package_stamps_when_it_was_approved(ports: Ports) -> None:
    ports.source.add_version(MODEL, "2", aliases=["champion"])

    ports.created("2")

    assert ports.tags("2")[TAG_SYNCED_APPROVAL] == APPROVED.value
    assert_recent(ports.tags("2")[TAG_APPROVED_AT])
    ports.created("1")
    assert TAG_APPROVED_AT not in ports.tags("1")  # pending: nothing to stamp


def test_the_stamp_is_written_before_the_synced_approval(ports: Ports) -> None:
    """Tags are written one at a time: a process killed between the two must leave a stamp the next
    run writes again (the synced approval still says "not yet"), never an approval without its stamp."""
    ports.source.add_version(MODEL, "2", aliases=["champion"])

    ports.created("2")

    order = [write.key for write in ports.source.tag_writes if write.version == "2"]
    assert order.index(TAG_APPROVED_AT) < order.index(TAG_SYNCED_APPROVAL) == len(order) - 1


def test_the_same_model_is_uploaded_once_and_a_replayed_plan_creates_nothing(ports: Ports) -> None:
    ports.source.add_version(MODEL, "2")
    plan = (ports.group(), CreatePackage(ports.spec("1")), CreatePackage(ports.spec("2")))

    first = ports.apply(*plan)
    again = ports.apply(*plan)

    assert first.artifacts_uploaded == 1  # both versions hold the same model: one content-addressed key
    assert again.artifacts_uploaded == 0
    assert again.packages_created == first.packages_created  # the ClientToken returns each package
    assert [p.package_version for p in ports.registry.packages(MODEL)] == [1, 2]


def test_the_model_directory_given_is_what_is_staged(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text(
        "flavors:\n  sklearn: {sklearn_version: 1.5.2}\nmlflow_version: 2.9.0\n"
    )
    (model_dir / "model.pkl").write_bytes(b"weights")
    ports = Ports(replace(SETTINGS, realtime_instance_types=("ml.m5.large",)))
    ports.source.add_version(MODEL, model_dir=model_dir)

    _, inference = ports.registry.created_with(ports.created())

    assert inference.container.image.endswith("/mlflow-pyfunc:2.9.0")
    assert inference.domain == "MACHINE_LEARNING"
    assert inference.realtime_instance_types == ("ml.m5.large",)


def test_reference_mode_points_at_the_models_s3_prefix_and_uploads_nothing() -> None:
    prefix = "s3://mlflow-artifacts/1/models/m-1/artifacts/"
    ports = Ports(replace(SETTINGS, artifact_mode="reference"))
    ports.storage.objects[prefix + "MLmodel"] = f"mlflow_version: {MODEL_MLFLOW_VERSION}\n".encode()
    ports.source.add_version(MODEL, artifact_uri=prefix.rstrip("/"))

    report = ports.apply(ports.group(), CreatePackage(ports.spec()))

    _, inference = ports.registry.created_with(report.packages_created[0])
    assert (inference.container.model_data_url, inference.container.compressed) == (prefix, False)
    assert report.artifacts_uploaded == 0 and "Upload" not in ports.storage.calls
    assert "download_model" not in ports.source.calls


def test_update_package_writes_its_documents_then_updates(ports: Ports) -> None:
    arn = ports.created()
    document = ports.spec().run_document
    ports.storage.objects.clear()
    change = PackageUpdate(APPROVED, "mlsync: alias @champion", metadata_set={"param.extra": "1"})

    report = ports.apply(UpdatePackage(arn, MODEL, "1", change, ApprovalStatus.PENDING, (document,)))

    assert list(ports.storage.objects) == [document.s3_uri]
    package = ports.registry.package(arn)
    assert (package.approval, package.approval_description) == (APPROVED, "mlsync: alias @champion")
    assert package.customer_metadata["param.extra"] == "1"
    assert report.packages_updated == [arn]


def test_delete_package_deletes_it(ports: Ports) -> None:
    arn = ports.created()

    report = ports.apply(DeletePackage(arn, MODEL, "1"))

    assert ports.registry.packages(MODEL) == ()
    assert report.packages_deleted == [arn]


@pytest.mark.parametrize("stamp", [False, True])
def test_link_version_writes_its_tags_and_stamps_only_when_asked(ports: Ports, stamp: bool) -> None:
    report = ports.apply(LinkVersion(MODEL, "1", {TAG_SYNCED_APPROVAL: APPROVED.value}, stamp))

    assert ports.tags()[TAG_SYNCED_APPROVAL] == APPROVED.value
    assert (TAG_APPROVED_AT in ports.tags()) is stamp
    assert report.versions_linked == [f"{MODEL}/1"]


def test_pull_approval_writes_its_tags(ports: Ports) -> None:
    tags = {"sagemaker.approval": APPROVED.value, TAG_SYNCED_APPROVAL: APPROVED.value}
    pull = PullApproval(MODEL, "1", "arn", APPROVED, ApprovalStatus.PENDING, tags, True, "alice")

    report = ports.apply(pull)

    assert ports.tags().items() >= tags.items()
    assert_recent(ports.tags()[TAG_APPROVED_AT])
    assert report.approvals_pulled == [f"{MODEL}/1"]


def test_move_alias_points_the_alias_at_the_version(ports: Ports) -> None:
    ports.source.add_version(MODEL, "2", aliases=["champion"])

    report = ports.apply(MoveAlias(MODEL, "1", "champion", "2"))

    assert ports.source.get_version(MODEL, "1").aliases == ("champion",)
    assert ports.source.alias_writes == [AliasWrite(MODEL, "champion", "1")]
    assert report.aliases_moved == [f"{MODEL}@champion"]


def test_record_problem_writes_only_the_sync_status(ports: Ports) -> None:
    report = ports.apply(RecordProblem(MODEL, "1", "failed: no such stage"))

    assert ports.tags() == {TAG_SYNC_STATUS: "failed: no such stage"}
    assert report == Report()


def test_an_empty_plan_calls_nothing(ports: Ports) -> None:
    assert ports.apply() == Report()
    assert ports.source.calls == ports.registry.calls == ports.storage.calls == []


# -- failures --------------------------------------------------------------------------------------------


def test_a_failed_group_skips_its_models_creates_but_not_another_models(ports: Ports) -> None:
    ports.source.add_version(OTHER)
    ports.registry.fail_next("CreateModelPackageGroup")

    report = ports.apply(
        ports.group(), ports.group(OTHER), CreatePackage(ports.spec()), CreatePackage(ports.spec(model=OTHER))
    )

    assert [(f.model_name, f.version, f.action) for f in report.failures] == [
        (MODEL, "", "CreateGroup"),
        (MODEL, "1", "CreatePackage"),
    ]
    why = report.failures[0].message
    assert report.failures[1].message == f"group {MODEL} could not be created: {why}"
    assert ports.tags()[TAG_SYNC_STATUS] == f"failed: group {MODEL} could not be created: {why}"
    assert ports.registry.call_counts()["CreateModelPackage"] == 1
    assert [p.group_name for p in ports.registry.packages(OTHER)] == [OTHER]
    assert not report.ok


def test_a_failed_create_leaves_the_documents_and_artifact_it_wrote_and_no_back_link(ports: Ports) -> None:
    ports.apply(ports.group())
    ports.registry.fail_next("CreateModelPackage")

    report = ports.apply(CreatePackage(ports.spec()))

    assert report.artifacts_uploaded == 1 and report.packages_created == []
    assert ports.tags() == {TAG_SYNC_STATUS: f"failed: {report.failures[0].message}"}


def test_a_failed_upload_creates_no_package(ports: Ports) -> None:
    ports.apply(ports.group())
    ports.storage.fail_next("Upload")

    report = ports.apply(CreatePackage(ports.spec()))

    assert report.failures[0].message.startswith("Upload failed")
    assert "CreateModelPackage" not in ports.registry.calls


def test_an_unexpected_error_fails_its_version_only(ports: Ports, monkeypatch: pytest.MonkeyPatch) -> None:
    """A library's stray exception (not an mlsync error) in one version's step is that version's
    failure, recorded like any other: the other versions are mirrored, and the report is complete."""
    ports.source.add_version(MODEL)
    ports.apply(ports.group())
    put = ports.storage.put_document
    broken = ports.spec("1").run_document.s3_uri

    def put_document(document: Document) -> None:
        if document.s3_uri == broken:
            raise ValueError("I/O operation on closed file")
        put(document)

    monkeypatch.setattr(ports.storage, "put_document", put_document)

    report = ports.apply(CreatePackage(ports.spec("1")), CreatePackage(ports.spec("2")))

    assert [(f.version, f.message) for f in report.failures] == [
        ("1", "unexpected ValueError: I/O operation on closed file")
    ]
    assert len(report.packages_created) == 1 and TAG_PACKAGE_ARN in ports.tags("2")
    assert ports.tags("1") == {TAG_SYNC_STATUS: "failed: unexpected ValueError: I/O operation on closed file"}


def test_a_model_that_cannot_be_staged_is_recorded_on_its_version(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"no MLmodel here")
    ports = Ports()
    ports.source.add_version(MODEL, model_dir=tmp_path)

    report = ports.apply(ports.group(), CreatePackage(ports.spec()))

    assert "no MLmodel file" in report.failures[0].message
    assert ports.tags()[TAG_SYNC_STATUS].startswith("failed: no MLmodel file")
    assert ports.registry.packages(MODEL) == ()


def test_mlflow_writes_after_a_failed_sagemaker_write_of_their_version_are_skipped(ports: Ports) -> None:
    ports.source.add_version(MODEL, "2", aliases=["champion"])
    first, second = ports.created("1"), ports.created("2")
    ports.source.clear_writes()
    ports.registry.fail_next("UpdateModelPackage")
    synced = {TAG_SYNCED_APPROVAL: APPROVED.value}

    report = ports.apply(
        UpdatePackage(first, MODEL, "1", PackageUpdate(APPROVED)),
        PullApproval(MODEL, "1", first, APPROVED, APPROVED, synced),
        LinkVersion(MODEL, "1", synced),
        MoveAlias(MODEL, "1", "champion", "2"),
        UpdatePackage(second, MODEL, "2", PackageUpdate(metadata_set={"param.extra": "1"})),
        LinkVersion(MODEL, "2", {TAG_SYNC_STATUS: "synced again"}),
    )

    assert [(f.version, f.action) for f in report.failures] == [("1", "UpdatePackage")]
    assert [(w.version, w.key) for w in ports.source.tag_writes] == [
        ("1", TAG_SYNC_STATUS),
        ("2", TAG_SYNC_STATUS),
    ]
    assert ports.source.alias_writes == []
    assert (report.packages_updated, report.versions_linked) == ([second], [f"{MODEL}/2"])
    assert report.approvals_pulled == report.aliases_moved == []


def test_a_failure_is_recorded_on_its_version_within_mlflows_tag_limit(ports: Ports) -> None:
    arn = ports.created()
    ports.registry.fail_next("UpdateModelPackage", GatewayError("UpdateModelPackage failed: " + "x" * 6000))

    report = ports.apply(UpdatePackage(arn, MODEL, "1", PackageUpdate(APPROVED)))

    status = ports.tags()[TAG_SYNC_STATUS]
    assert status == f"failed: {report.failures[0].message}"[:MAX_TAG_VALUE]
    assert len(status) == MAX_TAG_VALUE


def test_a_failure_that_cannot_be_recorded_is_logged_and_the_plan_goes_on(
    ports: Ports, caplog: pytest.LogCaptureFixture
) -> None:
    ports.source.add_version(MODEL, "2")
    ports.apply(ports.group())
    ports.source.fail_next("set_version_tags", times=2)  # the back-link, then the record of its failure

    with caplog.at_level(logging.ERROR, logger="mlflow_sagemaker_registry.executor"):
        report = ports.apply(CreatePackage(ports.spec("1")), CreatePackage(ports.spec("2")))

    assert [f.version for f in report.failures] == ["1"]
    assert "could not record the failure on model 'churn' version 1" in caplog.text
    assert len(report.packages_created) == 1
    assert TAG_SYNC_STATUS not in ports.tags("1")
    assert len(ports.registry.packages(MODEL)) == 2  # the package exists: the next plan adopts it


# -- the report and progress -----------------------------------------------------------------------------


def test_progress_hears_every_action_in_order_failed_ones_too(ports: Ports) -> None:
    ports.registry.fail_next("CreateModelPackageGroup")
    actions = (ports.group(), CreatePackage(ports.spec()), RecordProblem(MODEL, "1", "failed: x"))
    heard: list[Action] = []

    ports.apply(*actions, progress=heard)

    assert heard == list(actions)


def test_the_report_as_data_has_every_field(ports: Ports) -> None:
    ports.registry.fail_next("CreateModelPackageGroup", GatewayError("denied", "AccessDenied"))

    report = ports.apply(ports.group(), CreatePackage(ports.spec()))

    assert report.to_dict() == {
        "groups_created": [],
        "packages_created": [],
        "packages_updated": [],
        "packages_deleted": [],
        "versions_linked": [],
        "approvals_pulled": [],
        "aliases_moved": [],
        "group_policies_written": [],
        "artifacts_uploaded": 0,
        "failures": [
            Failure(MODEL, "", "CreateGroup", "denied").__dict__,
            Failure(MODEL, "1", "CreatePackage", f"group {MODEL} could not be created: denied").__dict__,
        ],
    }
