"""MlflowSource against a real MLflow registry: SQLite in a temporary directory, real sklearn models.

The registry is built once per module (logging models is the slow part) and only read by the tests,
except for a model kept apart for the tagging test. One test reads it again through a real
`mlflow server` process on 127.0.0.1, the REST path a production deployment takes.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow.data.numpy_dataset import from_numpy
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
from mlflow_models import AS_MODEL
from mlflow_server import mlflow_server, refused_port
from sklearn.linear_model import LogisticRegression

from mlflow_sagemaker_registry.domain import Dataset
from mlflow_sagemaker_registry.errors import SourceError
from mlflow_sagemaker_registry.sources.mlflow_compat import PROMPT_TAG
from mlflow_sagemaker_registry.sources.mlflow_registry import MlflowSource

pytestmark = pytest.mark.mlflow_compat

FRAUD = "fraud detector"
TAGGED = "tagging_target"
# Names that need care in MLflow's filter syntax (quotes, a backslash, LIKE's `_`), and a decoy that
# the LIKE pattern for the third one also matches.
QUOTED = ("o'brien", 'say "hi"', 'it\'s "quoted"', "back\\slash", "team_a.churn v2")
DECOY = "itXs XquotedX"
PAGE_MODELS = tuple(f"page-{i}" for i in range(3))
MISSING_RUN = "0123456789abcdef0123456789abcdef"
PROMPT = "greeting.prompt"  # MLflow 2.21+ keeps prompts as registered models; none is a model to list
PIP = ["scikit-learn"]  # given, so log_model skips its slow requirement inference


@dataclass(frozen=True)
class Built:
    uri: str
    root: Path
    bare_dir: Path
    experiment_id: str
    run_a: str
    run_b: str


@contextmanager
def tracking_uri(uri: str, cwd: Path) -> Iterator[None]:
    """Make `uri` MLflow's tracking URI (and `cwd` the working directory), restoring both afterwards."""
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        # set_tracking_uri also exports MLFLOW_TRACKING_URI; registering it here restores the original.
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    features = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    labels = np.array([0, 0, 1, 1])
    model = LogisticRegression().fit(features, labels)
    with tracking_uri(uri, root):
        client = mlflow.MlflowClient()
        experiment = mlflow.create_experiment("mlsync", artifact_location=str(root / "artifacts"))
        train = from_numpy(features, targets=labels, name="train")

        with mlflow.start_run(experiment_id=experiment, tags={"mlflow.user": "alice", "team": "risk"}) as a:
            mlflow.log_params({"C": 0.5, "solver": "lbfgs"})
            mlflow.log_metric("accuracy", 0.5, step=0)
            mlflow.log_metric("accuracy", 0.75, step=1)
            mlflow.log_metrics({"undefined": math.nan, "up": math.inf, "down": -math.inf})
            mlflow.log_input(train, context="training", tags={"version": "v1.0"})
            mlflow.log_input(train, context="evaluation")
            mlflow.log_input(from_numpy(features[:2], name="holdout"), context="testing")
            mlflow.sklearn.log_model(model, **AS_MODEL, registered_model_name=FRAUD, pip_requirements=PIP)
        with mlflow.start_run(experiment_id=experiment) as b:
            mlflow.log_param("C", 1.0)
            mlflow.sklearn.log_model(model, **AS_MODEL, pip_requirements=PIP)
        mlflow.register_model(f"runs:/{b.info.run_id}/model", FRAUD)  # version 2

        bare_dir = root / "bare-model"
        mlflow.sklearn.save_model(model, str(bare_dir), pip_requirements=PIP)
        client.create_model_version(FRAUD, str(bare_dir), description="from a bare path")  # version 3
        client.create_model_version(FRAUD, str(bare_dir), run_id=MISSING_RUN)  # version 4
        client.create_model_version(FRAUD, str(bare_dir))  # version 5, made pending below
        client.create_model_version(FRAUD, str(bare_dir))  # version 6, made failed below

        client.update_registered_model(FRAUD, description="flags fraud")
        client.set_registered_model_tag(FRAUD, "owner", "risk-team")
        client.update_model_version(FRAUD, "1", description="first")
        client.set_model_version_tag(FRAUD, "1", "validated", "yes")
        client.set_registered_model_alias(FRAUD, "champion", "1")
        client.set_registered_model_alias(FRAUD, "fallback", "1")
        client.set_registered_model_alias(FRAUD, "challenger", "2")
        client.transition_model_version_stage(FRAUD, "1", "Production")
        client.transition_model_version_stage(FRAUD, "2", "Staging")

        for name in (*QUOTED, DECOY, TAGGED, *PAGE_MODELS):
            client.create_registered_model(name)
        for name in (*QUOTED, DECOY, TAGGED):
            client.create_model_version(name, str(bare_dir))
        client.set_model_version_tag(TAGGED, "1", "mlsync.status", "synced")
        if PROMPT_TAG is not None:
            client.register_prompt(PROMPT, "Hello {{name}}")

    # The SQL store registers synchronously; set the states a slow artifact copy would leave.
    with closing(sqlite3.connect(root / "mlflow.db")) as db, db:
        db.execute("UPDATE model_versions SET status = 'PENDING_REGISTRATION' WHERE version = 5")
        db.execute("UPDATE model_versions SET status = 'FAILED_REGISTRATION' WHERE version = 6")
    yield Built(uri, root, bare_dir, experiment, a.info.run_id, b.info.run_id)


