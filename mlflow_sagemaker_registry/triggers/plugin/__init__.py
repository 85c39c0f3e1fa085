"""`mlsync+<scheme>://...`: an MLflow registry store that mirrors every registry change into SageMaker.

Data scientists keep using MLflow as usual (`mlflow.register_model`, `log_model(registered_model_name=
...)`, stage transitions, aliases and tags in the UI); with `MLFLOW_REGISTRY_URI=mlsync+sqlite:///mlflow.db`
on a client, or `--registry-store-uri mlsync+...` on `mlflow server`, SageMaker follows. See
docs/plugin.md.

MLflow finds this store through the `mlflow.model_registry_store` entry points, one per inner scheme
(`mlsync+sqlite`, `mlsync+postgresql`, `mlsync+http`, ...), and caches one instance per URI, shared by
every thread. The store:

- builds the inner store (the URI without `mlsync+`) with MLflow's own builder for that scheme, so every
  backend behaves exactly as without the plugin;
- delegates every store method to it, generically: MLflow's `AbstractStore` does not enforce its abstract
  methods, so a wrapper that forgot one would fail silently;
- after a write that changes what SageMaker should hold (`_EVENTS`), hands a `Job` (reconcile.py, the
  contract every trigger shares) to the background worker (plugin_worker.py), which reconciles the model
  through the one `Engine` (`wiring.connect`), reading and tagging the INNER registry, so its own tag
  writes never come back through this store.

The user's call never fails because of the mirror: only the inner store's own errors reach it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.store.model_registry.abstract_store import AbstractStore
from mlflow.tracking._model_registry.utils import _get_store_registry

from ...config import PLUGIN_SCHEME_PREFIX, Settings, load_settings
from ...mapping.tags import is_own_tag
from ...sources.mlflow_compat import has_prompt_tag
from ..reconcile import Job, Kind, Reconciler
from .worker import PENDING_REGISTRATION, MirrorWorker, wait_for_mirrors

__all__ = ["MirroringStore", "wait_for_mirrors"]

log = logging.getLogger(__name__)


Event = Callable[[Mapping[str, Any], Any], tuple[Job, ...]]
"""What a store write means for SageMaker: (the call's bound arguments, its result) -> jobs."""


def _version_created(_arguments: Mapping[str, Any], version: Any) -> tuple[Job, ...]:
    if has_prompt_tag(version.tags):
        return ()
    number = str(version.version)
    pending = frozenset({number}) if version.status == PENDING_REGISTRATION else frozenset()
    return (Job(version.name, versions=frozenset({number}), pending=pending),)


def _version_changed(arguments: Mapping[str, Any], _result: Any) -> tuple[Job, ...]:
    return (Job(arguments["name"], versions=frozenset({str(arguments["version"])})),)


def _version_tag_changed(arguments: Mapping[str, Any], result: Any) -> tuple[Job, ...]:
    tag = arguments.get("tag")
    key = tag.key if tag is not None else arguments["key"]
    # A tag only mlsync writes is never news (setting or deleting it); the approval tag is people's too.
    return () if is_own_tag(key) else _version_changed(arguments, result)


def _model_changed(arguments: Mapping[str, Any], _result: Any) -> tuple[Job, ...]:
    return (Job(arguments["name"]),)


def _version_deleted(arguments: Mapping[str, Any], _result: Any) -> tuple[Job, ...]:
    return (Job(arguments["name"], Kind.RETIRE, frozenset({str(arguments["version"])})),)


def _model_deleted(arguments: Mapping[str, Any], _result: Any) -> tuple[Job, ...]:
    return (Job(arguments["name"], Kind.RETIRE),)


def _model_renamed(arguments: Mapping[str, Any], _result: Any) -> tuple[Job, ...]:
    # SageMaker cannot rename a group: the new name is mirrored as a new group, and the old name's
    # packages are rejected like those of a deleted model, so each version has one deployable package.
    return (Job(arguments["name"], Kind.RETIRE), Job(arguments["new_name"]))


_EVENTS: Mapping[str, Event] = {
    "create_model_version": _version_created,
    "copy_model_version": _version_created,
    "update_model_version": _version_changed,
    "transition_model_version_stage": _version_changed,
    "set_model_version_tag": _version_tag_changed,
    "delete_model_version_tag": _version_tag_changed,
    "set_registered_model_alias": _version_changed,
    "delete_registered_model_alias": _model_changed,
    "update_registered_model": _model_changed,
    "rename_registered_model": _model_renamed,
    "delete_model_version": _version_deleted,
    "delete_registered_model": _model_deleted,
}


class MirroringStore(AbstractStore):
    """An MLflow registry store wrapping another one and mirroring its changes into SageMaker.

    Every method of `AbstractStore` is delegated to the inner store (installed below the class), and
    so is any other attribute the inner store has.

    Args:
        store_uri: `mlsync+<inner registry URI>`, as MLflow passes it.
        tracking_uri: Where runs live, as MLflow resolved it; used unless `MLSYNC_TRACKING_URI` is set.
        connect: Builds the engine from settings (`wiring.connect` unless a test passes another).

    Raises:
        MlflowException: the URI does not start with `mlsync+`, or wraps another `mlsync+` URI.
    """

    def __init__(
        self,
        store_uri: str,
        tracking_uri: str | None = None,
        *,
        connect: Callable[[Settings], Reconciler] | None = None,
    ) -> None:
        super().__init__(store_uri, tracking_uri)  # type: ignore[no-untyped-call]
        inner_uri = inner_registry_uri(store_uri)
        self._inner = _build_inner_store(inner_uri, tracking_uri)

        def engine() -> Reconciler:
            settings = load_settings({"registry_uri": inner_uri})
            settings = replace(settings, tracking_uri=settings.tracking_uri or tracking_uri)
            return (connect or _connect)(settings)

        self._worker = MirrorWorker(engine, self._inner)

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes neither this class nor AbstractStore defines (a SQL store's
        # `engine`, ...). `_inner` itself is looked up here only before __init__ set it.
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def _queue(self, event: Event, method: Callable[..., Any], args: Any, kwargs: Any, result: Any) -> None:
        """Queue the jobs a successful write calls for; never raise into the user's call."""
        try:
            arguments = inspect.signature(method).bind(*args, **kwargs).arguments
            for job in event(arguments, result):
                self._worker.submit(job)
        except Exception:
            log.exception(
                "mlsync: could not queue the SageMaker mirror of %s; `mlsync push` mirrors the change",
                getattr(method, "__name__", method),
            )


def _delegated_method(name: str) -> Callable[..., Any]:
    event = _EVENTS.get(name)

    def method(self: MirroringStore, *args: Any, **kwargs: Any) -> Any:
        inner_method = getattr(self._inner, name)
        result = inner_method(*args, **kwargs)
        if event is not None:
            self._queue(event, inner_method, args, kwargs, result)
        return result

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"The inner store's `{name}`" + (", then mirrored into SageMaker." if event else ".")
    return method


def _delegated_property(name: str) -> property:
    return property(lambda self: getattr(self._inner, name), doc=f"The inner store's `{name}`.")


def _install_delegates() -> None:
    """Delegate every method and property `AbstractStore` defines, now and in future MLflow versions."""
    for name, member in vars(AbstractStore).items():
        if not name.startswith("__"):
            delegate = _delegated_property(name) if isinstance(member, property) else _delegated_method(name)
            setattr(MirroringStore, name, delegate)


_install_delegates()


def inner_registry_uri(store_uri: str) -> str:
    """The registry URI a `mlsync+` URI wraps (`mlsync+sqlite:///mlflow.db` -> `sqlite:///mlflow.db`)."""
    if not store_uri.lower().startswith(PLUGIN_SCHEME_PREFIX):
        raise MlflowException(f"mlsync's registry store needs a URI starting with {PLUGIN_SCHEME_PREFIX!r}")
    inner = store_uri[len(PLUGIN_SCHEME_PREFIX) :]
    if inner.lower().startswith(PLUGIN_SCHEME_PREFIX):
        raise MlflowException(
            f"{store_uri!r} wraps mlsync's store in itself; use one {PLUGIN_SCHEME_PREFIX!r}"
        )
    return inner


def _build_inner_store(inner_uri: str, tracking_uri: str | None) -> Any:
    """The store MLflow itself would build for `inner_uri`.

    Through the scheme's builder, not `_get_store`: MLflow runs this constructor while holding the
    non-reentrant lock that `_get_store` takes, so calling it here would deadlock. The arguments follow
    MLflow's own rule (ModelRegistryStoreRegistry._get_store_with_resolved_uri).

    Raises:
        MissingExtraError: `inner_uri` is a SQL store and only mlflow-skinny is installed.
    """
    from ...sources.mlflow_registry import require_store_support  # on first use, as `_connect`

    require_store_support(inner_uri)
    builder = _get_store_registry().get_store_builder(inner_uri)  # type: ignore[no-untyped-call]
    parameters = inspect.signature(builder).parameters
    if "store_uri" in parameters and "tracking_uri" in parameters:
        return builder(store_uri=inner_uri, tracking_uri=tracking_uri)
    return builder(store_uri=inner_uri)


def _connect(settings: Settings) -> Reconciler:
    # Imported on first use: MLflow imports this module whenever it loads its store plugins, and most
    # of those processes never mirror anything, so they should not pay for importing boto3.
    from ...wiring import connect_fleet

    return connect_fleet(settings)
