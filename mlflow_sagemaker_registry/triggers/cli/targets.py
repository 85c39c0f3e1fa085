"""`plan`, `push` and `status` once per target (`[[targets]]`), each isolated from the others' failures.

Without `[[targets]]` a command runs once, for the one target the settings describe, and prints exactly
what it printed before targets existed. With targets, text output gets a `== target NAME ==` header per
target, and `--output json` prints one document, `{"targets": {NAME: {"exit_code": N, "result": ...}}}`.
The exit code is 1 when any target failed, else the highest of the targets' codes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from contextlib import nullcontext, redirect_stdout
from typing import Any

import click

from ...config import Settings
from ...engine import Engine
from ...fleet import target_names
from ...targets import Target, chosen
from .shell import EXIT_FAILED, Context, F, errors


def target_option(command: F) -> F:
    """`--target NAME` (repeatable): only these targets (default: every configured target)."""
    return click.option(
        "--target",
        "targets",
        multiple=True,
        metavar="NAME",
        help="Only this [[targets]] entry (repeatable; default: every target).",
    )(command)


def each_target(
    obj: Context,
    names: Sequence[str],
    models: list[str] | None,
    run: Callable[[Engine, list[str] | None], int],
) -> int:
    """Run `run(engine, models it takes)` for each chosen target; the exit code of them all.

    A target that takes none of the named models is skipped; one that fails (its settings, its
    account) reports under its name and the next one still runs.
    """
    with errors():
        settings = obj.settings()
        targets = chosen(settings.all_targets(), names)
    many = bool(settings.targets)
    documents: dict[str, Any] = {}
    codes = []
    for target in targets:
        if many and obj.output == "text":
            click.echo(f"== target {target.name} ==")
        buffer = io.StringIO()
        with redirect_stdout(buffer) if many and obj.output == "json" else nullcontext():
            code = _guarded(settings, target, models, run)
        codes.append(code)
        if many and code == EXIT_FAILED:
            click.echo(f"target {target.name} failed; the other targets went on", err=True)
        if many and obj.output == "json":
            text = buffer.getvalue().strip()
            documents[target.name] = {"exit_code": code, "result": json.loads(text) if text else None}
    if documents:
        click.echo(json.dumps({"targets": documents}, indent=2))
    return EXIT_FAILED if EXIT_FAILED in codes else max(codes, default=0)


def _guarded(
    settings: Settings,
    target: Target,
    models: list[str] | None,
    run: Callable[[Engine, list[str] | None], int],
) -> int:
    """One target's run, its errors turned into a line on stderr (naming it) and an exit code."""
    from ...wiring import connect_target  # imports boto3 and mlflow: only when a command needs them

    try:
        with errors():
            engine = connect_target(settings, target)
            taken = target_names(engine, models)
            if taken == []:
                click.echo(f"target {target.name} takes none of these models", err=True)
                return 0
            return run(engine, taken)
    except SystemExit as exit_:  # `errors()` has printed the error; keep going with the next target
        return int(exit_.code or 0)
