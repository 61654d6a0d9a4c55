"""The backup orchestration (fan-out/fan-in) and its two activities.

The orchestrator is deterministic: it only parses its input, schedules activities and adds up
their results. All file-system and storage work happens in the activities, which are idempotent.
"""

import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.Task import TaskBase, TaskState

from site_backup.errors import BackupIncomplete, ListingFailed
from site_backup.plan import GENERATION_SIZE, Tally, groups
from site_backup.request import parse_orchestration_input
from site_backup.service import copy_file_to_blob, list_backup_files
from site_backup.wire import from_wire

from .names import BACKUP_ORCHESTRATOR, COPY_FILE_TO_BLOB, GET_FILE_LIST

bp = df.Blueprint()

# The Azure SDK logs every storage request and response at INFO; per file that drowns the
# function logs (and Application Insights) in headers. Warnings and errors still come through.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

# Transient failures (storage throttling, a recycled worker) are retried by the host:
# up to 3 attempts, 5 s apart.
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)


@bp.function_name(BACKUP_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def backup_site_content(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int | None]:
    """List the files, copy them all in parallel, and return the total number of bytes.

    A tree bigger than one generation continues as new after each GENERATION_SIZE files.
    """
    request, resume = parse_orchestration_input(_input(context))
    if resume is None:
        context.set_custom_status(Tally().status("listing"))
        files: list[str] = yield from _listing(context, request.listing_input())
        tally = Tally(files_total=len(files))
    else:
        after, tally = resume
        context.set_custom_status(tally.status("copying"))
        files = yield from _listing(context, request.listing_input(after, GENERATION_SIZE + 1))
    batch = files[:GENERATION_SIZE]
    context.set_custom_status(tally.status("copying"))
    # The first task_any schedules every copy of the batch; each group is one task_all.
    paths_of = {}
    for group in groups(batch):
        paths_of[context.task_all([_call(context, COPY_FILE_TO_BLOB, path) for path in group])] = group
    pending = list(paths_of)
    # Copies still running in a group that already failed: waited for one by one. Every yield
    # covers all outstanding work, so each task is always attached to the task_any being waited on.
    orphans: dict[TaskBase, str] = {}
    while pending or orphans:
        finished = yield context.task_any([*pending, *orphans])
        if finished in orphans:
            tally = tally.add(*_outcomes([(orphans.pop(finished), finished)]))
        else:
            pending.remove(finished)
            copies = list(zip(paths_of[finished], finished.children, strict=True))
            orphans.update((copy, path) for path, copy in copies if copy.state is TaskState.RUNNING)
            tally = tally.add(
                *_outcomes([(path, copy) for path, copy in copies if copy.state is not TaskState.RUNNING])
            )
        context.set_custom_status(tally.status("copying"))
    if len(files) > GENERATION_SIZE:
        context.continue_as_new(request.continued(batch[-1], tally))
        return None
    if tally.files_failed:
        context.set_custom_status(tally.status("failed"))
        raise BackupIncomplete(tally.failure_report())
    context.set_custom_status(tally.status("completed"))
    return tally.bytes_done


def _listing(context: df.DurableOrchestrationContext, listing_input: object) -> Generator[Any, Any, list[str]]:
    """Call E2_GetFileList; if it fails for good, fail with its own message and nothing more."""
    try:
        return (yield _call(context, GET_FILE_LIST, listing_input))
    except Exception as exc:
        raise ListingFailed(_reason(exc, GET_FILE_LIST)) from None


def _reason(exc: Exception, activity: str) -> str:
    """An activity's error without the host's prefix and serialized .NET exception details."""
    return str(exc).split(" \n ")[0].removeprefix(f"Activity function '{activity}' failed: ")


def _outcomes(ended: list[tuple[str, TaskBase]]) -> tuple[list[int], list[str]]:
    """The sizes of the finished copies that succeeded and a one-line reason for each that failed."""
    sizes, failures = [], []
    for path, copy in ended:
        if isinstance(copy.result, Exception):
            failures.append(f"{_printable(from_wire(path))}: {_reason(copy.result, COPY_FILE_TO_BLOB)}")
        else:
            sizes.append(copy.result)
    return sizes, failures


@bp.function_name(GET_FILE_LIST)
@bp.activity_trigger(input_name="rootDirectory")
def get_file_list(rootDirectory: object) -> list[str]:
    """Every regular file under the root, sorted; honours include/exclude patterns.

    The input is a directory string or a request object. It is annotated ``object`` because
    the Python worker refuses a union or a parameterised generic on a binding parameter.
    """
    return list_backup_files(rootDirectory)


@bp.function_name(COPY_FILE_TO_BLOB)
@bp.activity_trigger(input_name="filePath")
def copy_file_to_blob_activity(filePath: str) -> int:
    """Back up one file; returns its size in bytes (0 when it vanished after listing)."""
    return copy_file_to_blob(filePath)


def _printable(path: str) -> str:
    """A path safe in any text: bytes that are not UTF-8 shown as \\xNN escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _call(context: df.DurableOrchestrationContext, name: str, activity_input: object) -> TaskBase:
    return context.call_activity_with_retry(name, RETRY, activity_input)


def _input(context: df.DurableOrchestrationContext) -> object:
    """The orchestration input, also when the webhook API started it with a bare JSON string.

    The SDK decodes the input once more (it expects a JSON text inside a string); a body such as
    ``"/home/site/wwwroot"`` posted to the webhook is not JSON text, so it is taken as it is.
    """
    try:
        return context.get_input()
    except (ValueError, TypeError):  # not JSON text: a bare path string, or a number/array posted as is
        return context._input
