"""The backup orchestration (fan-out/fan-in over a sliding window) and its activities.

The orchestrator is a thin, deterministic loop (``plan_loop.run_plan``): ``site_backup.plan.Plan`` says which
calls to make, the loop schedules them (a group of copies as one ``task_all``), waits for any outstanding task
with ``task_any``, and hands each result back to the plan. All file-system and storage work happens in the
activities, which are async (they run on the worker's event loop) and idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from enum import StrEnum
from typing import Any

import azure.durable_functions as df

from site_backup import service
from site_backup.plan import Plan, PlanState, Step

from .names import (
    BACKUP_ORCHESTRATOR,
    COMMIT_FILE_SEGMENTS,
    COPY_FILE_TO_BLOB,
    COUNT_FILES,
    FINISH_BACKUP,
    GET_FILE_LIST,
    STAGE_FILE_SEGMENT,
)
from .plan_loop import orchestration_input, run_plan

bp = df.Blueprint()

# The Azure SDK logs every storage request and response at INFO; per file that drowns the
# function logs (and Application Insights) in headers. Warnings and errors still come through.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

ACTIVITY: dict[StrEnum, str] = {
    Step.COUNT: COUNT_FILES,
    Step.LIST: GET_FILE_LIST,
    Step.COPY: COPY_FILE_TO_BLOB,
    Step.STAGE: STAGE_FILE_SEGMENT,
    Step.COMMIT: COMMIT_FILE_SEGMENTS,
    Step.FINISH: FINISH_BACKUP,
}


@bp.function_name(BACKUP_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def backup_site_content(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int | None]:
    """List the files page by page, copy them through a window of activities, return the total bytes.

    After a budget of calls an execution lets its work finish and continues as new with its state.
    """
    plan = Plan(
        PlanState.from_input(orchestration_input(context)), context.instance_id, lambda: context.current_utc_datetime
    )
    return (yield from run_plan(context, plan, ACTIVITY))


@bp.function_name(GET_FILE_LIST)
@bp.activity_trigger(input_name="rootDirectory")
async def get_file_list(rootDirectory: object) -> object:
    """One page of the listing (manifests in storage, their names returned); for a bare directory or
    request object, every selected file's path, as in the seed.

    The input is annotated ``object`` because the Python worker refuses a union or a parameterised generic
    on a binding parameter.
    """
    return await service.get_file_list(rootDirectory)


@bp.function_name(COPY_FILE_TO_BLOB)
@bp.activity_trigger(input_name="filePath")
async def copy_file_to_blob(filePath: object) -> object:
    """Back up the files of a work unit; given one path, as in the seed, back up that file and return its size."""
    return await service.copy_file_to_blob(filePath)


@bp.function_name(COUNT_FILES)
@bp.activity_trigger(input_name="request")
async def count_files(request: object) -> object:
    """How many files and bytes the backup covers, for its progress."""
    return await service.count_selected_files(request)


@bp.function_name(STAGE_FILE_SEGMENT)
@bp.activity_trigger(input_name="segment")
async def stage_file_segment(segment: object) -> object:
    """Stage one segment of a large file as blocks."""
    return await service.stage_file_segment(segment)


@bp.function_name(COMMIT_FILE_SEGMENTS)
@bp.activity_trigger(input_name="segment")
async def commit_file_segments(segment: object) -> object:
    """Commit a large file from its staged segments."""
    return await service.commit_file_segments(segment)


@bp.function_name(FINISH_BACKUP)
@bp.activity_trigger(input_name="run")
async def finish_backup(run: object) -> object:
    """Remove a finished run's working files."""
    return await service.finish_backup(run)
