"""End to end: the registry-store plugin in real MLflow processes, against the SageMaker emulator process.

Client side, the tests use nothing but the plain MLflow API with `MLFLOW_REGISTRY_URI=mlsync+sqlite:///...`
and check that SageMaker follows each step. Server side, a real `mlflow server` runs with
`--registry-store-uri mlsync+sqlite:///...` and a plain client (no plugin) registers over HTTP.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import mlflow
import pytest
from e2e_support import calls_since, mlsync, packages, reviewer, writes
from mlflow_models import AS_MODEL
from mlflow_server import mlflow_server
from sklearn.linear_model import LogisticRegression

from mlflow_sagemaker_registry.emulator import EmulatorProcess
from mlflow_sagemaker_registry.mapping.identity import group_name
from mlflow_sagemaker_registry.mapping.tags import TAG_PACKAGE_ARN, TAG_REVIEW_DESCRIPTION, TAG_SYNC_STATUS
from mlflow_sagemaker_registry.triggers.plugin import MirroringStore, wait_for_mirrors

pytestmark = pytest.mark.e2e

BUCKET = "mlsync-plugin"
PENDING, APPROVED, REJECTED = "PendingManualApproval", "Approved", "Rejected"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess() as process:
        boto3.client(
            "s3",
            endpoint_url=process.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket=BUCKET)
        yield process


@pytest.fixture(scope="module")
def empty_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with its schema: copying it is 100 times faster than migrating anew."""
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def plugin_uri(
    emulator: EmulatorProcess, empty_database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh SQLite registry used the way a data scientist would: MLFLOW_REGISTRY_URI=mlsync+sqlite."""
    copy_database(empty_database, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"mlsync+{uri}")
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.url)
    monkeypatch.setenv("MLSYNC_S3_PREFIX", f"s3://{BUCKET}/mlsync")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    yield f"mlsync+{uri}"
    mlflow.set_tracking_uri(previous)


def copy_database(template: Path, path: Path) -> None:
    """The template copied to `path`, its default experiment's artifacts beside the copy (`mlruns/0`), as
    in a database made there: the template's own location is the working directory it was made from."""
    shutil.copy(template, path)
    with closing(sqlite3.connect(path)) as database, database:
        database.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            (str(path.parent / "mlruns" / "0"),),
        )


def registry_store(client: mlflow.MlflowClient) -> Any:
    """The registry store behind a client (through an untyped MLflow method)."""
    return client._get_registry_client().store  # type: ignore[no-untyped-call]


def settle() -> None:
    """Wait for the plugin's background mirror (a user never has to: the process waits at exit)."""
    assert wait_for_mirrors(60), "the plugin did not finish mirroring within 60 s"


def approvals(model: str) -> dict[str, str]:
    """SageMaker's approval of each package of the model's group, by MLflow version."""
    described = packages(group_name(model))
    versions = [package["CustomerMetadataProperties"]["mlflow.version"] for package in described]
    assert len(versions) == len(set(versions)), f"a version was mirrored twice: {versions}"
    return {v: package["ModelApprovalStatus"] for v, package in zip(versions, described, strict=True)}


def sync_status(model: str, version: str) -> str:
    return str(mlflow.MlflowClient().get_model_version(model, version).tags.get(TAG_SYNC_STATUS, ""))


def writes_since(emulator: EmulatorProcess, mark: int) -> list[str]:
    return writes(calls_since(emulator, mark))


def mlsync_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("mlflow_sagemaker_registry")]


def log_model(registered_model_name: str | None = None) -> tuple[str, str | None]:
    """Log a tiny model, registering it as usual when a name is given: (model URI, version).

    `pip_requirements` is given so that MLflow skips inferring them, which takes seconds. The default
    experiment is named because an experiment another test module made active is not in this database.
    """
    with mlflow.start_run(experiment_id="0"):
        model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
        info = mlflow.sklearn.log_model(
            model,
            **AS_MODEL,
            registered_model_name=registered_model_name,
            pip_requirements=["scikit-learn"],
        )
    version = info.registered_model_version
    return str(info.model_uri), None if version is None else str(version)