@pytest.fixture(scope="module")
def server(built: Built) -> Iterator[str]:
    """A real `mlflow server` over the same SQLite registry: the REST path of every read."""
    with mlflow_server(built.root) as url:
        yield url


@pytest.fixture(scope="module")
def source(built: Built) -> MlflowSource:
    return MlflowSource(tracking_uri=built.uri, page_size=2)


def test_model_names_pages_through_every_model_sorted(source: MlflowSource) -> None:
    assert source.model_names() == sorted([FRAUD, TAGGED, DECOY, *QUOTED, *PAGE_MODELS])


@pytest.mark.skipif(PROMPT_TAG is None, reason=f"MLflow {mlflow.__version__} has no prompts (2.21+)")
def test_a_prompt_is_not_listed_and_reads_as_a_prompt(source: MlflowSource) -> None:
    assert PROMPT not in source.model_names()
    assert source.read_model(PROMPT).is_prompt


def test_read_model_keeps_only_ready_versions_in_numeric_order(source: MlflowSource) -> None:
    model = source.read_model(FRAUD)

    assert [v.version for v in model.versions] == ["1", "2", "3", "4"]  # 5 pending, 6 failed
    assert (model.name, model.description, model.is_prompt) == (FRAUD, "flags fraud", False)
    assert model.registering == ("5", "6")  # never taken for deleted by a prune


def test_version_logged_with_a_run_carries_the_run(source: MlflowSource, built: Built) -> None:
    v1 = source.read_model(FRAUD).versions[0]

    assert (v1.model_name, v1.version, v1.run_id) == (FRAUD, "1", built.run_a)
    assert (v1.description, v1.stage, v1.aliases) == ("first", "Production", ("champion", "fallback"))
    assert dict(v1.tags) == {"validated": "yes"}
    assert dict(v1.params) == {"C": "0.5", "solver": "lbfgs"}
    assert v1.metrics["accuracy"] == 0.75  # the latest step
    assert math.isnan(v1.metrics["undefined"])
    assert (v1.metrics["up"], v1.metrics["down"]) == (math.inf, -math.inf)  # not SQL's +-max float
    assert v1.run_tags["team"] == "risk"
    assert v1.user == "alice"
    # One entry per input, with its context apart from its other tags. MLflow keeps the first input of
    # a dataset a run logs twice (train's evaluation input is not recorded).
    inputs = sorted((d.name, d.context, d.tags) for d in v1.datasets)
    assert inputs == [("holdout", "testing", ()), ("train", "training", (("version", "v1.0"),))]
    assert all(isinstance(d, Dataset) and d.digest and d.source_type for d in v1.datasets)
    assert v1.run_link == f"runs:/{built.run_a}"


def test_artifact_location_is_the_resolved_model_directory(source: MlflowSource, built: Built) -> None:
    """Asked per version being packaged, not when reading (a read costs no request per version)."""
    for version in ("1", "2"):
        location = source.artifact_location(FRAUD, version)
        assert not location.startswith("models:/")  # MLflow 3's source, resolved
        assert (Path(location) / "MLmodel").is_file()
    assert source.artifact_location(FRAUD, "3") == str(built.bare_dir)


def test_registered_version_carries_its_stage_alias_and_run(source: MlflowSource, built: Built) -> None:
    v2 = source.read_model(FRAUD).versions[1]

    assert (v2.run_id, v2.stage, v2.aliases) == (built.run_b, "Staging", ("challenger",))
    assert dict(v2.params) == {"C": "1.0"}
    assert v2.user  # the OS user MLflow recorded


