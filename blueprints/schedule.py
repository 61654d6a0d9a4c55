"""Scheduled backups: a timer that starts one backup-and-prune per root, never two at once for a root.

The timer fires on ``%BACKUP_SCHEDULE%`` (six-field NCRONTAB; with ``AzureWebJobs.E2_ScheduledBackup.Disabled``
set to ``true`` it never fires). Each root's runs share one instance id (the Durable "singleton" pattern): a
tick that finds it Pending, Running or ContinuedAsNew skips the root. A tick missed while the host was down is
fired once when it starts again (``past_due``), so a missed schedule starts one run, not a burst.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from site_backup.prune_messages import PruneRequest
from site_backup.schedule import ScheduledRun, backup_run_id, scheduled_runs

from .names import BACKUP_AND_PRUNE, BACKUP_ORCHESTRATOR, PRUNE_ORCHESTRATOR, SCHEDULED_BACKUP

bp = df.Blueprint()
log = logging.getLogger(__name__)
CHECK_SECONDS = 60

_Status = df.OrchestrationRuntimeStatus
LIVE = frozenset({_Status.Pending, _Status.Running, _Status.ContinuedAsNew, _Status.Suspended})


@bp.function_name(SCHEDULED_BACKUP)
@bp.timer_trigger(arg_name="timer", schedule="%BACKUP_SCHEDULE%")
@bp.durable_client_input(client_name="client")
async def scheduled_backup(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Start a backup (then a prune) of every scheduled root whose last one has finished."""
    try:  # checking the roots touches the file system: a hung mount skips this tick instead of holding it
        runs, problems = await asyncio.wait_for(asyncio.to_thread(scheduled_runs), CHECK_SECONDS)
    except TimeoutError:
        log.error(
            "Checking the scheduled roots took over %d s (is their file system responding?): tick skipped.",
            CHECK_SECONDS,
        )
        return
    for problem in problems:
        log.error(problem)
    if timer.past_due:
        log.warning("The backup schedule is past due (the host was not running at its time): starting one run now.")
    for run in runs:
        root, instance = run.request.root_directory, run.instance_id
        busy = await _still_running(client, instance)
        if busy is not None:
            log.warning("Skipped the scheduled backup of %s: its last one (%s) is still %s.", root, *busy)
            continue
        try:
            await client.start_new(BACKUP_AND_PRUNE, instance, run.to_json())
        except Exception as exc:  # another start won the race, or the runtime refused: the next tick tries again
            log.error("The scheduled backup of %s could not be started: %s", root, exc)
            continue
        log.info("Started the scheduled backup of %s as %s.", root, instance)


async def _still_running(client: df.DurableOrchestrationClient, instance: str) -> tuple[str, str] | None:
    """The root's last scheduled run, or the backup it started, if either is still live (a terminated
    parent leaves its sub-orchestration running)."""
    status = await client.get_status(instance)
    if status is None or status.runtime_status is None:
        return None
    if status.runtime_status in LIVE:
        return instance, status.runtime_status.value
    custom = status.custom_status if isinstance(status.custom_status, dict) else {}
    backup = custom.get("backup")
    if isinstance(backup, str) and custom.get("phase") != "completed":
        child = await client.get_status(backup)
        if child is not None and child.runtime_status in LIVE:
            return backup, child.runtime_status.value
    return None


@bp.function_name(BACKUP_AND_PRUNE)
@bp.orchestration_trigger(context_name="context")
def backup_and_prune(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Back up one root as a sub-orchestration, then, if it succeeded and a policy is set, prune its runs."""
    job = ScheduledRun.from_json(context.get_input())
    run = backup_run_id(context.instance_id, context.current_utc_datetime)
    context.set_custom_status({"phase": "backing up", "backup": run})
    total = yield context.call_sub_orchestrator(BACKUP_ORCHESTRATOR, job.request.to_json(), run)
    report = None
    if job.retention is not None:
        context.set_custom_status({"phase": "pruning", "backup": run})
        prune = PruneRequest(job.request.root_directory, job.retention)
        report = yield context.call_sub_orchestrator(PRUNE_ORCHESTRATOR, prune.to_json(), f"{run}-prune")
    context.set_custom_status({"phase": "completed", "backup": run})
    return {"backup": run, "bytes": total, "prune": report}
