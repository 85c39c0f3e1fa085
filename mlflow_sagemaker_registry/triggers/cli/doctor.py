"""`mlsync doctor`: the checklist of `doctor.py`, printed as text or JSON, its verdict as the exit code."""

from __future__ import annotations

import sys

import click

from ...config import Settings
from ...doctor import checklist_json, checklist_lines, diagnose, failed
from ...targets import Target, chosen
from .shell import EXIT_FAILED, Context, errors, output_option


@click.command()
@click.option(
    "--serve",
    is_flag=True,
    help="`mlsync serve` runs here: also check its webhook secret.",
)
@click.option(
    "--target",
    "target_name",
    metavar="NAME",
    help="Check this [[targets]] entry: its credentials, region and prefixes (default: the primary).",
)
@output_option
@click.pass_obj
def doctor(obj: Context, serve: bool, target_name: str | None) -> None:
    """Check that mlsync can work here, in order, with the fix for each failure.

    Settings, MLflow (and its server's version), AWS credentials (STS), the region, a write under the S3
    prefix (a tiny probe object, removed), each SageMaker call mlsync makes (a harmless read where one
    exists; writes are listed as not checked), the serving image, and the webhook secret of `mlsync
    serve`. Exits 1 when a check failed; warnings (what cannot be checked without writing) do not fail.
    """
    from ...wiring import doctor_probes  # imports boto3 and mlflow: only when the command runs

    picked: list[Target] = []

    def target_settings() -> Settings:
        settings = obj.settings()
        picked.append(chosen(settings.all_targets(), [target_name] if target_name else [])[0])
        return settings.for_target(picked[0])

    with errors():
        checks = diagnose(target_settings, lambda s: doctor_probes(s, picked[0]), serve=serve)
    if obj.output == "json":
        click.echo(checklist_json(checks))
    else:
        for line in checklist_lines(checks):
            click.echo(line)
    sys.exit(EXIT_FAILED if failed(checks) else 0)
