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
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from ..engine import StatusRow
from ..executor import Report
from ..mapping import TAG_REVIEW_BY
from ..planner import (
    Action,
    CreateGroup,
    CreatePackage,
    DeletePackage,
    LinkVersion,
    MoveAlias,
    Plan,
    PullApproval,
    RecordProblem,
    UpdatePackage,
)
from .shell import EXIT_FAILED, EXIT_PROBLEMS, Context, errors, models_arguments, selection
from .verify_cli import verify
from .webhook_cli import serve, webhook


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI.")
@click.option(
    "--registry-uri", envvar="MLFLOW_REGISTRY_URI", help="MLflow registry URI (default: tracking URI)."
)
@click.option(
    "--config", "config", type=click.Path(dir_okay=False), help="mlsync.toml or pyproject.toml to read."
)
@click.option("--region", help="AWS region (default: boto3's chain, e.g. AWS_REGION).")
@click.option("--s3-prefix", help="s3://bucket/prefix for the documents and artifacts mlsync writes.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, /, output: str, verbose: int, **flags: Any) -> None:
    """Mirror an MLflow Model Registry into the Amazon SageMaker Model Registry."""
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = Context(flags, output)


@cli.command()
@models_arguments
@click.pass_obj
def plan(obj: Context, models: tuple[str, ...], all_models: bool) -> None:
    """Show what a push would change, without changing anything."""
    chosen = selection(models, all_models)
    with errors():
        settings = obj.settings()
        result = obj.engine(settings).plan(chosen)
    _print_plan(result, obj.output)
    sys.exit(EXIT_PROBLEMS if result.problems else 0)


@cli.command()
@models_arguments
@click.option("--dry-run", is_flag=True, help="Plan only (same as `mlsync plan`).")
@click.option("--force", is_flag=True, help="Apply even if the plan changes many approvals at once.")
@click.pass_obj
def push(obj: Context, models: tuple[str, ...], all_models: bool, dry_run: bool, force: bool) -> None:
    """Reconcile SageMaker with MLflow: plan, check, apply. Safe to rerun at any time."""
    chosen = selection(models, all_models)
    with errors():
        settings = obj.settings()
        engine = obj.engine(settings)
        result = engine.plan(chosen)
        if dry_run:
            _print_plan(result, obj.output)
            sys.exit(EXIT_PROBLEMS if result.problems else 0)
        with _progress(obj.output, len(result.actions)) as progress:
            report = engine.apply(result, force=force, progress=progress)
    _print_push(result, report, obj.output)
    if not report.ok:
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_PROBLEMS if result.problems else 0)


@cli.command()
@models_arguments
@click.option("--dry-run", is_flag=True, help="Show what would be pulled, without writing.")
@click.pass_obj
def pull(obj: Context, models: tuple[str, ...], all_models: bool, dry_run: bool) -> None:
    """Record approvals changed in SageMaker (reviews) in MLflow. Writes only MLflow tags."""
    chosen = selection(models, all_models)
    with errors():
        engine = obj.engine(obj.settings())
        result = engine.plan(chosen, pull_only=True)
        if dry_run:
            _print_plan(result, obj.output)
            sys.exit(EXIT_PROBLEMS if result.problems else 0)
        report = engine.apply(result)
    _print_push(result, report, obj.output)
    if not report.ok:
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_PROBLEMS if result.problems else 0)


@cli.command()
@click.argument("model")
@click.option("--to", "target", metavar="VERSION", help="The MLflow version to go back to.")
@click.option("--reason", default="", help="Why (recorded on the packages and the MLflow versions).")
@click.option("--dry-run", is_flag=True, help="Show the plan only.")
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
@click.pass_obj
def status(obj: Context, model: str) -> None:
    """Each version of MODEL beside its SageMaker package and approval."""
    with errors():
        settings = obj.settings()
        rows = obj.engine(settings).status(model)
    if obj.output == "json":
        click.echo(json.dumps([row.__dict__ for row in rows], indent=2, default=str))
    else:
        click.echo(format_status(model, rows))
    sys.exit(0 if all(r.in_sync for r in rows) else EXIT_FAILED)


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
        click.echo(json.dumps({**result.to_dict(), "checksum": result.checksum()}, indent=2))
        return
    for action in result.actions:
        click.echo(describe_action(action))
    for drift in result.drift:
        click.echo(f"! drift   {drift.model_name} v{drift.version} {drift.field}: {drift.detail}")
    for conflict in result.conflicts:
        click.echo(f"! conflict {conflict.model_name} v{conflict.version}: {conflict.message}")
    for problem in result.problems:
        click.echo(f"! cannot mirror {problem}", err=True)
    click.echo(summary(result))


