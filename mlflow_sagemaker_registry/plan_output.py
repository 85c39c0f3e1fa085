"""How plans, reports and status tables read: the text `mlsync` prints and its `--output json` form.

Kept in one module beside the plan (octodns keeps its plan outputs apart from planning), so every trigger
that shows a plan shows it the same way, and cli.py only chooses a stream. Each action renders its own
line (`Action.text`); this module arranges the lines, the summaries and the table. Pure: no click.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import get_args

from .actions import Action
from .engine import StatusRow
from .executor import Report
from .planner import Plan

_NOUNS = tuple(dict.fromkeys(kind.NOUN for kind in get_args(Action)))
"""What a summary counts, in plan order (two kinds of MLflow tag write share one noun)."""


def plan_lines(plan: Plan) -> list[str]:
    """The plan's actions, then its drift and conflicts, one line each (for standard output)."""
    lines = [action.text() for action in plan.actions]
    lines += [f"! drift   {d.model_name} v{d.version} {d.field}: {d.detail}" for d in plan.drift]
    lines += [f"! conflict {c.model_name} v{c.version}: {c.message}" for c in plan.conflicts]
    return lines


def problem_lines(plan: Plan) -> list[str]:
    """The versions that cannot be mirrored, each with its fix, and the models that could not be planned
    (for standard error)."""
    lines = [f"! cannot mirror {problem}" for problem in plan.problems]
    return lines + [f"! cannot plan model {u.model_name!r}: {u.message}" for u in plan.unplanned]


def plan_summary(plan: Plan) -> str:
    """The closing line of a text plan."""
    if plan.is_empty:
        if not plan.unplanned:
            return (
                f"In sync: nothing to do ({plan.existing} packages checked, {len(plan.problems)} problems)."
            )
        return f"Nothing to do for the models planned; {len(plan.unplanned)} could not be planned."
    counts = Counter(type(action).NOUN for action in plan.actions)
    parts = [f"{counts[noun]} {noun}" for noun in _NOUNS if counts[noun]]
    unplanned = f", {len(plan.unplanned)} models not planned" if plan.unplanned else ""
    return (
        f"Plan: {', '.join(parts)}; {len(plan.problems)} problems, {len(plan.drift)} drift, "
        f"{len(plan.conflicts)} conflicts{unplanned}."
    )


def failure_lines(report: Report) -> list[str]:
    """The actions that failed (for standard error)."""
    return [f"! failed  {f.model_name} v{f.version} {f.action}: {f.message}" for f in report.failures]


def report_summary(report: Report) -> str:
    """The closing line of an applied plan."""
    return (
        f"Applied: {len(report.groups_created)} groups and {len(report.packages_created)} packages created, "
        f"{len(report.packages_updated)} packages updated, {len(report.packages_deleted)} deleted, "
        f"{len(report.versions_linked)} versions linked, {len(report.approvals_pulled)} approvals pulled, "
        f"{len(report.aliases_moved)} aliases moved, "
        + (
            f"{len(report.group_policies_written)} group policies written, "
            if report.group_policies_written
            else ""
        )
        + f"{report.artifacts_uploaded} artifacts uploaded, {len(report.failures)} failures."
    )


def plan_json(plan: Plan) -> str:
    """`mlsync plan --output json`: the plan as data, with the checksum a reviewer can compare."""
    return json.dumps({**plan.to_dict(), "checksum": plan.checksum()}, indent=2)


def push_json(plan: Plan, report: Report) -> str:
    """`mlsync push --output json` (and `pull`, `rollback`): the plan and what applying it did."""
    return json.dumps({"plan": plan.to_dict(), "report": report.to_dict()}, indent=2)


def status_json(rows: Sequence[StatusRow]) -> str:
    return json.dumps([row.__dict__ for row in rows], indent=2, default=str)


def status_table(model: str, rows: Sequence[StatusRow]) -> str:
    """The status table as Studio's versions table reads (Version | Model package | headline metric |
    Status | Approval), then the MLflow stage and aliases and whether the two are in sync."""
    metric_name = next((r.metric_name for r in rows if r.metric_name), None) or "Metric"
    header = ("Version", "Model package", metric_name, "Status", "Approval", "MLflow", "Sync")
    lines = [header]
    for row in rows:
        lines.append(
            (
                row.version,
                _short_arn(row.package),
                _format_value(row.metric_value),
                row.package_status or "-",
                row.approval or "-",
                ", ".join([row.stage, *(f"@{a}" for a in row.aliases)]),
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
