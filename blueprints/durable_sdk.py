"""The private parts of azure-functions-durable 1.x that the orchestrator loop relies on, in one place.

The SDK has no public way to read the children of a ``task_all`` (to wait on the ones still running after one
failed) or the orchestration input as it arrived (when it is not JSON text). tests/app/test_durable_sdk.py pins
these to the installed SDK version, so an upgrade that moves them fails a test instead of a backup.
"""

from __future__ import annotations

from typing import cast

import azure.durable_functions as df
from azure.durable_functions.models.Task import CompoundTask, TaskBase, TaskState

__all__ = ["TaskBase", "children_of", "is_running", "raw_input"]


def children_of(task: TaskBase) -> list[TaskBase]:
    """The sub-tasks of a ``task_all``/``task_any`` task, in the order they were given."""
    if not isinstance(task, CompoundTask):
        raise TypeError(f"{type(task).__name__} is not a compound task")
    return list(task.children)


def is_running(task: TaskBase) -> bool:
    """Whether the task has neither a result nor an error yet."""
    return task.state is TaskState.RUNNING


def raw_input(context: df.DurableOrchestrationContext) -> object:
    """The orchestration input as the host sent it, before the SDK's second JSON decoding."""
    return cast(object, context._input)
