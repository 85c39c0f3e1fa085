"""Every target's engine behind the one `Reconciler` a trigger runs (the registry-store plugin's).

Each target (targets.py) is reconciled by its own `Engine`, over its own boto3 session, so one target's
failure (its account unreachable, a role it cannot assume) never stops the others: it is logged under
the target's name and raised once every target has run. Pulls go to the primary target only, the one
reviews are pulled from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from .engine import Engine
from .errors import GatewayError, MlsyncError
from .executor import Report
from .planner import Plan

log = logging.getLogger(__name__)


def target_names(engine: Engine, names: Sequence[str] | None) -> list[str] | None:
    """The models of `names` that the engine's target takes (None, every model, stays None)."""
    return None if names is None else [name for name in names if engine.target.selects(name)]


class Fleet:
    """A `triggers.reconcile.Reconciler` over several targets' engines, the primary first."""

    def __init__(self, engines: Sequence[Engine]) -> None:
        self.engines = tuple(engines)

    def push(self, names: Sequence[str] | None = None) -> tuple[Plan, Report]:
        return self._each(names, lambda engine, chosen: engine.push(chosen))

    def pull(self, names: Sequence[str] | None = None) -> tuple[Plan, Report]:
        return self._each(names, lambda engine, chosen: engine.pull(chosen), self.engines[:1])

    def retire(self, name: str, versions: Sequence[str] = ()) -> Report:
        return self._each([name], lambda engine, _: (Plan(), engine.retire(name, versions)))[1]

    def _each(
        self,
        names: Sequence[str] | None,
        call: Callable[[Engine, list[str] | None], tuple[Plan, Report]],
        engines: Sequence[Engine] | None = None,
    ) -> tuple[Plan, Report]:
        plan, report, failed = Plan(), Report(), []
        for engine in self.engines if engines is None else engines:
            chosen = target_names(engine, names)
            if chosen == []:
                continue
            try:
                one_plan, one_report = call(engine, chosen)
            except MlsyncError as exc:
                log.error("target %s failed: %s (the other targets go on)", engine.target.name, exc)
                failed.append(f"target {engine.target.name}: {exc}")
                continue
            plan += one_plan
            report.extend(one_report)
        if failed:
            raise GatewayError("; ".join(failed))
        return plan, report
