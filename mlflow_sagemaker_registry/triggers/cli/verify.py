"""`mlsync verify`: a shell over `verify.Verifier` (added to the `cli` group by cli.py).

Exit codes as for the other commands: 0 every check passed (or was skipped with a reason), 1 some check
failed or MLflow / AWS could not be reached, 2 a usage or configuration error.
"""

from __future__ import annotations

import json
import sys

import click

from ...verify import Verifier
from .shell import EXIT_FAILED, Context, errors, models_arguments, output_option, selection


@click.command()
@models_arguments
@click.option("--version", "version", help="Only this version (with exactly one MODEL).")
@output_option
@click.pass_obj
def verify(obj: Context, models: tuple[str, ...], all_models: bool, version: str | None) -> None:
    """Check that MODELS' packages are intact and predict what MLflow predicts.

    For each mirrored version: the S3 documents and archives match their digests, the model data
    unpacks, and the package's model, loaded with mlflow.pyfunc, predicts on the version's input
    example exactly what the MLflow version predicts.
    """
    chosen = selection(models, all_models)
    if version is not None and (chosen is None or len(chosen) != 1):
        raise click.UsageError("--version needs exactly one MODEL")
    with errors():
        settings = obj.settings()
        from ...sources.mlflow_serving import PyfuncRunner  # imports mlflow: only when verifying

        report = Verifier(obj.engine(settings), PyfuncRunner()).verify(chosen, version)
    if obj.output == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.format_text())
    sys.exit(0 if report.ok else EXIT_FAILED)