def _print_push(result: Plan, report: Report, output: str) -> None:
    if output == "json":
        click.echo(json.dumps({"plan": result.to_dict(), "report": report.to_dict()}, indent=2))
        return
    _print_plan(result, output)
    for failure in report.failures:
        click.echo(
            f"! failed  {failure.model_name} v{failure.version} {failure.action}: {failure.message}", err=True
        )
    click.echo(
        f"Applied: {len(report.groups_created)} groups and {len(report.packages_created)} packages created, "
        f"{len(report.packages_updated)} packages updated, {len(report.packages_deleted)} deleted, "
        f"{len(report.versions_linked)} versions linked, {len(report.approvals_pulled)} approvals pulled, "
        f"{len(report.aliases_moved)} aliases moved, "
        f"{report.artifacts_uploaded} artifacts uploaded, {len(report.failures)} failures."
    )


def describe_action(action: Action) -> str:
    """One line of a text plan."""
    if isinstance(action, CreateGroup):
        return f"+ group   {action.spec.name} (MLflow model {action.spec.model_name!r})"
    if isinstance(action, CreatePackage):
        spec = action.spec
        return (
            f"+ package {spec.model_name} v{spec.version} -> {spec.group_name}: "
            f"{spec.approval.value} ({spec.approval_reason.removeprefix('mlsync: ')})"
        )
    if isinstance(action, UpdatePackage):
        changes = []
        if action.approval is not None:
            previous = action.previous_approval.value if action.previous_approval else "-"
            changes.append(
                f"approval {previous} -> {action.approval.value} "
                f"({action.approval_reason.removeprefix('mlsync: ')})"
            )
        if action.lifecycle is not None:
            changes.append(f"lifecycle {action.lifecycle.stage}/{action.lifecycle.stage_status}")
        if action.metadata_set or action.metadata_remove:
            changes.append(f"metadata {len(action.metadata_set)} set, {len(action.metadata_remove)} removed")
        return f"~ package {action.model_name} v{action.version}: {'; '.join(changes)}"
    if isinstance(action, LinkVersion):
        return f"~ mlflow  {action.model_name} v{action.version}: tag {', '.join(sorted(action.tags))}"
    if isinstance(action, PullApproval):
        by = action.tags.get(TAG_REVIEW_BY)
        return (
            f"< mlflow  {action.model_name} v{action.version}: approval {action.wanted.value} -> "
            f"{action.approval.value} from SageMaker{f' (by {by})' if by else ''}"
        )
    if isinstance(action, MoveAlias):
        return f"~ mlflow  {action.model_name} @{action.alias}: v{action.previous} -> v{action.version}"
    if isinstance(action, DeletePackage):
        return f"- package {action.model_name} v{action.version}: delete {action.arn}"
    return f"~ mlflow  {action.model_name} v{action.version}: record {action.message}"


def summary(result: Plan) -> str:
    """The closing line of a text plan."""
    if result.is_empty:
        return (
            f"In sync: nothing to do ({result.existing} packages checked, {len(result.problems)} problems)."
        )
    counts = {
        "groups to create": sum(isinstance(a, CreateGroup) for a in result.actions),
        "packages to create": sum(isinstance(a, CreatePackage) for a in result.actions),
        "packages to update": sum(isinstance(a, UpdatePackage) for a in result.actions),
        "packages to delete": sum(isinstance(a, DeletePackage) for a in result.actions),
        "approvals to pull into MLflow": sum(isinstance(a, PullApproval) for a in result.actions),
        "aliases to move": sum(isinstance(a, MoveAlias) for a in result.actions),
        "MLflow versions to tag": sum(isinstance(a, (LinkVersion, RecordProblem)) for a in result.actions),
    }
    parts = [f"{n} {what}" for what, n in counts.items() if n]
    return (
        f"Plan: {', '.join(parts)}; {len(result.problems)} problems, {len(result.drift)} drift, "
        f"{len(result.conflicts)} conflicts."
    )


def format_status(model: str, rows: Sequence[StatusRow]) -> str:
    """The status table: Version | Model package | headline metric | Status | Approval | Sync."""
    metric_name = next((r.metric_name for r in rows if r.metric_name), None) or "Metric"
    header = ("Version", "Model package", metric_name, "Status", "Approval", "Sync")
    lines = [header]
    for row in rows:
        lines.append(
            (
                row.version,
                _short_arn(row.package),
                _format_value(row.metric_value),
                ", ".join([row.stage, *(f"@{a}" for a in row.aliases)]),
                row.approval or "-",
                "in sync" if row.in_sync else f"out of sync (want {row.desired_approval or '?'})",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = [
        " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    rendered.insert(1, "-+-".join("-" * w for w in widths))
    notes = [f"v{r.version}: {r.note}" for r in rows if r.note]
    notes += [f"v{r.version}: conflict: {r.conflict}" for r in rows if r.conflict]
    return "\n".join([f"MLflow model {model!r}", *rendered, *notes])


def _short_arn(arn: str | None) -> str:
    return arn.split(":model-package/", 1)[-1] if arn else "-"


def _format_value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def main() -> None:
    """Console-script entry point."""
    cli()


cli.add_command(serve)
cli.add_command(webhook)
cli.add_command(verify)
