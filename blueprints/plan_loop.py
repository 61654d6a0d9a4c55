"""The one orchestrator loop every plan runs in: schedule what it asks for, wait for any, hand back results.

Deterministic: the plan is pure, and everything else here is the SDK's own task machinery. A group of calls is
fanned out with ``task_all``; every yield waits on all outstanding tasks with ``task_any``, so every task is
always attached to the task being waited on. A plan that spent its budget continues as new with its state.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import azure.durable_functions as df

from site_backup.plan import Call, Step

from .durable_sdk import TaskBase, children_of, is_running, raw_input

# Transient failures (storage throttling, a recycled worker) are retried by the host:
# up to 3 attempts, 5 s apart.
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=5_000, max_number_of_attempts=3)


_Output = TypeVar("_Output", covariant=True)


class Plan(Protocol[_Output]):
    def next_groups(self) -> list[list[Call]]: ...
    def record(self, call: Call, result: object = None, error: str | None = None) -> None: ...
    def status(self) -> dict[str, Any]: ...
    def continues(self) -> bool: ...
    def continuation(self) -> dict[str, Any]: ...
    def output(self) -> _Output: ...


def run_plan(
    context: df.DurableOrchestrationContext, plan: Plan[_Output], activities: Mapping[StrEnum, str]
) -> Generator[Any, Any, _Output | None]:
    """Drive ``plan`` to its end: its output, or None after continuing as new."""
    context.set_custom_status(plan.status())
    waiting: dict[TaskBase, list[Call]] = {}
    while True:
        for group in plan.next_groups():
            waiting[_schedule(context, group, activities)] = group
        if not waiting:
            break
        finished = yield context.task_any(list(waiting))
        for call, task in _settled(finished, waiting.pop(finished), waiting):
            if isinstance(task.result, Exception):
                plan.record(call, error=reason(task.result, activities[call.step]))
            else:
                plan.record(call, task.result)
        context.set_custom_status(plan.status())
    if plan.continues():
        context.continue_as_new(plan.continuation())
        return None
    return plan.output()


def _schedule(
    context: df.DurableOrchestrationContext, group: list[Call], activities: Mapping[StrEnum, str]
) -> TaskBase:
    if group[0].step is Step.WAIT:  # a durable timer: the plan waits for storage to come back
        return context.create_timer(context.current_utc_datetime + timedelta(seconds=group[0].input))
    tasks = [context.call_activity_with_retry(activities[call.step], RETRY, call.input) for call in group]
    return tasks[0] if len(tasks) == 1 else context.task_all(tasks)


def _settled(finished: TaskBase, calls: list[Call], waiting: dict[TaskBase, list[Call]]) -> Iterator[tuple[Call, Any]]:
    """The calls of a finished task with their tasks. A task_all fails on its first failed child: the
    children still running then wait on their own."""
    if len(calls) == 1:
        yield calls[0], finished
        return
    for call, child in zip(calls, children_of(finished), strict=True):
        if is_running(child):
            waiting[child] = [call]
        else:
            yield call, child


def reason(exc: Exception, activity: str) -> str:
    """An activity's error without the host's prefix and serialized .NET exception details."""
    return str(exc).split(" \n ")[0].removeprefix(f"Activity function '{activity}' failed: ")


def orchestration_input(context: df.DurableOrchestrationContext) -> object:
    """The orchestration input, also when the webhook API started it with a bare JSON string.

    The SDK decodes the input once more (it expects a JSON text inside a string); a body such as
    ``"/home/site/wwwroot"`` posted to the webhook is not JSON text, so it is taken as it is.
    """
    try:
        return context.get_input()
    except (ValueError, TypeError):  # not JSON text: a bare path string, or a number/array posted as is
        return raw_input(context)
