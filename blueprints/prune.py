"""Retention: the prune orchestration and its activities.

The orchestrator runs the same loop as the backup (``plan_loop.run_plan``) around
``site_backup.prune_plan.PrunePlan``: select the runs, list the snapshots, read the referencing catalogs,
remove the runs that go and the snapshots nothing needs.
"""

from __future__ import annotations

from collections.abc import Generator
from enum import StrEnum
from typing import Any

import azure.durable_functions as df

from site_backup import prune
from site_backup.prune_plan import PrunePlan, PruneState, PruneStep

from .names import (
    PRUNE_DELETE_SNAPSHOTS,
    PRUNE_FIND_SNAPSHOTS,
    PRUNE_FINISH,
    PRUNE_ORCHESTRATOR,
    PRUNE_READ_CATALOG,
    PRUNE_REMOVE_RUNS,
    PRUNE_SELECT_RUNS,
)
from .plan_loop import orchestration_input, run_plan

bp = df.Blueprint()

ACTIVITY: dict[StrEnum, str] = {
    PruneStep.SELECT: PRUNE_SELECT_RUNS,
    PruneStep.FIND: PRUNE_FIND_SNAPSHOTS,
    PruneStep.COLLECT: PRUNE_READ_CATALOG,
    PruneStep.REMOVE: PRUNE_REMOVE_RUNS,
    PruneStep.DELETE: PRUNE_DELETE_SNAPSHOTS,
    PruneStep.FINISH: PRUNE_FINISH,
}


@bp.function_name(PRUNE_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def prune_backups(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any] | None]:
    """Apply a retention policy to a root's backups; returns what was (or, dry, would be) removed."""
    started = context.current_utc_datetime.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    state = PruneState.from_input(orchestration_input(context))
    plan = PrunePlan(state, prune.work_area(context.instance_id), started)
    return (yield from run_plan(context, plan, ACTIVITY))


@bp.function_name(PRUNE_SELECT_RUNS)
@bp.activity_trigger(input_name="task")
async def prune_select_runs(task: object) -> object:
    """Which runs the policy keeps and removes, and which runs' catalogs say what must stay."""
    return await prune.select_runs(task)


@bp.function_name(PRUNE_FIND_SNAPSHOTS)
@bp.activity_trigger(input_name="task")
async def prune_find_snapshots(task: object) -> object:
    """One stretch of the root's blobs, listed with their snapshots."""
    return await prune.find_snapshots(task)


@bp.function_name(PRUNE_READ_CATALOG)
@bp.activity_trigger(input_name="task")
async def prune_read_catalog(task: object) -> object:
    """The stored versions one referencing run needs."""
    return await prune.collect_references(task)


@bp.function_name(PRUNE_REMOVE_RUNS)
@bp.activity_trigger(input_name="task")
async def prune_remove_runs(task: object) -> object:
    """Remove the catalogs of a batch of runs."""
    return await prune.remove_runs(task)


@bp.function_name(PRUNE_DELETE_SNAPSHOTS)
@bp.activity_trigger(input_name="task")
async def prune_delete_snapshots(task: object) -> object:
    """Delete the snapshots of one document that nothing needs."""
    return await prune.delete_snapshots(task)


@bp.function_name(PRUNE_FINISH)
@bp.activity_trigger(input_name="task")
async def prune_finish(task: object) -> None:
    """Delete the prune's work area."""
    await prune.finish_prune(task)
