"""`mlsync doctor`: the checklist of `doctor.py`, printed as text or JSON, its verdict as the exit code."""

from __future__ import annotations

import sys

import click

from ...doctor import checklist_json, checklist_lines, diagnose, failed
from .shell import EXIT_FAILED, Context, output_option


@click.command()
@click.option(
    "--serve",
    is_flag=True,
    help="`mlsync serve` runs here: also check its webhook secret.",
)
@output_option
@click.pass_obj
def doctor(obj: Context, serve: bool) -> None:
    """Check that mlsync can work here, in order, with the fix for each failure.

    Settings, MLflow (and its server's version), AWS credentials (STS), the region, a write under the S3
    prefix (a tiny probe object, removed), each SageMaker call mlsync makes (a harmless read where one
    exists; writes are listed as not checked), the serving image, and the webhook secret of `mlsync
    serve`. Exits 1 when a check failed; warnings (what cannot be checked without writing) do not fail.
    """
    from ...wiring import doctor_probes  # imports boto3 and mlflow: only when the command runs

    checks = diagnose(obj.settings, doctor_probes, serve=serve)
    if obj.output == "json":
        click.echo(checklist_json(checks))
    else:
        for line in checklist_lines(checks):
            click.echo(line)
    sys.exit(EXIT_FAILED if failed(checks) else 0)