@pytest.mark.mlflow_compat
def test_sagemaker_follows_each_step_of_the_plain_mlflow_api(plugin_uri: str) -> None:
    name = "churn model"
    client = mlflow.MlflowClient()
    assert isinstance(registry_store(client), MirroringStore)

    model_uri, _ = log_model(registered_model_name=name)  # as usual: log_model registers version 1
    mlflow.register_model(model_uri, name)  # and mlflow.register_model version 2
    settle()
    assert approvals(name) == {"1": PENDING, "2": PENDING}
    assert sync_status(name, "1").startswith("synced") and sync_status(name, "2").startswith("synced")

    client.transition_model_version_stage(name, "1", "Production")
    settle()
    assert approvals(name) == {"1": APPROVED, "2": PENDING}

    client.set_registered_model_alias(name, "champion", "2")
    settle()
    assert approvals(name) == {"1": APPROVED, "2": APPROVED}

    client.set_model_version_tag(name, "1", "sagemaker.approval", "Rejected")
    settle()
    assert approvals(name) == {"1": REJECTED, "2": APPROVED}

    client.delete_model_version(name, "2")
    settle()
    assert approvals(name) == {"1": REJECTED, "2": REJECTED}  # kept as history, no longer deployable


@pytest.mark.mlflow_compat
def test_descriptions_renames_and_deletes_reach_sagemaker(plugin_uri: str, emulator: EmulatorProcess) -> None:
    name, new_name = "fraud model", "fraud model v2"
    client = mlflow.MlflowClient()
    log_model(registered_model_name=name)
    settle()
    mark = len(emulator.calls())

    client.update_model_version(name, "1", "retrained on May data")
    client.update_registered_model(name, "flags fraud")
    settle()
    # The package points at a new run document with the description (its own description is creation-only).
    assert writes_since(emulator, mark) == ["UpdateModelPackage"]
    assert sync_status(name, "1").startswith("synced")

    client.rename_registered_model(name, new_name)
    settle()
    assert approvals(new_name) == {"1": PENDING}  # SageMaker cannot rename a group: a new one
    assert approvals(name) == {"1": REJECTED}  # the old name's package is history
    arn = client.get_model_version(new_name, "1").tags[TAG_PACKAGE_ARN]
    assert f"/{group_name(new_name)}/" in arn

    client.delete_registered_model(new_name)
    settle()
    assert approvals(new_name) == {"1": REJECTED}


def test_a_deletion_rejects_only_the_packages_of_its_own_registry(
    plugin_uri: str,
    emulator: EmulatorProcess,
    empty_database: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "shared name"
    log_model(registered_model_name=name)
    settle()
    other = tmp_path / "other" / "mlflow.db"  # a second registry with a model of the same name
    other.parent.mkdir()
    copy_database(empty_database, other)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"mlsync+sqlite:///{other}")
    mlflow.set_tracking_uri(f"sqlite:///{other}")
    log_model(registered_model_name=name)
    settle()

    mlflow.MlflowClient().delete_model_version(name, "1")
    settle()

    sagemaker = boto3.client("sagemaker")
    listed = sagemaker.list_model_packages(ModelPackageGroupName=group_name(name))["ModelPackageSummaryList"]
    assert [p["ModelApprovalStatus"] for p in listed] == [PENDING, REJECTED]  # the first registry's stays
    mark = len(emulator.calls())
    mlflow.MlflowClient().delete_registered_model(name)
    settle()
    assert writes_since(emulator, mark) == []  # already Rejected: nothing to change


