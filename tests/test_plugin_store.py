"""The registry-store plugin's wrapper and worker, over a recording inner store and a fake engine.

No AWS and no database: the inner store is a fake registered under its own scheme in MLflow's store
registry (so the plugin builds it exactly as it builds a real one), and the engine records what it is
asked to mirror. tests/test_plugin_e2e.py runs the same store over real MLflow and the emulator.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

import mlflow
import pytest
from mlflow.entities.model_registry import ModelVersion, ModelVersionTag
from mlflow.exceptions import MlflowException
from mlflow.store.model_registry.abstract_store import AbstractStore
from mlflow.tracking._model_registry.utils import _get_store_registry

from mlflow_sagemaker_registry.config import Settings
from mlflow_sagemaker_registry.errors import GatewayError
from mlflow_sagemaker_registry.executor import Report
from mlflow_sagemaker_registry.mapping.tags import OWN_TAGS, TAG_SYNC_STATUS
from mlflow_sagemaker_registry.planner import Plan
from mlflow_sagemaker_registry.sources.mlflow_compat import PROMPT_TAG
from mlflow_sagemaker_registry.triggers.plugin import MirroringStore, inner_registry_uri, wait_for_mirrors
from mlflow_sagemaker_registry.triggers.plugin.worker import MirrorWorker
from mlflow_sagemaker_registry.triggers.reconcile import Job

pytestmark = pytest.mark.mlflow_compat  # the delegation follows the installed AbstractStore

SCHEME = "mlsync-test-inner"
VERSION = ModelVersion("m", "1", 0, status="READY")


def tag(key: str, value: str) -> Any:
    return ModelVersionTag(key, value)  # type: ignore[no-untyped-call]


# A value for each required parameter of AbstractStore's methods, by name; any other gets a placeholder.
ARGUMENTS: dict[str, Any] = {
    "name": "m",
    "version": "1",
    "new_name": "m2",
    "key": "team",
    "tag": tag("team", "risk"),
    "alias": "champion",
    "stage": "Production",
    "src_mv": VERSION,
    "dst_name": "m",
}

# What SageMaker must be asked to do after each write: every other method must ask nothing.
MIRRORED: dict[str, list[tuple[Any, ...]]] = {
    "create_model_version": [("push", ["m"])],
    "copy_model_version": [("push", ["m"])],
    "update_model_version": [("push", ["m"])],
    "transition_model_version_stage": [("push", ["m"])],
    "set_model_version_tag": [("push", ["m"])],
    "delete_model_version_tag": [("push", ["m"])],
    "set_registered_model_alias": [("push", ["m"])],
    "delete_registered_model_alias": [("push", ["m"])],
    "update_registered_model": [("push", ["m"])],
    "rename_registered_model": [("retire", "m", []), ("push", ["m2"])],
    "delete_model_version": [("retire", "m", ["1"])],
    "delete_registered_model": [("retire", "m", [])],
}


def _recorder(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)  # keeps the signature the plugin binds arguments with
    def record(self: RecordingStore, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((name, args, kwargs))
        return self.results.get(name, f"{name} result")

    return record


class RecordingStore:
    """An inner store with every AbstractStore method, recording calls and answering from `results`."""

    def __init__(self, store_uri: str, tracking_uri: str | None = None) -> None:
        self.store_uri = store_uri
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.results: dict[str, Any] = {
            "create_model_version": VERSION,
            "copy_model_version": VERSION,
            "get_model_version": VERSION,
            "get_prompt": None,
        }
        self.supports_workspaces = "inner's answer"

    def only(self, name: str) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] == name]


for _name, _member in vars(AbstractStore).items():
    if not _name.startswith("__") and not isinstance(_member, property):
        function = _member.__func__ if isinstance(_member, staticmethod) else _member
        setattr(RecordingStore, _name, _recorder(_name, function))


class FakeEngine:
    """Records what the worker asks; `gate` (when set) holds every push until it is set.

    A `reconcile.Reconciler`; the plugin never asks it to pull (nothing in MLflow means "SageMaker changed").
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.gate: threading.Event | None = None
        self.started = threading.Event()

    def push(self, names: list[str]) -> tuple[Plan, Report]:
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.calls.append(("push", list(names)))
        return Plan(), Report()

    def pull(self, names: list[str]) -> tuple[Plan, Report]:
        self.calls.append(("pull", list(names)))
        return Plan(), Report()

    def retire(self, name: str, versions: list[str]) -> Report:
        self.calls.append(("retire", name, list(versions)))
        return Report()


