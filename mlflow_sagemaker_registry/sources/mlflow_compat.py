"""What differs between the MLflow versions mlsync supports (clients 2.16 to 3.x, servers too), said once.

Each difference is told by what the installed MLflow has (a module, a method, a parameter), never by
comparing version numbers. docs/compatibility.md lists the supported versions; CI runs the MLflow-facing
tests with the oldest client and against the oldest server (scripts/test_mlflow2).

- Prompts (MLflow 2.21+) are registered models whose versions carry the tag `IS_PROMPT_TAG_KEY`; SQL
  stores leave them out of searches. MLflow 3 also answers `get_prompt` (client and store) and refuses
  a prompt's name in `get_registered_model`; MLflow 2.21-2.22 have no `get_prompt` and return a named
  prompt as a model without versions. Older MLflow has no prompts.
- Listing models: MLflow 3's client adds a filter leaving prompts out, which a tracking server older
  than 2.21 reads as "has a tag `mlflow.prompt.is_prompt` other than true": it answers no model at all.
  The store's own search has no such filter, and stores with prompts leave them out by themselves.
- Webhooks came with MLflow 3.3 (`MlflowClient.create_webhook`; deliveries from servers with a SQL
  backend): `mlsync webhook` refuses an older client with the fix (`require_webhooks`).
- `mlflow.artifacts.download_artifacts` takes a `registry_uri` from MLflow 3 on; before, a `models:/`
  URI resolves against the process's registry (mlsync passes resolved URIs, so nothing depends on it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from mlflow.artifacts import download_artifacts
from mlflow.version import VERSION

from ..errors import ConfigError

try:
    from mlflow.prompt.constants import IS_PROMPT_TAG_KEY
except ImportError:  # MLflow < 2.21: no prompts
    PROMPT_TAG: str | None = None
else:
    PROMPT_TAG = IS_PROMPT_TAG_KEY

_DOWNLOAD_PARAMETERS = frozenset(inspect.signature(download_artifacts).parameters)

WEBHOOKS_SINCE = "3.3"
"""The MLflow release that brought webhooks, to client and server alike."""


def has_prompt_tag(tags: Mapping[str, str] | None) -> bool:
    """Whether a model version's tags mark it as a prompt's version (never, before MLflow 2.21)."""
    return PROMPT_TAG is not None and PROMPT_TAG in (tags or {})


def answers_prompt(registry: Any, name: str) -> bool:
    """Whether an `MlflowClient` or registry store that has `get_prompt` (MLflow 3) says `name` is a prompt.

    False where there is no `get_prompt` (MLflow 2): a new prompt version is still told by its tags
    (`has_prompt_tag`), and a prompt named otherwise reads as a model without versions.
    """
    get_prompt = getattr(registry, "get_prompt", None)
    return get_prompt is not None and get_prompt(name) is not None


def model_search(registry_client: Any) -> Callable[..., Any]:
    """`search_registered_models` of the registry client's store, without the client's prompt filter."""
    search: Callable[..., Any] = registry_client.store.search_registered_models
    return search


def download_options(registry_uri: str) -> dict[str, str]:
    """The `registry_uri` argument for `download_artifacts` where it takes one (MLflow 3), else none."""
    return {"registry_uri": registry_uri} if "registry_uri" in _DOWNLOAD_PARAMETERS else {}


def require_webhooks(client: Any) -> None:
    """Refuse an `MlflowClient` without MLflow's webhook API (MLflow < 3.3), saying what to do instead.

    Raises:
        ConfigError: the installed MLflow predates webhooks.
    """
    if not hasattr(client, "create_webhook"):
        raise ConfigError(
            f"MLflow webhooks need MLflow {WEBHOOKS_SINCE} or newer, here and on the tracking server; "
            f"this is MLflow {VERSION}. Upgrade (pip install 'mlflow-skinny>={WEBHOOKS_SINCE}'), or keep "
            "SageMaker in step without webhooks: the registry-store plugin or a periodic `mlsync push --all`."
        )