@pytest.mark.parametrize("registry", ["plugin", "plain"])
def test_push_after_the_plugin_creates_nothing_new(
    plugin_uri: str, emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, registry: str
) -> None:
    """Plugin and CLI see one source identity, with or without `mlsync+`: no duplicate packages."""
    name = f"identity model ({registry})"
    log_model(registered_model_name=name)
    settle()
    if registry == "plain":
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", plugin_uri.removeprefix("mlsync+"))
    mark = len(emulator.calls())

    result = mlsync("push", name)

    assert result.exit_code == 0, result.output
    assert "In sync" in result.output
    assert writes_since(emulator, mark) == []
    assert approvals(name) == {"1": PENDING}


def test_an_unrelated_registration_never_undoes_a_review_and_the_review_reaches_mlflow(
    plugin_uri: str, emulator: EmulatorProcess
) -> None:
    name = "reviewed through the plugin"
    model_uri, _ = log_model(registered_model_name=name)
    settle()
    client = mlflow.MlflowClient()
    arn = client.get_model_version(name, "1").tags[TAG_PACKAGE_ARN]
    reviewer(emulator.url).update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus=APPROVED, ApprovalDescription="signed off"
    )
    mark = len(emulator.calls())

    mlflow.register_model(model_uri, name)  # a data scientist registers version 2
    settle()

    assert approvals(name) == {"1": APPROVED, "2": PENDING}
    updates = [c.params for c in calls_since(emulator, mark) if c.operation == "UpdateModelPackage"]
    assert not [p for p in updates if p["ModelPackageArn"] == arn and "ModelApprovalStatus" in p]
    tags = client.get_model_version(name, "1").tags
    assert (tags["sagemaker.approval"], tags[TAG_REVIEW_DESCRIPTION]) == (APPROVED, "signed off")
    mark = len(emulator.calls())
    assert "In sync" in mlsync("push", name).output
    assert writes_since(emulator, mark) == []


def test_registration_succeeds_while_sagemaker_is_down_and_push_repairs_it(
    plugin_uri: str,
    emulator: EmulatorProcess,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = "offline model"
    with EmulatorProcess() as stopped:
        down = stopped.url
    monkeypatch.setenv("AWS_ENDPOINT_URL", down)  # the emulator is stopped: connections are refused
    monkeypatch.setenv("MLSYNC_MAX_ATTEMPTS", "1")

    with caplog.at_level(logging.WARNING):
        _, version = log_model(registered_model_name=name)
        settle()

    assert version == "1"
    status = sync_status(name, "1")
    assert status.startswith("failed: ") and "Could not connect" in status
    (warning,) = mlsync_warnings(caplog)  # once: the engine's, as it isolates the model's failure
    assert "could not be planned" in warning and "recorded on its versions" in warning

    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.url)
    result = mlsync("push", name)

    assert result.exit_code == 0, result.output
    assert approvals(name) == {"1": PENDING}
    assert sync_status(name, "1").startswith("synced")


def test_a_refused_create_is_recorded_and_logged_once(
    plugin_uri: str, emulator: EmulatorProcess, caplog: pytest.LogCaptureFixture
) -> None:
    name = "denied model"
    emulator.inject_fault("CreateModelPackage", "AccessDeniedException", message="not authorized")

    with caplog.at_level(logging.WARNING):
        log_model(registered_model_name=name)
        settle()

    assert sync_status(name, "1").startswith("failed: ") and "not authorized" in sync_status(name, "1")
    assert len(mlsync_warnings(caplog)) == 1
    assert approvals(name) == {}


def test_a_script_that_exits_right_after_registering_is_mirrored(plugin_uri: str) -> None:
    name = "batch job model"
    model_uri, _ = log_model()
    script = f"import mlflow; mlflow.register_model({model_uri!r}, {name!r})"  # and exit at once

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert approvals(name) == {"1": PENDING}
    assert sync_status(name, "1").startswith("synced")


