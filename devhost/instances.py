"""How an instance changes: a new one, the cached runtime of an active one, and what an episode does to its row."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import history as h
from .decisions import EpisodeOutcome, ExecutionState
from .model import Instance, MessageRow, RuntimeStatus


@dataclass
class Runtime:
    """An active instance kept in memory, so an episode neither re-reads nor re-parses its history."""

    row: Instance
    history_json: list[str]
    state: ExecutionState
    last_time: datetime | None = None
    held: list[MessageRow] = field(default_factory=list)


def iso_time(moment: datetime) -> str:
    """The instance table's timestamp format."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_instance(instance_id: str, name: str, execution_id: str, input_text: str | None, now: datetime) -> Instance:
    """A Pending instance, for client starts and sub-orchestration starts alike."""
    return Instance.pending(instance_id, name, execution_id, input_text, iso_time(now))


def episode_time(runtime: Runtime) -> datetime:
    """The wall clock, kept non-decreasing per instance so history timestamps never go back."""
    now = h.utcnow()
    if runtime.last_time is not None and now <= runtime.last_time:
        now = runtime.last_time
    runtime.last_time = now
    return now


def parent_ref(row: Instance) -> dict[str, Any] | None:
    """The ParentInstance of a new execution's ExecutionStarted, so continue-as-new keeps its parent."""
    if not row.parent_instance_id:
        return None
    return {
        "Name": None,
        "Version": "",
        "OrchestrationInstance": {"InstanceId": row.parent_instance_id, "ExecutionId": row.parent_execution_id},
        "TaskScheduleId": row.parent_task_id,
    }


def parent_notification(
    row: Instance, status: RuntimeStatus, output: str | None, stamp: str
) -> tuple[str, str | None, dict[str, Any]] | None:
    """The SubOrchestrationInstanceCompleted/Failed event for the parent, if there is one, with its address."""
    if not row.parent_instance_id:
        return None
    if row.parent_task_id is None:
        raise ValueError(f"sub-orchestration {row.instance_id} has no TaskScheduleId of its parent")
    seq = int(row.parent_task_id)
    if status is RuntimeStatus.COMPLETED:
        event = h.sub_orchestration_completed(stamp, seq, output)
    else:
        text = output or status
        event = h.sub_orchestration_failed(stamp, seq, text, h.dotnet_exception_details(text))
    return row.parent_instance_id, row.parent_execution_id, event


def context_json(runtime: Runtime, new_texts: list[str]) -> str:
    """The §4 context the SDK replays: the stored history plus this episode's new events."""
    row = runtime.row
    first = json.loads(runtime.history_json[1] if runtime.history_json else new_texts[1])
    return h.context_json(
        runtime.history_json + new_texts,
        h.decode_stored_input(first.get("Input")),
        row.instance_id,
        bool(runtime.history_json),
        row.parent_instance_id,
    )


def apply_control(row: Instance, suspended: bool, started: bool, now: datetime) -> None:
    """Record suspend/resume on a live row; a resumed instance is Running once it has any history."""
    row.suspended = suspended
    if row.status.is_live:
        if suspended:
            row.status = RuntimeStatus.SUSPENDED
        elif row.status is RuntimeStatus.SUSPENDED:
            row.status = RuntimeStatus.RUNNING if started else RuntimeStatus.PENDING
    row.last_updated_time = iso_time(now)


def apply_outcome(row: Instance, outcome: EpisodeOutcome, state_json: str, now: datetime, suspended: bool) -> None:
    """Record an orchestrator episode's result; a finished instance is never left marked suspended."""
    terminal = outcome.status.ends_execution
    row.last_updated_time = iso_time(now)
    row.suspended = suspended and not terminal
    row.status = RuntimeStatus.SUSPENDED if suspended and not terminal else outcome.status
    if outcome.custom_status_set:
        row.custom_status = outcome.custom_status
    if terminal:
        row.output = outcome.output
    row.exec_state = state_json
