"""`mlsync doctor`: the checklist of `doctor.py`, printed as text or JSON, its verdict as the exit code."""

from __future__ import annotations

import json
import sys

import click

from ...config import Settings
from ...doctor import Check, checklist_json, checklist_lines, diagnose, failed
from ...errors import MlsyncError
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
    help="Check only this [[targets]] entry (default: every target, each with its credentials, region "
    "and prefixes).",
)
@output_option
@click.pass_obj
def doctor(obj: Context, serve: bool, target_name: str | None) -> None:
    """Check that mlsync can work here, in order, with the fix for each failure.

    Settings, MLflow (and its server's version), AWS credentials (STS), the region, a write under the S3
    prefix (a tiny probe object, removed), each SageMaker call mlsync makes (a harmless read where one
    exists; writes are listed as not checked), the serving image, and the webhook secret of `mlsync
    serve`. With several [[targets]], the checklist runs for each. Exits 1 when a check failed; warnings
    (what cannot be checked without writing) do not fail.
    """
    from ...wiring import doctor_probes  # imports boto3 and mlflow: only when the command runs

    def checklist(name: str | None) -> list[Check]:
        picked: list[Target] = []

        def target_settings() -> Settings:
            settings = obj.settings()
            picked.append(chosen(settings.all_targets(), [name] if name else [])[0])
            return settings.for_target(picked[0])

        return diagnose(target_settings, lambda s: doctor_probes(s, picked[0]), serve=serve)

    with errors():
        results = {name: checklist(name) for name in _target_names(obj, target_name)}
    several = len(results) > 1
    if obj.output == "json":
        if several:
            documents = {str(name): json.loads(checklist_json(checks)) for name, checks in results.items()}
            click.echo(json.dumps({"targets": documents}, indent=2))
        else:
            click.echo(checklist_json(next(iter(results.values()))))
    else:
        for name, checks in results.items():
            if several:
                click.echo(f"== target {name} ==")
            for line in checklist_lines(checks):
                click.echo(line)
    sys.exit(EXIT_FAILED if any(failed(checks) for checks in results.values()) else 0)


def _target_names(obj: Context, target_name: str | None) -> list[str | None]:
    """The targets to check: the one named, else every configured one (None: the settings' only one, or
    settings that do not load, which the checklist's first check reports)."""
    if target_name:
        return [target_name]
    try:
        targets = obj.settings().all_targets()
    except MlsyncError:
        return [None]
    return [target.name for target in targets] if len(targets) > 1 else [None]
