"""What `mlsync doctor` asks MLflow: does the registry answer, and which MLflow serves it.

The registry is opened and listed exactly as `mlsync push --all` starts (`MlflowSource`, so a SQLite file
that does not exist is reported, not created). An http(s) tracking or registry server is first asked
`GET /version` (MLflow 2.1 and later answer it, 3.x too) through MLflow's own HTTP client, with its
credentials and TLS settings, but with no retry: MLflow's default (`MLFLOW_HTTP_REQUEST_MAX_RETRIES`, 7,
with backoff) would keep doctor waiting for minutes on a server that is down. Only a server that
answered is then listed, with MLflow's usual retries.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request

from ..config import PLUGIN_SCHEME_PREFIX, Settings
from ..doctor import MlflowAnswer
from ..errors import SourceError
from .mlflow_registry import MlflowSource

VERSION_TIMEOUT = 10
"""Seconds `GET /version` may take: a server that answers takes milliseconds."""


def probe_mlflow(settings: Settings) -> MlflowAnswer:
    """Ask each http(s) server its version, then list the registry's models.

    Raises:
        SourceError: a server cannot be reached, or the registry cannot be opened or read.
        ConfigError: the store needs what is not installed (the message names it).
    """
    source = MlflowSource(settings.tracking_uri, settings.registry_uri, settings.source_id)
    tracking = settings.tracking_uri or mlflow.get_tracking_uri()
    uris = dict.fromkeys(_server(uri) for uri in (settings.registry_uri or tracking, tracking))
    servers = tuple((_shown(uri), _server_version(uri)) for uri in uris if uri is not None)
    models = len(source.model_names())
    return MlflowAnswer(source.identity(), models, mlflow.__version__, servers)


def _server(uri: str) -> str | None:
    """The http(s) server `uri` names (the plugin's `mlsync+` taken off), or None for a store."""
    if uri.lower().startswith(PLUGIN_SCHEME_PREFIX):
        uri = uri[len(PLUGIN_SCHEME_PREFIX) :]
    return uri.rstrip("/") if urlsplit(uri).scheme.lower() in ("http", "https") else None


def _shown(uri: str) -> str:
    """`uri` without credentials, query or fragment, for messages."""
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment=""))


def _server_version(uri: str) -> str | None:
    """What `GET /version` answers, once; None when the server answers something else (no such route).

    A 5xx is in MLflow's retry codes, so with no retry left it raises like a refused connection: a
    server that answers only errors cannot be used either.
    """
    try:
        credentials = get_default_host_creds(uri)  # type: ignore[no-untyped-call]  # mlflow: untyped
        response = http_request(  # type: ignore[no-untyped-call]
            credentials, "/version", "GET", max_retries=0, timeout=VERSION_TIMEOUT
        )
    except MlflowException as exc:
        reason = str(exc).replace(uri, _shown(uri))
        raise SourceError(f"MLflow at {_shown(uri)} does not answer: {reason}") from exc
    return response.text.strip() if response.status_code == 200 else None
