"""Build DTFx history events and the orchestrator context JSON the extension sends to the SDK (§4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any


class EventType(IntEnum):
    """DTFx HistoryEventType numbers."""

    ExecutionStarted = 0
    ExecutionCompleted = 1
    ExecutionFailed = 2
    ExecutionTerminated = 3
    TaskScheduled = 4
    TaskCompleted = 5
    TaskFailed = 6
    SubOrchestrationInstanceCreated = 7
    SubOrchestrationInstanceCompleted = 8
    SubOrchestrationInstanceFailed = 9
    TimerCreated = 10
    TimerFired = 11
    OrchestratorStarted = 12
    OrchestratorCompleted = 13
    EventSent = 14
    EventRaised = 15
    ContinueAsNew = 16
    GenericEvent = 17
    HistoryState = 18
    ExecutionSuspended = 19
    ExecutionResumed = 20
    ExecutionRewound = 21


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """.NET round-trip form with 7 fraction digits, e.g. 2024-01-01T00:00:00.2500000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO timestamp (Z or offset, up to 7 fraction digits) to an aware UTC datetime."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    head, plus, tz = value.partition("+") if "T" in value and "+" in value else (value, "", "")
    if "." in head:
        base, frac = head.split(".", 1)
        head = f"{base}.{frac[:6]}"
    parsed = datetime.fromisoformat(head + plus + tz)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _event(event_type: EventType, timestamp: str, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "EventType": int(event_type),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": timestamp,
    }
    event.update(fields)
    return event


def orchestrator_started(timestamp: str) -> dict[str, Any]:
    return _event(EventType.OrchestratorStarted, timestamp)


def orchestrator_completed(timestamp: str) -> dict[str, Any]:
    return _event(EventType.OrchestratorCompleted, timestamp)


def execution_started(
    timestamp: str,
    name: str,
    input_text: str | None,
    instance_id: str,
    execution_id: str,
    parent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """ExecutionStarted with the `Version` key the SDK requires."""
    return _event(
        EventType.ExecutionStarted,
        timestamp,
        Name=name,
        Version="",
        Input=input_text,
        OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
        ParentInstance=parent,
        Tags=None,
        Correlation=None,
        ScheduledStartTime=None,
        Generation=0,
    )


def execution_completed(timestamp: str, status: str, result: str | None) -> dict[str, Any]:
    return _event(EventType.ExecutionCompleted, timestamp, OrchestrationStatus=status, Result=result)


def execution_terminated(timestamp: str, reason: str | None) -> dict[str, Any]:
    return _event(EventType.ExecutionTerminated, timestamp, Input=reason)


def execution_suspended(timestamp: str, reason: str | None) -> dict[str, Any]:
    return _event(EventType.ExecutionSuspended, timestamp, Reason=reason)


def execution_resumed(timestamp: str, reason: str | None) -> dict[str, Any]:
    return _event(EventType.ExecutionResumed, timestamp, Reason=reason)


def task_scheduled(timestamp: str, seq: int, name: str, action_input: str | None) -> dict[str, Any]:
    """TaskScheduled; Input is a JSON array holding the action's input text (§6)."""
    return _event(EventType.TaskScheduled, timestamp, seq, Name=name, Version="", Input=json.dumps([action_input]))


def task_completed(timestamp: str, seq: int, result: str | None) -> dict[str, Any]:
    return _event(EventType.TaskCompleted, timestamp, TaskScheduledId=seq, Result=result)


def task_failed(timestamp: str, seq: int, reason: str, details: str) -> dict[str, Any]:
    return _event(EventType.TaskFailed, timestamp, TaskScheduledId=seq, Reason=reason, Details=details)


def sub_orchestration_created(
    timestamp: str, seq: int, name: str, instance_id: str, input_text: str | None
) -> dict[str, Any]:
    return _event(
        EventType.SubOrchestrationInstanceCreated,
        timestamp,
        seq,
        Name=name,
        Version="",
        InstanceId=instance_id,
        Input=input_text,
    )


def sub_orchestration_completed(timestamp: str, seq: int, result: str | None) -> dict[str, Any]:
    return _event(EventType.SubOrchestrationInstanceCompleted, timestamp, TaskScheduledId=seq, Result=result)


def sub_orchestration_failed(timestamp: str, seq: int, reason: str, details: str) -> dict[str, Any]:
    return _event(
        EventType.SubOrchestrationInstanceFailed, timestamp, TaskScheduledId=seq, Reason=reason, Details=details
    )


def timer_created(timestamp: str, seq: int, fire_at: str) -> dict[str, Any]:
    return _event(EventType.TimerCreated, timestamp, seq, FireAt=fire_at)


def timer_fired(timestamp: str, timer_id: int, fire_at: str) -> dict[str, Any]:
    return _event(EventType.TimerFired, timestamp, TimerId=timer_id, FireAt=fire_at)


def event_raised(timestamp: str, name: str, input_text: str | None) -> dict[str, Any]:
    return _event(EventType.EventRaised, timestamp, Name=name, Input=input_text)


def dotnet_exception_details(message: str) -> str:
    """The serialized .NET exception the extension stores as TaskFailed.Details (§7)."""
    return json.dumps(
        {
            "$type": "System.Exception, System.Private.CoreLib",
            "ClassName": "System.Exception",
            "Message": message,
        },
        separators=(",", ":"),
    )


def context_json(
    history_json: list[str],
    input_value: Any,
    instance_id: str,
    is_replaying: bool,
    parent_instance_id: str | None,
) -> str:
    """The orchestrationTrigger payload (§4.1), assembled from pre-serialized events to avoid re-encoding."""
    head = '{"history": [' + ", ".join(history_json) + "], "
    tail = {
        "input": input_value,
        "instanceId": instance_id,
        "isReplaying": is_replaying,
        "parentInstanceId": parent_instance_id,
        "upperSchemaVersion": 1,
        "upperSchemaVersionNew": 2,
        "longRunningTimerIntervalDuration": "3.00:00:00",
        "maximumShortTimerDuration": "6.00:00:00",
        "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
    }
    return head + json.dumps(tail)[1:]


def decode_stored_input(text: str | None) -> Any:
    """Context `input` = ExecutionStarted.Input parsed once (§6); non-JSON text passes through."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
