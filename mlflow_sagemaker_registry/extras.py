"""The optional parts of mlsync's dependencies: which extra each path needs, and one error when it is missing.

A plain `pip install mlflow-sagemaker-registry` brings mlflow-skinny (MLflow's client without its server,
SQL and data-science dependencies), boto3, click and PyYAML: every command against an MLflow tracking
server over http(s), the registry-store plugin in front of one (`mlsync+http(s)://`) and the Lambda
handler. What only some paths need is an extra (setup.cfg), imported only on those paths, inside `needs`,
so that a missing one is a `MissingExtraError` naming the extra instead of a traceback:

- `serve`: Starlette, uvicorn and AnyIO, the webhook receiver's ASGI stack (`mlsync serve`).
- `full`: the full `mlflow` distribution: SQL registries (SQLAlchemy, Alembic), `mlflow server` with the
  plugin, and `mlsync verify`, which loads models with `mlflow.pyfunc` (pandas, NumPy).
- `emulator`: moto, Werkzeug and regex, for the SageMaker emulator (`mlsync emulator`).

docs/deployment.md ("Installing") has the same table for users.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .errors import MissingExtraError
from .versions import DISTRIBUTION

SERVE = "serve"
FULL = "full"
EMULATOR = "emulator"


def install_hint(extra: str) -> str:
    """The command that installs `extra` beside mlsync."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


@contextmanager
def needs(extra: str, purpose: str) -> Iterator[None]:
    """Imports inside the block come from `extra`: a missing module becomes a `MissingExtraError`.

    Args:
        extra: The extra that brings the modules imported in the block (`SERVE`, `FULL`, `EMULATOR`).
        purpose: What needs them, as the start of a sentence ("mlsync serve").

    Raises:
        MissingExtraError: a module imported in the block is not installed, or too old to have a name
            the block imports.
    """
    try:
        yield
    except ImportError as exc:
        missing = exc.name or ""
        if not missing or missing.partition(".")[0] == __package__:
            raise  # a module of mlsync's own is missing: a broken install or a bug, not an extra
        raise MissingExtraError(
            f"{purpose} needs {missing.partition('.')[0]}, which is missing or too old here: "
            f"{install_hint(extra)}",
            extra,
        ) from exc