def mlflow_stores() -> Any:
    """MLflow's registry of store builders by URI scheme (an untyped MLflow function)."""
    return _get_store_registry()  # type: ignore[no-untyped-call]


def plugin_store(connect: Callable[[Settings], Any], tracking_uri: str | None = None) -> Any:
    """A plugin store over the recording inner store, built as MLflow builds one.

    Typed Any: mypy takes MirroringStore for abstract, as its methods are installed after the class body.
    """
    return MirroringStore(f"mlsync+{SCHEME}://registry", tracking_uri, connect=connect)  # type: ignore[abstract]


def engine_of(engine: Any) -> Callable[[], Any]:
    return lambda: engine


@pytest.fixture(autouse=True)
def _inner_scheme() -> None:
    mlflow_stores().register(SCHEME, RecordingStore)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def settings_seen() -> list[Settings]:
    return []


@pytest.fixture
def store(engine: FakeEngine, settings_seen: list[Settings]) -> Iterator[Any]:
    def connect(settings: Settings) -> FakeEngine:
        settings_seen.append(settings)
        return engine

    store = plugin_store(connect, "sqlite:///runs.db")
    yield store
    assert wait_for_mirrors(10)


def required_arguments(method: Callable[..., Any]) -> dict[str, Any]:
    return {
        p.name: ARGUMENTS.get(p.name, f"<{p.name}>")
        for p in inspect.signature(method).parameters.values()
        if p.name != "self" and p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


DELEGATED = sorted(
    name
    for name, member in vars(AbstractStore).items()
    if not name.startswith("__") and not isinstance(member, property)
)


def test_every_mirrored_method_is_a_store_method() -> None:
    assert set(MIRRORED) <= set(DELEGATED)


@pytest.mark.parametrize("name", DELEGATED)
def test_every_store_method_is_delegated_and_only_writes_are_mirrored(
    store: Any, engine: FakeEngine, name: str
) -> None:
    member = vars(AbstractStore)[name]
    arguments = required_arguments(member.__func__ if isinstance(member, staticmethod) else member)

    result = getattr(store, name)(**arguments)

    assert wait_for_mirrors(10)
    assert store.only(name)[0] == (name, (), arguments)
    assert result == store.results.get(name, f"{name} result")
    assert engine.calls == MIRRORED.get(name, [])


def test_properties_and_inner_only_attributes_are_the_inner_stores(store: Any) -> None:
    assert store.supports_workspaces == "inner's answer"
    assert store.store_uri == f"{SCHEME}://registry"  # not an AbstractStore attribute: __getattr__
    with pytest.raises(AttributeError):
        _ = store.no_such_attribute


@pytest.mark.parametrize("key", sorted(OWN_TAGS))
def test_mlsyncs_own_tags_are_not_mirrored_back(store: Any, engine: FakeEngine, key: str) -> None:
    store.set_model_version_tag("m", "1", tag(key, "value"))
    store.delete_model_version_tag("m", "1", key)

    assert wait_for_mirrors(10)
    assert engine.calls == []


@pytest.mark.skipif(PROMPT_TAG is None, reason=f"MLflow {mlflow.__version__} has no prompts (2.21+)")
def test_prompts_are_not_mirrored(store: Any, engine: FakeEngine) -> None:
    assert PROMPT_TAG is not None
    store.results["create_model_version"] = ModelVersion("p", "1", 0, tags=[tag(PROMPT_TAG, "true")])
    store.create_model_version("p", "prompt text")
    store.results["get_prompt"] = "a prompt"
    store.set_registered_model_alias("p", "production", "1")  # a prompt's alias, made through REST

    assert wait_for_mirrors(10)
    assert engine.calls == []


def test_the_engine_reads_the_inner_registry_with_the_stores_tracking_uri(
    store: Any, settings_seen: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSYNC_REGISTRY_URI", "sqlite:///elsewhere.db")  # the wrapped registry wins
    store.create_model_version("m", "models:/m-1")
    assert wait_for_mirrors(10)

    (settings,) = settings_seen
    assert (settings.registry_uri, settings.tracking_uri) == (f"{SCHEME}://registry", "sqlite:///runs.db")


def test_mlsync_tracking_uri_overrides_the_stores_tracking_uri(
    store: Any, settings_seen: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSYNC_TRACKING_URI", "http://127.0.0.1:5000")
    store.create_model_version("m", "models:/m-1")
    assert wait_for_mirrors(10)

    assert settings_seen[0].tracking_uri == "http://127.0.0.1:5000"


def test_a_slow_mirror_never_holds_up_the_users_call(store: Any, engine: FakeEngine) -> None:
    engine.gate = threading.Event()

    store.create_model_version("m", "models:/m-1")  # returns although the mirror is stuck
    assert engine.started.wait(10)
    assert not wait_for_mirrors(0.05)

    engine.gate.set()
    assert wait_for_mirrors(10)
    assert engine.calls == [("push", ["m"])]


def test_changes_queued_behind_a_running_push_coalesce(store: Any, engine: FakeEngine) -> None:
    engine.gate = threading.Event()
    store.create_model_version("m", "models:/m-1")
    assert engine.started.wait(10)

    for stage in ("Staging", "Production", "Archived"):
        store.transition_model_version_stage("m", "1", stage, False)
    store.update_registered_model("other", "description")
    store.set_registered_model_alias("m", "champion", "1")
    engine.gate.set()

    assert wait_for_mirrors(10)
    # The running push may have read MLflow before the changes: one more push of `m` covers them all.
    assert engine.calls == [("push", ["m"]), ("push", ["m"]), ("push", ["other"])]


def test_a_forked_child_mirrors_its_own_changes_and_not_its_parents(engine: FakeEngine) -> None:
    inner: Any = RecordingStore("inner")
    worker = MirrorWorker(engine_of(engine), inner, quiet=0)
    engine.gate = threading.Event()
    worker.submit(Job("parent's model"))
    assert engine.started.wait(10)  # the parent's worker is busy (and may hold a lock) when it forks

    child = os.fork()
    if child == 0:  # the child: its copy of the parent's worker thread does not exist
        engine.gate, engine.calls = None, []
        worker.submit(Job("child's model"))
        os._exit(0 if worker.flush(10) and engine.calls == [("push", ["child's model"])] else 1)
    _, status = os.waitpid(child, 0)

    engine.gate.set()
    assert worker.flush(10)
    assert os.waitstatus_to_exitcode(status) == 0
    assert engine.calls == [("push", ["parent's model"])]


@pytest.mark.parametrize(
    ("error", "write", "outcome"),
    [
        (
            GatewayError("DescribeModelPackageGroup m failed: Could not connect (EndpointConnectionError)"),
            lambda store: store.create_model_version("m", "models:/m-1"),
            "recorded on version(s) 1; `mlsync push` repairs it",
        ),
        (KeyError("bug"), lambda store: store.delete_model_version("m", "1"), "reject them in SageMaker"),
    ],
    ids=["aws-down", "bug"],
)
def test_a_failed_mirror_is_logged_once_and_recorded_where_the_version_exists(
    caplog: pytest.LogCaptureFixture, error: Exception, write: Callable[[Any], Any], outcome: str
) -> None:
    def failing(_settings: Settings) -> FakeEngine:
        raise error

    store = plugin_store(failing)
    with caplog.at_level(logging.WARNING):
        write(store)  # returns normally: the failure happens, and stays, on the worker
        assert wait_for_mirrors(10)

    (record,) = [r for r in caplog.records if r.name.startswith("mlflow_sagemaker_registry")]
    assert outcome in record.getMessage()
    # mlsync's own errors say what to do; anything else is a bug, logged with its traceback.
    assert bool(record.exc_info) is not isinstance(error, GatewayError)
    recorded = store.only("set_model_version_tag")
    if isinstance(error, GatewayError):
        ((_, (name, version, tag), _),) = recorded
        assert (name, version, tag.key) == ("m", "1", TAG_SYNC_STATUS)
        assert tag.value == f"failed: {error}"
    else:
        assert recorded == []  # the version is gone: nowhere to record


def test_an_unreadable_write_result_is_logged_and_the_call_still_returns(
    store: Any, engine: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    store.results["create_model_version"] = "not a model version"

    with caplog.at_level(logging.ERROR):
        assert store.create_model_version("m", "models:/m-1") == "not a model version"

    assert "could not queue the SageMaker mirror of create_model_version" in caplog.text
    assert engine.calls == []


def test_a_version_still_registering_is_mirrored_once_ready(engine: FakeEngine) -> None:
    inner: Any = RecordingStore("inner")
    statuses = iter(["PENDING_REGISTRATION", "PENDING_REGISTRATION", "READY"])
    inner.get_model_version = lambda name, version: ModelVersion(name, version, 0, status=next(statuses))
    worker = MirrorWorker(engine_of(engine), inner, poll_interval=0.01)

    worker.submit(Job("m", versions=frozenset({"1"}), pending=frozenset({"1"})))

    assert worker.flush(10)
    assert engine.calls == [("push", ["m"])]


def test_a_version_that_never_becomes_ready_is_recorded_as_failed(engine: FakeEngine) -> None:
    inner: Any = RecordingStore("inner")
    inner.results["get_model_version"] = ModelVersion("m", "1", 0, status="PENDING_REGISTRATION")
    worker = MirrorWorker(engine_of(engine), inner, ready_timeout=0.05, poll_interval=0.01)

    worker.submit(Job("m", versions=frozenset({"1"}), pending=frozenset({"1"})))

    assert worker.flush(10)
    assert engine.calls == []
    ((_, (_, _, tag), _),) = inner.only("set_model_version_tag")
    assert tag.value.startswith("failed: version 1 was still registering after 0 s")


def test_at_exit_the_queue_runs_at_once_and_a_later_change_is_logged(
    engine: FakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    worker = MirrorWorker(engine_of(engine), RecordingStore("inner"), quiet=60)  # a pause no test waits out
    worker.submit(Job("m"))

    worker.hurry(10)

    assert worker.flush(10)
    assert engine.calls == [("push", ["m"])]
    worker.submit(Job("late"))  # an exit hook that runs after the drain: refused, and said so
    assert worker.flush(10)
    assert engine.calls == [("push", ["m"])]
    assert "model 'late' changed after the process began exiting" in caplog.text


@pytest.mark.parametrize(
    ("uri", "inner"),
    [
        ("mlsync+sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("MLSYNC+postgresql://u:p@db/mlflow", "postgresql://u:p@db/mlflow"),
        ("mlsync+https://mlflow.example.com", "https://mlflow.example.com"),
    ],
)
def test_inner_registry_uri_strips_the_prefix(uri: str, inner: str) -> None:
    assert inner_registry_uri(uri) == inner


@pytest.mark.parametrize("uri", ["sqlite:///mlflow.db", "mlsync+mlsync+sqlite:///mlflow.db"])
def test_a_uri_that_is_not_one_mlsync_wrapper_is_refused(uri: str) -> None:
    with pytest.raises(MlflowException):
        MirroringStore(uri)  # type: ignore[abstract]


def test_every_entry_point_wraps_a_scheme_mlflow_can_build() -> None:
    points = metadata.entry_points(group="mlflow.model_registry_store")
    ours = [point for point in points if point.name.startswith("mlsync+")]

    assert {"mlsync+sqlite", "mlsync+postgresql", "mlsync+file", "mlsync+http", "mlsync+https"} <= {
        point.name for point in ours
    }
    for point in ours:
        assert point.load() is MirroringStore
        mlflow_stores().get_store_builder(f"{point.name.removeprefix('mlsync+')}://host/db")


def test_loading_the_plugin_does_not_import_boto3() -> None:
    """MLflow imports every store plugin when it first builds a store, in processes that never mirror."""
    code = "import sys, mlflow_sagemaker_registry.triggers.plugin; print('boto3' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
