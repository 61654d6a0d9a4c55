"""Restore and verify: orchestrations over a sealed backup's catalog, and their activities.

Both run the same orchestrator loop as the backup (``plan_loop.run_plan``) around
``site_backup.recovery_plan.RecoveryPlan``: find the backup, page through its catalog, a window of parts.
"""

from __future__ import annotations

from collections.abc import Generator
from enum import StrEnum
from typing import Any

import azure.durable_functions as df

from site_backup import recovery
from site_backup.recovery_plan import RecoveryPlan, RecoveryState, RecoveryStep

from .names import (
    COUNT_FILES,
    FIND_BACKUP,
    LIST_BACKUP_PARTS,
    RESTORE_FILES,
    RESTORE_ORCHESTRATOR,
    VERIFY_FILES,
    VERIFY_ORCHESTRATOR,
)
from .plan_loop import orchestration_input, run_plan

bp = df.Blueprint()

ACTIVITY: dict[StrEnum, str] = {
    RecoveryStep.FIND: FIND_BACKUP,
    RecoveryStep.COUNT: COUNT_FILES,
    RecoveryStep.PARTS: LIST_BACKUP_PARTS,
    RecoveryStep.RESTORE: RESTORE_FILES,
    RecoveryStep.VERIFY: VERIFY_FILES,
}


@bp.function_name(RESTORE_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def restore_site_content(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int | None]:
    """Restore one backup of a root into a target directory; returns the bytes the target holds of it."""
    plan = RecoveryPlan(RecoveryState.from_input("restore", orchestration_input(context)))
    return (yield from run_plan(context, plan, ACTIVITY))


@bp.function_name(VERIFY_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def verify_site_backup(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any] | None]:
    """Check one backup of a root in storage (and against the site); returns a report."""
    plan = RecoveryPlan(RecoveryState.from_input("verify", orchestration_input(context)))
    return (yield from run_plan(context, plan, ACTIVITY))


@bp.function_name(FIND_BACKUP)
@bp.activity_trigger(input_name="request")
async def find_backup(request: object) -> object:
    """The sealed run a restore or verify names (latest, an id, or a time)."""
    return await recovery.find_backup(request)


@bp.function_name(LIST_BACKUP_PARTS)
@bp.activity_trigger(input_name="task")
async def list_backup_parts(task: object) -> object:
    """One page of a run's catalog parts."""
    return await recovery.list_backup_parts(task)


@bp.function_name(RESTORE_FILES)
@bp.activity_trigger(input_name="task")
async def restore_files(task: object) -> object:
    """Restore the files of one catalog part."""
    return await recovery.restore_part(task)


@bp.function_name(VERIFY_FILES)
@bp.activity_trigger(input_name="task")
async def verify_files(task: object) -> object:
    """Check the files of one catalog part."""
    return await recovery.verify_part(task)
