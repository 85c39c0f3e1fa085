"""The MLflow Model Registry as a `Source`: read in full, written only through version tags.

This is the only module outside the registry-store plugin that imports mlflow; the engine sees it through
`ports.Source`. It works with any registry URI MLflow accepts (SQLite, PostgreSQL, MySQL, file store,
http(s) tracking server, Databricks) because it goes through `MlflowClient` only, never a store directly.

Every MLflow failure (an `MlflowException`, a refused connection, a missing database driver) leaves this
module as `errors.SourceError`, naming the model or version and the registry without credentials.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import mlflow
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException

from ..config import PLUGIN_SCHEME_PREFIX
from ..domain import Dataset, SourceModel, SourceVersion
from ..errors import SourceError
from ..extras import FULL, needs
from .mlflow_compat import answers_prompt, download_options, model_search
from .mlflow_serving import pyfunc_environment

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
"""Results per search call: within MLflow's limits for both registered-model and model-version search."""

_READY = "READY"

# A run that is gone (deleted and garbage-collected, or kept in another tracking store) or hidden from
# these credentials stays that way, so its versions are mirrored without run data. Any other failure
# (connection, server error) may pass, and fails the model instead: SageMaker package descriptions and
# metadata are creation-only, so mirroring a version without its run by accident could not be repaired.
_PERMANENT_RUN_ERRORS = frozenset({"RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED"})

# What MLflow raises when the registry cannot be used: its own errors, network and file errors
# (requests' exceptions are OSErrors), and a missing database driver (`No module named 'psycopg'`).
_MLFLOW_FAILURES = (MlflowException, OSError, ImportError)

# URI names that MLflow resolves to a store without a scheme (mlflow.tracking.registry.get_store_builder).
_NAMED_STORES = frozenset({"databricks", "databricks-uc", "uc"})
_SQL_DIALECTS = frozenset({"sqlite", "postgresql", "mysql", "mssql"})
_DEFAULT_PORTS = {"http": "80", "https": "443", "postgresql": "5432", "mysql": "3306", "mssql": "1433"}
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


_TAG_ATTEMPTS = 3