def test_version_from_a_bare_path_has_no_run_data(source: MlflowSource) -> None:
    v3 = source.read_model(FRAUD).versions[2]

    assert (v3.run_id, v3.run_link, v3.description) == (None, None, "from a bare path")
    assert (dict(v3.params), dict(v3.metrics), dict(v3.run_tags), v3.datasets) == ({}, {}, {}, ())


def test_version_whose_run_is_gone_still_mirrors(source: MlflowSource) -> None:
    v4 = source.read_model(FRAUD).versions[3]

    assert (v4.run_id, v4.run_link) == (MISSING_RUN, f"runs:/{MISSING_RUN}")
    assert (dict(v4.params), dict(v4.metrics)) == ({}, {})


@pytest.mark.parametrize("name", QUOTED)
def test_names_with_quotes_dots_and_spaces_are_read_exactly(source: MlflowSource, name: str) -> None:
    model = source.read_model(name)

    assert model.name == name
    assert [(v.model_name, v.version) for v in model.versions] == [(name, "1")]


def test_run_failing_for_another_reason_fails_the_model(
    built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Packages are created once: mirroring a version without run data because of an outage is permanent.
    source = MlflowSource(tracking_uri=built.uri)

    def unavailable(run_id: str) -> None:
        raise MlflowException("tracking server overloaded", error_code=TEMPORARILY_UNAVAILABLE)

    monkeypatch.setattr(source._client, "get_run", unavailable)

    with pytest.raises(SourceError, match="reading model 'fraud detector' version 1 failed: tracking server"):
        source.read_model(FRAUD)


def test_download_model_fetches_the_directory(source: MlflowSource, tmp_path: Path) -> None:
    local = source.download_model(source.artifact_location(FRAUD, "1"), tmp_path / "download")

    assert local.is_relative_to(tmp_path / "download")
    assert (local / "MLmodel").is_file()


def test_set_version_tags_writes_only_changed_values(
    source: MlflowSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    client: Any = source._versions()  # spy on the real client: only MLflow itself could tell otherwise
    written: list[tuple[str, ...]] = []
    set_tag = client.set_model_version_tag

    def recording(name: str, version: str, key: str, value: str) -> None:
        written.append((name, version, key, value))
        set_tag(name, version, key, value)

    monkeypatch.setattr(client, "set_model_version_tag", recording)

    source.set_version_tags(TAGGED, "1", {"mlsync.status": "synced"})
    source.set_version_tags(TAGGED, "1", {})
    assert written == []

    source.set_version_tags(TAGGED, "1", {"mlsync.status": "synced", "mlsync.arn": "arn:x"})
    assert written == [(TAGGED, "1", "mlsync.arn", "arn:x")]
    assert dict(source.read_model(TAGGED).versions[0].tags) == {
        "mlsync.status": "synced",
        "mlsync.arn": "arn:x",
    }


def test_a_tag_another_writer_set_first_is_not_a_failure(
    source: MlflowSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    client: Any = source._client
    set_tag = client.set_model_version_tag

    def lose_the_race(name: str, version: str, key: str, value: str) -> None:
        set_tag(name, version, key, value)  # the other writer wins, then our insert collides
        raise MlflowException("UNIQUE constraint failed: model_version_tags.key")

    monkeypatch.setattr(client, "set_model_version_tag", lose_the_race)
    source.set_version_tags(TAGGED, "1", {"mlsync.race": "synced"})

    assert client.get_model_version(TAGGED, "1").tags["mlsync.race"] == "synced"


def test_a_tag_that_keeps_failing_is_a_source_error(
    source: MlflowSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: str) -> None:
        raise MlflowException("database is locked")

    monkeypatch.setattr(source._versions(), "set_model_version_tag", refuse)
    with pytest.raises(SourceError, match="tagging model"):
        source.set_version_tags(TAGGED, "1", {"mlsync.race": "other"})


def test_identity_of_the_same_sqlite_file_is_the_same_from_any_spelling(
    built: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(built.root.parent)
    spellings = [
        built.uri,
        f"sqlite:///{built.root.name}/mlflow.db",
        f"sqlite:///{built.root.name}/../{built.root.name}/mlflow.db",
        f"sqlite+pysqlite:///{built.root / 'mlflow.db'}?timeout=5",
        f"mlsync+sqlite:///{built.root / 'mlflow.db'}",
    ]

    identities = {MlflowSource(registry_uri=uri, tracking_uri=built.uri).identity() for uri in spellings}

    assert identities == {f"sqlite:///{(built.root / 'mlflow.db').resolve()}"}


@pytest.mark.parametrize(
    ("registry_uri", "identity"),
    [
        ("https://User:Secret@MLflow.Example.COM:443/team/?tab=x#frag", "https://mlflow.example.com/team"),
        ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
        (
            "postgresql+psycopg2://mlflow:pw@DB.example:5432/registry?sslmode=require",
            "postgresql://db.example/registry",
        ),
        ("postgresql://db.example/registry", "postgresql://db.example/registry"),
        ("mysql://u:p@db.example:3307/registry", "mysql://db.example:3307/registry"),
        ("databricks-uc", "databricks-uc"),  # a store name, not a relative path
    ],
)
def test_identity_strips_credentials_query_and_default_port(
    built: Built, registry_uri: str, identity: str
) -> None:
    # The registry store opens lazily, so no database driver or server is needed here.
    assert MlflowSource(tracking_uri=built.uri, registry_uri=registry_uri).identity() == identity


def test_identity_of_a_file_store_is_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mlruns").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3.17 refuses file stores otherwise

    relative = MlflowSource(tracking_uri="mlruns").identity()

    assert relative == MlflowSource(tracking_uri=(tmp_path / "mlruns").as_uri()).identity()
    assert relative == (tmp_path / "mlruns").resolve().as_uri()


def test_identity_is_source_id_when_given(built: Built) -> None:
    assert MlflowSource(tracking_uri=built.uri, source_id="prod-registry").identity() == "prod-registry"


def test_missing_sqlite_file_is_refused_not_created(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no MLflow store"):
        MlflowSource(tracking_uri=f"sqlite:///{tmp_path / 'typo.db'}")

    assert not (tmp_path / "typo.db").exists()


def test_unsupported_uri_is_a_source_error(built: Built) -> None:
    with pytest.raises(SourceError, match=r"opening the registry failed: .*'nosuch://tracking'"):
        MlflowSource(tracking_uri="nosuch://tracking")  # the tracking store opens at once
    with pytest.raises(SourceError, match=r"listing registered models failed: .*'nosuch://registry'"):
        MlflowSource(tracking_uri=built.uri, registry_uri="nosuch://registry").model_names()


def test_unreachable_server_is_a_source_error_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with refused_port() as port:  # no test on another worker can listen on it meanwhile
        source = MlflowSource(tracking_uri=f"http://admin:hunter2@127.0.0.1:{port}")

        with pytest.raises(
            SourceError, match=f"MLflow at http://127.0.0.1:{port}: reading model 'm'"
        ) as caught:
            source.read_model("m")

    assert "hunter2" not in str(caught.value)


def test_unknown_model_is_a_source_error_naming_it(source: MlflowSource, built: Built) -> None:
    with pytest.raises(SourceError, match="reading model 'no such model' failed") as caught:
        source.read_model("no such model")

    assert str(built.root) in str(caught.value)


def test_http_server_reads_the_same_registry(source: MlflowSource, server: str, built: Built) -> None:
    over_http = MlflowSource(tracking_uri=server + "/", page_size=2)

    assert over_http.identity() == server
    assert over_http.model_names() == source.model_names()
    assert over_http.read_model(QUOTED[2]) == source.read_model(QUOTED[2])
    read, expected = over_http.read_model(FRAUD), source.read_model(FRAUD)
    assert dataclasses.replace(read, versions=()) == dataclasses.replace(expected, versions=())
    for got, want in zip(read.versions, expected.versions, strict=True):
        # NaN is never equal to itself: compare the metrics apart, NaN as a string.
        assert dataclasses.replace(got, run_link=None, metrics={}) == dataclasses.replace(
            want, run_link=None, metrics={}
        )
        assert {k: str(v) for k, v in got.metrics.items()} == {k: str(v) for k, v in want.metrics.items()}
    ui = f"{server}/#/experiments/{built.experiment_id}/runs"
    links = [f"{ui}/{built.run_a}", f"{ui}/{built.run_b}", None, f"runs:/{MISSING_RUN}"]
    assert [v.run_link for v in read.versions] == links


def test_an_http_source_id_is_the_base_of_run_links_for_every_client(server: str, built: Built) -> None:
    """Two clients reaching one server under two URLs write the same run links (they are in the run
    document and the creation-only `MetadataProperties`), when `source_id` names the server."""
    public = "https://mlflow.example.com/"
    direct = MlflowSource(tracking_uri=server, source_id=public)
    link = direct.read_model(FRAUD).versions[0].run_link
    assert link == f"https://mlflow.example.com/#/experiments/{built.experiment_id}/runs/{built.run_a}"
