"""The backup orchestration (fan-out/fan-in over a sliding window) and its activities.

The orchestrator is a thin, deterministic loop: ``site_backup.plan.Plan`` says which calls to make, the loop
schedules them (a group of copies as one ``task_all``), waits for any outstanding task with ``task_any``, and
hands each result back to the plan. All file-system and storage work happens in the activities, which are
async (they run on the worker's event loop) and idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskBase, TaskState

from site_backup import service
from site_backup.plan import Call, Plan, PlanState, Step

from .names import (
    BACKUP_ORCHESTRATOR,
    COMMIT_FILE_SEGMENTS,
    COPY_FILE_TO_BLOB,
    COUNT_FILES,
    FINISH_BACKUP,
    GET_FILE_LIST,
    STAGE_FILE_SEGMENT,
)

bp = df.Blueprint()

# The Azure SDK logs every storage request and response at INFO; per file that drowns the
# function logs (and Application Insights) in headers. Warnings and errors still come through.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

# Transient failures (storage throttling, a recycled worker) are retried by the host:
# up to 3 attempts, 5 s apart.
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)

ACTIVITY = {
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
    plan = Plan(PlanState.from_input(_input(context)), context.instance_id, lambda: context.current_utc_datetime)
    context.set_custom_status(plan.status())
    # Every outstanding task, and the calls it stands for: each yield waits on all of them, so every task
    # is always attached to the task_any being waited on.
    waiting: dict[TaskBase, list[Call]] = {}
    while True:
        for group in plan.next_groups():
            waiting[_schedule(context, group)] = group
        if not waiting:
            break
        finished = yield context.task_any(list(waiting))
        for call, task in _settled(finished, waiting.pop(finished), waiting):
            if isinstance(task.result, Exception):
                plan.record(call, error=_reason(task.result, ACTIVITY[call.step]))
            else:
                plan.record(call, task.result)
        context.set_custom_status(plan.status())
    if plan.continues():
        context.continue_as_new(plan.continuation())
        return None
    return plan.output()


def _schedule(context: df.DurableOrchestrationContext, group: list[Call]) -> TaskBase:
    if group[0].step is Step.WAIT:  # a durable timer: the plan waits for storage to come back
        return context.create_timer(context.current_utc_datetime + timedelta(seconds=group[0].input))
    tasks = [context.call_activity_with_retry(ACTIVITY[call.step], RETRY, call.input) for call in group]
    return tasks[0] if len(tasks) == 1 else context.task_all(tasks)


def _settled(finished: TaskBase, calls: list[Call], waiting: dict[TaskBase, list[Call]]) -> Iterator[tuple[Call, Any]]:
    """The calls of a finished task with their tasks. A task_all fails on its first failed child: the
    children still running then wait on their own."""
    if len(calls) == 1:
        yield calls[0], finished
        return
    for call, child in zip(calls, finished.children, strict=True):
        if child.state is TaskState.RUNNING:
            waiting[child] = [call]
        else:
            yield call, child


def _reason(exc: Exception, activity: str) -> str:
    """An activity's error without the host's prefix and serialized .NET exception details."""
    return str(exc).split(" \n ")[0].removeprefix(f"Activity function '{activity}' failed: ")


def _input(context: df.DurableOrchestrationContext) -> object:
    """The orchestration input, also when the webhook API started it with a bare JSON string.

    The SDK decodes the input once more (it expects a JSON text inside a string); a body such as
    ``"/home/site/wwwroot"`` posted to the webhook is not JSON text, so it is taken as it is.
    """
    try:
        return context.get_input()
    except (ValueError, TypeError):  # not JSON text: a bare path string, or a number/array posted as is
        return context._input


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
