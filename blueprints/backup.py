"""The backup orchestration (fan-out/fan-in) and its two activities.

The orchestrator is deterministic: it only parses its input, schedules activities and adds up
their results. All file-system and storage work happens in the activities, which are idempotent.
"""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from site_backup.plan import groups, progress
from site_backup.request import parse_backup_request
from site_backup.service import copy_file_to_blob, list_backup_files

from .names import BACKUP_ORCHESTRATOR, COPY_FILE_TO_BLOB, GET_FILE_LIST

bp = df.Blueprint()

# Transient failures (storage throttling, a recycled worker) are retried by the host:
# up to 3 attempts, 5 s apart.
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)


@bp.function_name(BACKUP_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context")
def backup_site_content(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    """List the files, copy them all in parallel, and return the total number of bytes."""
    request = parse_backup_request(_input(context))
    context.set_custom_status(progress("listing"))
    files: list[str] = yield context.call_activity_with_retry(GET_FILE_LIST, RETRY, request.listing_input())
    context.set_custom_status(progress("copying", len(files)))
    # All copies are scheduled by the first task_any; each group is one task_all.
    pending = [
        context.task_all([context.call_activity_with_retry(COPY_FILE_TO_BLOB, RETRY, path) for path in group])
        for group in groups(files)
    ]
    total_bytes = files_done = 0
    while pending:
        finished = yield context.task_any(pending)
        pending.remove(finished)
        if isinstance(finished.result, Exception):
            raise finished.result  # a copy failed on every attempt
        total_bytes += sum(finished.result)
        files_done += len(finished.result)
        context.set_custom_status(progress("copying", len(files), files_done, total_bytes))
    context.set_custom_status(progress("completed", len(files), files_done, total_bytes))
    return total_bytes


@bp.function_name(GET_FILE_LIST)
@bp.activity_trigger(input_name="rootDirectory")
def get_file_list(rootDirectory: str | dict[str, Any]) -> list[str]:
    """Every regular file under the root, sorted; honours include/exclude patterns."""
    return list_backup_files(rootDirectory)


@bp.function_name(COPY_FILE_TO_BLOB)
@bp.activity_trigger(input_name="filePath")
def copy_file_to_blob_activity(filePath: str) -> int:
    """Back up one file; returns its size in bytes (0 when it vanished after listing)."""
    return copy_file_to_blob(filePath)


def _input(context: df.DurableOrchestrationContext) -> object:
    """The orchestration input, also when the webhook API started it with a bare JSON string.

    The SDK decodes the input once more (it expects a JSON text inside a string); a body such as
    ``"/home/site/wwwroot"`` posted to the webhook is not JSON text, so it is taken as it is.
    """
    try:
        return context.get_input()
    except (ValueError, TypeError):  # not JSON text: a bare path string, or a number/array posted as is
        return context._input