class MlflowSource:
    """An MLflow Model Registry reached through `mlflow.MlflowClient`.

    Args:
        tracking_uri: Where runs live (and the registry, unless `registry_uri` is given). None means
            MLflow's own default (`MLFLOW_TRACKING_URI`, `mlflow.set_tracking_uri`, then local files).
        registry_uri: Where registered models live, when not in the tracking store.
        source_id: The identity to report instead of one derived from the URIs, for registries reached
            under different URIs by different clients (a load balancer, a private DNS name).
        page_size: Results per search call; tests lower it to exercise pagination.
        concurrency: MLflow requests in flight at once when reading one model's versions (each
            version's run and download URI is a round trip to a tracking server).

    Raises:
        SourceError: a SQLite database or file store that the URIs name does not exist. MLflow would
            create an empty one, and mirroring an empty registry because of a typo helps no one.
        MissingExtraError: the URIs name a SQL store and only mlflow-skinny is installed.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        source_id: str | None = None,
        *,
        page_size: int = PAGE_SIZE,
        concurrency: int = 1,
    ) -> None:
        # MlflowClient opens (and so creates) the tracking store at once: check that it exists first.
        resolved_tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        _require_local_store(resolved_tracking_uri)
        for uri in (resolved_tracking_uri, registry_uri):
            require_store_support(uri)
        with _translated("opening the registry", _normalize_uri(resolved_tracking_uri)):
            self._client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
        self._tracking_uri: str = self._client.tracking_uri
        # MLflow resolves a missing registry URI from MLFLOW_REGISTRY_URI, set_registry_uri or the
        # tracking URI (turning `databricks` into `databricks-uc`); read what it chose, not a re-derivation.
        self._registry_uri: str = self._client._registry_uri or self._tracking_uri
        _require_local_store(self._registry_uri)
        self._page_size = page_size
        self._concurrency = concurrency
        # SQLite takes one writer at a time, and a writer that finds it locked sleeps in SQLite's busy
        # handler (up to 100 ms a try) rather than queueing: this process's writers queue here instead.
        self._writes: AbstractContextManager[object] = (
            threading.Lock() if _is_sqlite(self._registry_uri) else nullcontext()
        )
        self._identity = source_id or _normalize_uri(self._registry_uri)
        tracking = _normalize_uri(self._tracking_uri)
        registry = _normalize_uri(self._registry_uri)
        self._where = tracking if registry == tracking else f"{tracking} (registry {registry})"
        # Run links are in the run document and `MetadataProperties` (creation-only), so every client of
        # one server must write the same one: an http(s) `source_id` names the server for all of them.
        base = source_id if source_id and _is_http(source_id) else tracking
        self._ui_base = base.rstrip("/") if _is_http(base) else None
        # At most `concurrency` version reads in flight across every model planned at once.
        self._in_flight = threading.BoundedSemaphore(concurrency)

    def identity(self) -> str:
        """The registry URI without credentials or query, local paths absolute, http(s) hosts lowercased.

        Every client of one registry gets the same string, so it can key what mlsync records about it.
        """
        return self._identity

    def model_names(self) -> list[str]:
        """Every registered model name, sorted (a set first: offset pages may repeat a name).

        Through the store's own search: the filter MLflow 3's client adds hides every model of a
        tracking server older than MLflow 2.21 (`mlflow_compat`).
        """
        with self._translate("listing registered models"):
            search = model_search(self._versions())
            names = {model.name for model in self._pages(search, filter_string=None)}
        return sorted(names)

    def read_model(self, name: str) -> SourceModel:
        """The registered model and its READY versions, sorted by version number.

        Versions in `PENDING_REGISTRATION` have no complete files yet and `FAILED_REGISTRATION` never
        will; they are skipped (and logged) so that only a finished model is ever packaged. A pending
        version is picked up by the next sync once it is READY.

        Cost: one `get_run` per distinct run of its READY versions, `concurrency` in flight at once;
        nothing per version. Where a version's files are is asked only for the versions being packaged
        (`artifact_location`).
        """
        try:
            with self._translate(f"reading model {name!r}"):
                model = self._client.get_registered_model(name)
        except SourceError:
            if self._is_prompt(name):
                return SourceModel(name=name, is_prompt=True)
            raise
        with self._translate(f"reading model {name!r}"):
            # A LIKE filter (see _name_filter) can match other names too: keep only this one.
            found = {
                str(mv.version): mv
                for mv in self._pages(self._client.search_model_versions, filter_string=_name_filter(name))
                if mv.name == name
            }
        # Search results may leave `aliases` empty (the SQL store does); the model's map is complete.
        aliases: dict[str, set[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), set()).add(alias)
        ready, registering = [], []
        for version in sorted(found, key=int):
            if found[version].status == _READY:
                ready.append(version)
            else:
                log.info(
                    "skipping model %r version %s: status is %s, not READY",
                    name,
                    version,
                    found[version].status,
                )
                registering.append(version)
        # One read per distinct run (versions of one run share it) and one per version, all at once.
        first_of_run: dict[str, str] = {}
        for version in ready:
            first_of_run.setdefault(found[version].run_id or "", version)
        first_of_run.pop("", None)
        run_reads = self._map(lambda run: self._read_run(name, first_of_run[run], run), first_of_run)
        runs = dict(zip(first_of_run, run_reads, strict=True))
        versions = [
            self._version(found[v], v, aliases.get(v, set()), runs.get(found[v].run_id)) for v in ready
        ]
        return SourceModel(
            name=model.name,
            description=model.description or "",
            versions=tuple(versions),
            registering=tuple(registering),
            tags=dict(model.tags or {}),
        )

    def _is_prompt(self, name: str) -> bool:
        """Whether `name` is an MLflow prompt (a registered model the model APIs no longer show).

        Asked when `get_registered_model` failed: MLflow 3 answers "not found" for a prompt's name, which
        would read as a typo. A client without `get_prompt` (MLflow 2) has no such answer.
        """
        try:
            return answers_prompt(self._client, name)
        except _MLFLOW_FAILURES:
            return False

    def download_model(self, artifact_uri: str, dest: Path) -> Path:
        """Download the model directory at `artifact_uri` under `dest` (created if missing).

        MLflow streams each file to disk from whatever artifact store holds it (local, S3, the tracking
        server's proxy, ...), so a large model never sits in memory.
        """
        with self._translate(f"downloading {artifact_uri}"):
            local = download_artifacts(
                artifact_uri=artifact_uri,
                dst_path=str(dest),
                tracking_uri=self._tracking_uri,
                **download_options(self._registry_uri),
            )
        return Path(local)

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        """Set the tags whose value differs from the version's; write nothing when none does.

        Every tag write fires MLflow's `model_version_tag.set` webhook and passes through mlsync's own
        registry-store plugin, and either may start another sync: writing only real changes is what keeps
        a sync that records its status from triggering itself forever.
        """
        if not tags:
            return
        with self._writes, self._translate(f"tagging model {name!r} version {version}"):
            for attempt in range(_TAG_ATTEMPTS):
                current = self._client.get_model_version(name, version).tags or {}
                try:
                    for key, value in tags.items():
                        if current.get(key) != value:
                            self._versions().set_model_version_tag(name, version, key, value)
                    return
                except MlflowException:
                    # Two writers of the same new tag (a push beside the plugin, two pushes) can collide
                    # in SQL stores (a unique-key error for the loser); reading again settles it.
                    if attempt == _TAG_ATTEMPTS - 1:
                        raise

    def set_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        """Set the registered model's tags whose value differs; write nothing when none does."""
        with self._writes, self._translate(f"tagging model {name!r}"):
            current = self._client.get_registered_model(name).tags or {}
            for key, value in tags.items():
                if current.get(key) != value:
                    self._client.set_registered_model_tag(name, key, value)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point `alias` of model `name` at `version` (MLflow moves it off any other version)."""
        with self._writes, self._translate(f"moving alias @{alias} of model {name!r} to version {version}"):
            self._client.set_registered_model_alias(name, alias, version)

    def serving_environment(self) -> Mapping[str, str]:
        """The environment MLflow's pyfunc serving image expects (see `mlflow_serving.pyfunc_environment`)."""
        return pyfunc_environment()

    def _map(self, read: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """`read` over `items`, results in order; the first failure raises. At most `concurrency` such
        reads run at once across all the models read at once (beside each model's own two reads)."""
        items = list(items)
        if self._concurrency == 1 or len(items) < 2:
            return [read(item) for item in items]

        def bounded(item: Any) -> Any:
            with self._in_flight:
                return read(item)

        # A pool per call, gone when it returns: a long-lived process (the plugin, `mlsync serve`) makes
        # sources again and again, and a pool kept by each would keep its threads.
        with ThreadPoolExecutor(min(self._concurrency, len(items)), "mlsync-mlflow") as pool:
            return list(pool.map(bounded, items))

    def _versions(self) -> Any:
        """MLflow's registry client, for the per-version calls of a model already read.

        `MlflowClient` first reads the registered model again, on every such call, to refuse prompts;
        `read_model` has already told models from prompts (prompts are never mirrored), and that second
        read was half of a reconcile's requests to a tracking server (docs/benchmarks.md). MLflow 2 and
        3 both have this (private) accessor.
        """
        return self._client._get_registry_client()  # type: ignore[no-untyped-call]  # mlflow: untyped

    def artifact_location(self, name: str, version: str) -> str:
        """Where MLflow keeps the version's files (`get_model_version_download_uri`): a concrete URI."""
        with self._translate(f"reading model {name!r} version {version}"):
            uri: str = self._versions().get_model_version_download_uri(name, version)
        return uri

    def _version(self, mv: Any, version: str, aliases: set[str], run: Any) -> SourceVersion:
        """One READY version with its run's data; a run that is gone leaves the run fields empty."""
        name: str = mv.name
        run_id: str | None = mv.run_id or None
        without_run = SourceVersion(
            model_name=name,
            version=version,
            run_id=run_id,
            description=mv.description or "",
            stage=mv.current_stage or "None",
            aliases=tuple(sorted(aliases.union(mv.aliases or ()))),
            tags=dict(mv.tags or {}),
            user=mv.user_id or None,
            run_link=f"runs:/{run_id}" if run_id is not None else None,
        )
        if run is None:
            return without_run
        dataset_inputs = run.inputs.dataset_inputs if run.inputs is not None else []
        return dataclasses.replace(
            without_run,
            params=dict(run.data.params),
            metrics={key: _restore_infinity(value) for key, value in run.data.metrics.items()},
            run_tags=dict(run.data.tags),
            datasets=tuple(dict.fromkeys(_dataset(d) for d in dataset_inputs)),
            user=run.data.tags.get("mlflow.user") or run.info.user_id or None,
            run_link=self._run_link(run.info.experiment_id, run.info.run_id),
        )

    def _read_run(self, name: str, version: str, run_id: str) -> Any:
        """The run, or None when it is permanently unreadable (see _PERMANENT_RUN_ERRORS)."""
        with self._translate(f"reading model {name!r} version {version}"):
            try:
                return self._client.get_run(run_id)
            except MlflowException as exc:
                if exc.error_code not in _PERMANENT_RUN_ERRORS:
                    raise
                log.warning(
                    "model %r version %s: run %s cannot be read (%s); mirroring it without params or metrics",
                    name,
                    version,
                    run_id,
                    exc.error_code,
                )
                return None

    def _run_link(self, experiment_id: str, run_id: str) -> str:
        """The run's page in the MLflow UI when the tracking store is a server, else a `runs:/` URI."""
        if self._ui_base is None:
            return f"runs:/{run_id}"
        return f"{self._ui_base}/#/experiments/{experiment_id}/runs/{run_id}"

    def _pages(self, search: Callable[..., Any], **kwargs: Any) -> Iterator[Any]:
        """Every result of an MLflow search, following page tokens."""
        token = None
        while True:
            page = search(max_results=self._page_size, page_token=token, **kwargs)
            yield from page
            token = page.token
            if not token:
                return

    def _translate(self, action: str) -> AbstractContextManager[None]:
        return _translated(action, self._where)


@contextmanager
def _translated(action: str, where: str) -> Iterator[None]:
    """Turn MLflow's failures into SourceError naming the action and the registry, without credentials."""
    try:
        yield
    except _MLFLOW_FAILURES as exc:
        reason = str(exc).rstrip(".")
        message = (
            f"MLflow at {where}: {action} failed: {reason}. Check the tracking and registry URIs, that the "
            "server or database is reachable, and that the model and version exist."
        )
        raise SourceError(_USERINFO.sub("", message)) from exc


_CONTEXT_TAG = "mlflow.data.context"  # mlflow.log_input(..., context=...) records the context as this tag


def _dataset(dataset_input: Any) -> Dataset:
    """One `DatasetInput` of a run: the dataset, its context and its other input tags (e.g. `version`)."""
    dataset = dataset_input.dataset
    tags = {tag.key: tag.value for tag in dataset_input.tags or ()}
    return Dataset(
        name=dataset.name,
        digest=dataset.digest,
        source_type=dataset.source_type or "",
        source=dataset.source or "",
        context=tags.pop(_CONTEXT_TAG, ""),
        tags=tuple(sorted(tags.items())),
    )


def _name_filter(name: str) -> str:
    """A search filter for one model's versions.

    MLflow's filter parser strips the outer quotes of a value and nothing else: no escape exists for a
    quote inside, and a backslash before a quote reads as an escape to sqlparse. A name that cannot be
    quoted becomes a LIKE pattern with those characters as `_` wildcards; the caller keeps exact matches.
    """
    if "\\" not in name:
        if "'" not in name:
            return f"name = '{name}'"
        if '"' not in name:
            return f'name = "{name}"'
    return "name LIKE '{}'".format(re.sub(r"['\"\\]", "_", name))


def _restore_infinity(value: float) -> float:
    """Undo SQL tracking stores' clamping of +-inf to +-max float, so every backend reports inf."""
    if abs(value) == sys.float_info.max:
        return math.copysign(math.inf, value)
    return value


def _is_http(uri: str) -> bool:
    return urlsplit(uri).scheme.lower() in ("http", "https")


def _is_sqlite(uri: str) -> bool:
    return urlsplit(_strip_plugin(uri)).scheme.lower().partition("+")[0] == "sqlite"


def _local_store_path(uri: str) -> Path | None:
    """The absolute path of the SQLite file or file-store directory `uri` names; None for other stores."""
    uri = _strip_plugin(uri)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower().partition("+")[0]
    if scheme == "sqlite":
        # urlsplit cannot tell `sqlite:///relative.db` from `sqlite:////absolute.db`: cut by hand.
        path = uri.partition("://")[2].partition("?")[0].removeprefix("/")
        return None if path in ("", ":memory:") else Path(path).resolve()
    if scheme == "file":
        return Path(unquote(parts.path)).resolve()
    if not scheme and uri not in _NAMED_STORES:
        return Path(uri).resolve()
    return None


def _require_local_store(uri: str) -> None:
    """Refuse a local store that does not exist (MLflow would silently create an empty one)."""
    path = _local_store_path(uri)
    if path is not None and not path.exists():
        raise SourceError(
            f"there is no MLflow store at {path} (from {_USERINFO.sub('', uri)}). Check the tracking and "
            "registry URIs: a relative SQLite path is relative to the working directory."
        )


def require_store_support(uri: str | None) -> None:
    """Refuse a SQL store URI (plain or `mlsync+`) when SQLAlchemy is missing, naming the extra to install.

    mlflow-skinny, what a plain install of mlsync brings, has no SQL stores; MLflow's own error for one
    lists the schemes it does support, but not that the full `mlflow` distribution is what is missing.

    Raises:
        MissingExtraError: `uri` names a SQL store and SQLAlchemy cannot be imported.
    """
    if uri is not None and urlsplit(_strip_plugin(uri)).scheme.lower().partition("+")[0] in _SQL_DIALECTS:
        with needs(FULL, f"the MLflow store {_normalize_uri(uri)}"):
            importlib.import_module("sqlalchemy")  # MLflow's SQL stores are built on it


def _normalize_uri(uri: str) -> str:
    """One spelling per registry: no credentials, query or fragment; local paths absolute; SQLAlchemy
    driver names dropped; network hosts lowercased without their default port or a trailing slash."""
    path = _local_store_path(uri)
    uri = _strip_plugin(uri)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme.partition("+")[0] in _SQL_DIALECTS:
        scheme = scheme.partition("+")[0]
    if path is not None:
        return f"sqlite:///{path}" if scheme == "sqlite" else path.as_uri()
    if not scheme:
        return uri
    netloc = parts.netloc.rpartition("@")[2]
    if scheme in _DEFAULT_PORTS:
        netloc = netloc.lower().removesuffix(f":{_DEFAULT_PORTS[scheme]}")
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def _strip_plugin(uri: str) -> str:
    return uri[len(PLUGIN_SCHEME_PREFIX) :] if uri.lower().startswith(PLUGIN_SCHEME_PREFIX) else uri
