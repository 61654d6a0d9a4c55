"""The extension's status JSON (§13.4) and its `historyEvents` shaping (§13.5)."""

from __future__ import annotations

import json
from typing import Any

from .history import EventType
from .model import Instance, RuntimeStatus

_TASK_DONE = (EventType.TaskCompleted, EventType.TaskFailed)
_SUB_DONE = (EventType.SubOrchestrationInstanceCompleted, EventType.SubOrchestrationInstanceFailed)
_WITH_RESULT = (EventType.TaskCompleted, EventType.SubOrchestrationInstanceCompleted, EventType.ExecutionCompleted)


def parse_stored(text: str | None) -> Any:
    """Stored text → JSON value: null stays null, blank becomes "", non-JSON text becomes a string."""
    if text is None:
        return None
    if not text.strip():
        return ""
    try:
        return json.loads(text)
    except ValueError:
        return text


def status_time(stored: str) -> str:
    """yyyy-MM-ddTHH:mm:ssZ, without a fraction."""
    return stored[:19] + "Z"


def status_json(
    row: Instance, show_input: bool = True, history_events: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The status body, keys in the extension's order; historyEvents only when asked for."""
    body: dict[str, Any] = {
        "name": row.name,
        "instanceId": row.instance_id,
        "runtimeStatus": row.status,
        "input": parse_stored(row.input) if show_input else None,
        "customStatus": parse_stored(row.custom_status),
        "output": parse_stored(row.output),
        "createdTime": status_time(row.created_time),
        "lastUpdatedTime": status_time(row.last_updated_time),
    }
    if history_events is not None and row.status is not RuntimeStatus.PENDING:
        body["historyEvents"] = history_events
    return body


def _rename(event: dict[str, Any]) -> dict[str, Any]:
    shaped = {"EventType": EventType(event["EventType"]).name, "Timestamp": event["Timestamp"]}
    for key, value in event.items():
        if key not in ("EventType", "EventId", "IsPlayed", "Timestamp"):
            shaped[key] = value
    return shaped


def shape_history(events: list[dict[str, Any]], show_input: bool, show_output: bool) -> list[dict[str, Any]]:
    """Rename event types, drop episode markers, merge scheduling into completion rows, filter payloads."""
    scheduled: dict[int, dict[str, Any]] = {}
    merged: set[int] = set()
    for event in events:
        kind = event["EventType"]
        if kind in _TASK_DONE or kind in _SUB_DONE:
            merged.add(event["TaskScheduledId"])
    for event in events:
        if event["EventType"] in (EventType.TaskScheduled, EventType.SubOrchestrationInstanceCreated):
            scheduled[event["EventId"]] = event

    shaped_events: list[dict[str, Any]] = []
    for event in events:
        kind = event["EventType"]
        if kind in (EventType.OrchestratorStarted, EventType.OrchestratorCompleted):
            continue
        if kind in (EventType.TaskScheduled, EventType.SubOrchestrationInstanceCreated):
            if event["EventId"] in merged:
                continue
            row = _rename(event)
            row.pop("Version", None)
        elif kind in _TASK_DONE or kind in _SUB_DONE:
            row = _rename(event)
            source = scheduled.get(row.pop("TaskScheduledId"))
            if source is not None:
                row["ScheduledTime"] = source["Timestamp"]
                row["FunctionName"] = source.get("Name")
                row["Input"] = source.get("Input")
        elif kind == EventType.ExecutionStarted:
            row = _rename(event)
            row["FunctionName"] = row.pop("Name", None)
            for key in ("OrchestrationInstance", "ParentInstance", "Version", "Tags"):
                row.pop(key, None)
        else:
            row = _rename(event)
            if kind == EventType.TimerFired:
                row.pop("TimerId", None)
        if kind in _WITH_RESULT:
            if show_output:
                row["Result"] = parse_stored(row.get("Result"))
            else:
                row.pop("Result", None)
        if not show_input:
            row.pop("Input", None)
        shaped_events.append(row)
    return shaped_events
