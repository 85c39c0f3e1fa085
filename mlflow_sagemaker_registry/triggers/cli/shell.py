"""What every `mlsync` command shares: exit codes, the context the group options build, the model
selection arguments, and the one translation of mlsync's errors into a line and an exit code.

Kept apart from cli.py so that the command modules (verify_cli, webhook_cli) and cli.py can all import
it without a cycle.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from ...config import Settings, load_settings
from ...engine import Engine
from ...errors import ConfigError, MlsyncError, RollbackError, UnsafePlanError

OUTPUTS = ("text", "json")
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNSAFE = 3
EXIT_PROBLEMS = 4

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    """What the group options decided, shared with every command."""

    def __init__(self, flags: dict[str, Any], output: str) -> None:
        self.flags = flags
        self.output = output

    def settings(self) -> Settings:
        return load_settings(self.flags)

    def engine(self, settings: Settings) -> Engine:
        from ...wiring import connect  # imports boto3 and mlflow: only when a command needs them

        return connect(settings)

    def engines(self, settings: Settings) -> list[Engine]:
        """Every target's engine, the primary first (one without `[[targets]]`)."""
        from ...wiring import connect_all

        return connect_all(settings)


def output_option(command: F) -> F:
    """`--output` after the subcommand too (`mlsync status M --output json`), as after `mlsync`."""

    def given(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        context = ctx.find_object(Context)
        if value is not None and context is not None:
            context.output = value

    return click.option(
        "--output",
        type=click.Choice(OUTPUTS),
        expose_value=False,
        callback=given,
        help="text or json (the same as before the subcommand).",
    )(command)


def models_arguments(command: F) -> F:
    command = click.option("--all", "all_models", is_flag=True, help="Every registered model.")(command)
    return click.argument("models", nargs=-1)(command)


@contextmanager
def errors() -> Iterator[None]:
    """Turn mlsync's errors into one clear line and an exit code; never a traceback for them."""
    try:
        yield
    except (ConfigError, RollbackError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except UnsafePlanError as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(EXIT_UNSAFE)
    except MlsyncError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)


def selection(models: Sequence[str], all_models: bool) -> list[str] | None:
    if models and all_models:
        raise click.UsageError("give model names or --all, not both")
    if not models and not all_models:
        raise click.UsageError("name the registered models to mirror, or pass --all")
    return None if all_models else list(models)
