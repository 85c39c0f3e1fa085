"""`mlsync`: plan, push and inspect the MLflow -> SageMaker mirror from a shell.

A thin shell over `Engine`: it parses flags into `Settings`, prints plans, reports and tables, and turns
the error hierarchy into exit codes (documented in docs/configuration.md):

    0  done (or nothing to do)
    1  some actions failed, or MLflow / AWS could not be reached
    2  usage or configuration error (also: `rollback` has nothing to roll back from, or no target)
    3  the plan was refused by the safety threshold (rerun with --force)
    4  some versions cannot be mirrored as they are (each named with its fix); the rest were applied
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from ...actions import Action
from ...config import DEFAULT_CONCURRENCY
from ...engine import Engine
from ...executor import Report
from ...iam_policy import iam_policy
from ...plan_output import (
    failure_lines,
    plan_json,
    plan_lines,
    plan_summary,
    problem_lines,
    push_json,
    report_summary,
    status_json,
    status_table,
)
from ...planner import Plan
from ...targets import chosen
from ...versions import summary
from .doctor import doctor
from .emulator import emulator
from .shell import (
    EXIT_FAILED,
    EXIT_PROBLEMS,
    OUTPUTS,
    Context,
    F,
    errors,
    models_arguments,
    output_option,
    selection,
)
from .targets import each_target, target_option
from .verify import verify
from .webhook import serve, webhook


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI.")
@click.option(
    "--registry-uri", envvar="MLFLOW_REGISTRY_URI", help="MLflow registry URI (default: tracking URI)."
)
@click.option(
    "--config", "config", type=click.Path(dir_okay=False), help="mlsync.toml or pyproject.toml to read."
)
@click.option("--region", help="AWS region (default: boto3's chain: AWS_DEFAULT_REGION, the profile).")
@click.option("--s3-prefix", help="s3://bucket/prefix for the documents and artifacts mlsync writes.")
@click.option(
    "--concurrency",
    type=int,
    help=f"Requests in flight at once to SageMaker, S3 and MLflow each (default {DEFAULT_CONCURRENCY}).",
)
@click.option("--output", type=click.Choice(OUTPUTS), default="text", show_default=True)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, _, value: _show_version(ctx, value),
    help="Show mlsync's, MLflow's and boto3's versions, and exit.",
)
@click.pass_context
def cli(ctx: click.Context, /, output: str, verbose: int, **flags: Any) -> None:
    """Mirror an MLflow Model Registry into the Amazon SageMaker Model Registry."""
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = Context(flags, output)


def _show_version(ctx: click.Context, wanted: bool) -> None:
    """`--version`: read from package metadata only when asked, so other commands pay nothing for it."""
    if wanted and not ctx.resilient_parsing:
        click.echo(summary())
        ctx.exit()


def _depth_options(command: F) -> F:
    """`--deep` and `--prune`, shared by `plan` and `push`."""
    command = click.option(
        "--prune",
        is_flag=True,
        default=None,
        help="Also retire the packages of versions deleted in MLflow (as on_delete says; default: prune).",
    )(command)
    return click.option(
        "--deep", is_flag=True, help="Describe every package, so hand edits in SageMaker are seen."
    )(command)


@cli.command()
@models_arguments
@_depth_options
@target_option
@output_option
@click.pass_obj
def plan(
    obj: Context,
    models: tuple[str, ...],
    all_models: bool,
    deep: bool,
    prune: bool | None,
    targets: tuple[str, ...],
) -> None:
    """Show what a push would change, without changing anything (for each target)."""
    chosen = selection(models, all_models)

    def one(engine: Engine, names: list[str] | None) -> int:
        result = engine.plan(names, deep=deep, prune=prune)
        _print_plan(result, obj.output)
        return _planned_exit(result)

    sys.exit(each_target(obj, targets, chosen, one))


@cli.command()
@models_arguments
@click.option("--dry-run", is_flag=True, help="Plan only (same as `mlsync plan`).")
@click.option("--force", is_flag=True, help="Apply even if the plan changes many approvals at once.")
@_depth_options
@target_option
@output_option
@click.pass_obj
def push(
    obj: Context,
    models: tuple[str, ...],
    all_models: bool,
    dry_run: bool,
    force: bool,
    deep: bool,
    prune: bool | None,
    targets: tuple[str, ...],
) -> None:
    """Reconcile SageMaker with MLflow: plan, check, apply (each target). Safe to rerun at any time."""
    chosen = selection(models, all_models)

    def one(engine: Engine, names: list[str] | None) -> int:
        result = engine.plan(names, deep=deep, prune=prune)
        if dry_run:
            _print_plan(result, obj.output)
            return _planned_exit(result)
        with _progress(obj.output, len(result.actions)) as progress:
            report = engine.apply(result, force=force, progress=progress)
        _print_push(result, report, obj.output)
        return _planned_exit(result) if report.ok else EXIT_FAILED

    sys.exit(each_target(obj, targets, chosen, one))


@cli.command()
@models_arguments
@click.option("--dry-run", is_flag=True, help="Show what would be pulled, without writing.")
@output_option
@click.pass_obj
def pull(obj: Context, models: tuple[str, ...], all_models: bool, dry_run: bool) -> None:
    """Record approvals changed in SageMaker (reviews) in MLflow. Writes only MLflow tags."""
    chosen = selection(models, all_models)
    with errors():
        engine = obj.engine(obj.settings())
        result = engine.plan(chosen, pull_only=True)
        if dry_run:
            _print_plan(result, obj.output)
            sys.exit(_planned_exit(result))
        report = engine.apply(result)
    _print_push(result, report, obj.output)
    if not report.ok:
        sys.exit(EXIT_FAILED)
    sys.exit(_planned_exit(result))


@cli.command()
@click.argument("model")
@click.option("--to", "target", metavar="VERSION", help="The MLflow version to go back to.")
@click.option("--reason", default="", help="Why (recorded on the packages and the MLflow versions).")
@click.option("--dry-run", is_flag=True, help="Show the plan only.")
@output_option
@click.pass_obj
def rollback(obj: Context, model: str, target: str | None, reason: str, dry_run: bool) -> None:
    """Reject MODEL's deployed (newest Approved) version and approve an earlier one.

    The default target is the version approved before the deployed one, by mlsync's record
    (`mlsync.approved_at`). MLflow follows: the rejected versions get `sagemaker.approval=Rejected`
    and the approval alias moves to the target.
    """
    with errors():
        engine = obj.engine(obj.settings())
        result = engine.plan_rollback(model, target, reason)
        if dry_run:
            _print_plan(result, obj.output)
            sys.exit(0)
        report = engine.apply(result, force=True)
    _print_push(result, report, obj.output)
    sys.exit(0 if report.ok else EXIT_FAILED)


@cli.command()
@click.argument("model")
@target_option
@output_option
@click.pass_obj
def status(obj: Context, model: str, targets: tuple[str, ...]) -> None:
    """Each version of MODEL beside its SageMaker package and approval (in each target that takes it)."""

    def one(engine: Engine, _names: list[str] | None) -> int:
        rows = engine.status(model)
        click.echo(status_json(rows) if obj.output == "json" else status_table(model, rows))
        return 0 if all(r.in_sync for r in rows) else EXIT_FAILED

    sys.exit(each_target(obj, targets, [model], one))


@cli.command("iam-policy")
@click.option(
    "--account",
    default="*",
    show_default=True,
    help="The AWS account id the SageMaker resources are in (* matches any).",
)
@click.option(
    "--target",
    "target_name",
    metavar="NAME",
    help="The [[targets]] entry whose prefixes and account (that of its role_arn) to use (default: primary).",
)
@click.pass_obj
def iam_policy_command(obj: Context, account: str, target_name: str | None) -> None:
    """Print the least-privilege IAM policy for these settings (S3 prefix, group prefix, on_delete)."""
    with errors():
        settings = obj.settings()
        (target,) = chosen(settings.all_targets(), [target_name] if target_name else [])[:1]
        if account == "*" and target.role_arn:
            account = target.role_arn.split(":")[4]  # the role's account is the one it writes
        document = iam_policy(settings.for_target(target), account)
    click.echo(json.dumps(document, indent=2))


def _planned_exit(result: Plan) -> int:
    """1 when a model could not be planned (MLflow or AWS failed for it), 4 when versions cannot be
    mirrored as they are, else 0; after applying, a failed action exits 1 before this is asked."""
    if result.unplanned:
        return EXIT_FAILED
    return EXIT_PROBLEMS if result.problems else 0


@contextmanager
def _progress(output: str, total: int) -> Iterator[Callable[[Action], None] | None]:
    """A progress bar on stderr for long pushes at a terminal (never in JSON or piped output)."""
    if output != "text" or total < 5 or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label="mirroring", file=sys.stderr) as bar:
        yield lambda _action: bar.update(1)


def _print_plan(result: Plan, output: str) -> None:
    if output == "json":
        click.echo(plan_json(result))
        return
    for line in plan_lines(result):
        click.echo(line)
    for line in problem_lines(result):
        click.echo(line, err=True)
    click.echo(plan_summary(result))


def _print_push(result: Plan, report: Report, output: str) -> None:
    if output == "json":
        click.echo(push_json(result, report))
        return
    _print_plan(result, output)
    for line in failure_lines(report):
        click.echo(line, err=True)
    click.echo(report_summary(report))


def main() -> None:
    """Console-script entry point."""
    cli()


cli.add_command(serve)
cli.add_command(webhook)
cli.add_command(verify)
cli.add_command(emulator)
cli.add_command(doctor)
