"""Build orchestrator context JSON the way the Durable extension does (protocol reference §4)."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

START = datetime(2024, 1, 1, tzinfo=UTC)


class History:
    """An append-only DTFx history with deterministic timestamps, framed in episodes."""

    def __init__(self, name: str, orchestration_input: Any, instance_id: str = "abc123") -> None:
        self.name = name
        self.instance_id = instance_id
        self.input_text = None if orchestration_input is None else json.dumps(orchestration_input)
        self.events: list[dict[str, Any]] = []
        self._clock = START
        self.episode()
        self._add(
            0,
            Name=name,
            Version="",
            Input=self.input_text,
            ParentInstance=None,
            Tags=None,
            Correlation=None,
            ScheduledStartTime=None,
            Generation=0,
            OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": "e" * 32},
        )

    def _tick(self) -> str:
        self._clock += timedelta(milliseconds=250)
        return self._clock.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"

    def _add(self, event_type: int, event_id: int = -1, **fields: Any) -> "History":
        self.events.append(
            {"EventType": event_type, "EventId": event_id, "IsPlayed": False, "Timestamp": self._tick(), **fields}
        )
        return self

    def now(self) -> str:
        return self._clock.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # Episode framing
    def episode(self) -> "History":
        """Close the previous episode (if any) and open the next one."""
        if self.events:
            self._add(13)
        return self._add(12)

    # Decisions
    def task_scheduled(self, seq: int, name: str, action_input: str) -> "History":
        return self._add(4, seq, Name=name, Version="", Input=json.dumps([action_input]))

    def timer_created(self, seq: int, fire_at: str) -> "History":
        return self._add(10, seq, FireAt=fire_at)

    # Completions
    def task_completed(self, seq: int, result: Any) -> "History":
        return self._add(5, TaskScheduledId=seq, Result=json.dumps(result))

    def task_failed(self, seq: int, name: str, message: str) -> "History":
        reason = f"Activity function '{name}' failed: {message}"
        details = json.dumps(
            {"$type": "System.Exception, System.Private.CoreLib", "ClassName": "System.Exception", "Message": message}
        )
        return self._add(6, TaskScheduledId=seq, Reason=reason, Details=details)

    def timer_fired(self, seq: int, fire_at: str) -> "History":
        return self._add(11, TimerId=seq, FireAt=fire_at)

    def context(self) -> dict[str, Any]:
        """The context JSON the extension sends for the current (last) episode."""
        return {
            "history": self.events,
            "input": self.input_text,
            "instanceId": self.instance_id,
            "isReplaying": False,
            "parentInstanceId": None,
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
            "longRunningTimerIntervalDuration": "3.00:00:00",
            "maximumShortTimerDuration": "6.00:00:00",
            "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
        }


def atoms(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Depth-first atomic actions of a V2/V3 action list (WhenAny/WhenAll are containers)."""
    out: list[dict[str, Any]] = []
    for action in actions:
        if action["actionType"] in (11, 12):
            out.extend(atoms(action["compoundActions"]))
        else:
            out.append(action)
    return out