def test_threads_share_one_store_and_every_version_is_mirrored_once(plugin_uri: str) -> None:
    model_uri, _ = log_model()
    names = [f"threaded model {i}" for i in range(4)]
    for name in names:
        mlflow.MlflowClient().create_registered_model(name)

    def register(name: str) -> int:
        client = mlflow.MlflowClient()
        client.create_model_version(name, model_uri)
        return id(registry_store(client))

    with ThreadPoolExecutor(8) as pool:
        stores = set(pool.map(register, names * 2))
    settle()

    assert len(stores) == 1  # MLflow caches the store per URI: one object, shared by every thread
    for name in names:
        assert approvals(name) == {"1": PENDING, "2": PENDING}


# -- server side -------------------------------------------------------------------------------------

SOURCE_ID = "team-registry"


@dataclass(frozen=True)
class Server:
    url: str
    emulator: EmulatorProcess
    log: Path


@pytest.fixture(scope="module")
def server(
    emulator: EmulatorProcess, empty_database: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """`mlflow server --registry-store-uri mlsync+sqlite:///...`, serving artifacts as it does by default.

    The plugin reads its settings when it first mirrors, from MLSYNC_* or `mlsync.toml` in the server's
    working directory: `tracking_uri` is the server's own URL, so models are downloaded through its
    artifact proxy, and `source_id` names the registry alike for the server and for `mlsync push`.
    """
    root = tmp_path_factory.mktemp("server")
    copy_database(empty_database, root / "mlflow.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLSYNC_", "AWS_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(root / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(root / "no-aws-credentials"),
        AWS_ENDPOINT_URL=emulator.url,
        MLSYNC_MAX_ATTEMPTS="1",
    )
    plugin = ["--registry-store-uri", f"mlsync+sqlite:///{root / 'mlflow.db'}"]
    with mlflow_server(root, args=plugin, env=env) as url:
        (root / "mlsync.toml").write_text(
            f'tracking_uri = "{url}"\nsource_id = "{SOURCE_ID}"\ns3_prefix = "s3://{BUCKET}/server"\n'
        )
        yield Server(url, emulator, root / "mlflow-server.log")


@pytest.fixture
def http_client(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """This process as a plain MLflow client of the server: no plugin URI anywhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.emulator.url)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server.url)
    yield server
    mlflow.set_tracking_uri(previous)


def eventually(check: Callable[[], Any], what: str, server: Server) -> Any:
    """Poll `check` until it returns something truthy: the server mirrors in the background."""
    deadline = time.monotonic() + 60
    while not (result := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within 60 s; server log:\n{server.log.read_text()[-5000:]}")
        time.sleep(0.2)
    return result


@pytest.mark.mlflow_compat
def test_a_server_with_the_plugin_mirrors_registrations_from_a_plain_client(http_client: Server) -> None:
    name = "served model"
    assert not isinstance(registry_store(mlflow.MlflowClient()), MirroringStore)

    log_model(registered_model_name=name)  # over REST: the client knows nothing of mlsync

    eventually(lambda: sync_status(name, "1").startswith("synced"), "the mirror", http_client)
    assert approvals(name) == {"1": PENDING}
    package_arn = mlflow.MlflowClient().get_model_version(name, "1").tags[TAG_PACKAGE_ARN]
    assert package_arn.endswith(f"/{group_name(name)}/1")


def test_a_server_whose_sagemaker_refuses_still_registers_and_push_repairs_it(
    http_client: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "refused served model"
    http_client.emulator.inject_fault("CreateModelPackage", "AccessDeniedException", message="denied by SCP")

    assert log_model(registered_model_name=name)[1] == "1"

    eventually(lambda: sync_status(name, "1").startswith("failed: "), "the failure status", http_client)
    assert "denied by SCP" in sync_status(name, "1")
    assert approvals(name) == {}

    monkeypatch.setenv("MLSYNC_SOURCE_ID", SOURCE_ID)
    monkeypatch.setenv("MLSYNC_S3_PREFIX", f"s3://{BUCKET}/server")
    result = mlsync("push", name)

    assert result.exit_code == 0, result.output
    assert approvals(name) == {"1": PENDING}
    assert sync_status(name, "1").startswith("synced")
