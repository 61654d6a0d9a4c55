"""The shape of an instance: its hub row, the cached runtime of an active one, and how an episode changes them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import history as h
from .episode import EpisodeOutcome, ExecutionState
from .store import MessageRow

LIVE_STATUSES = ("Running", "Suspended", "Pending")


@dataclass
class Runtime:
    """An active instance kept in memory, so an episode neither re-reads nor re-parses its history."""

    row: dict[str, Any]
    history_json: list[str]
    state: ExecutionState
    last_time: Any = None
    held: list[MessageRow] = field(default_factory=list)


def iso_time(moment: Any) -> str:
    """The instance table's timestamp format."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_instance_row(
    instance_id: str, name: str, execution_id: str, input_text: str | None, now: Any
) -> dict[str, Any]:
    """A Pending instance row, for client starts and sub-orchestration starts alike."""
    stamp = iso_time(now)
    return {
        "instance_id": instance_id,
        "name": name,
        "execution_id": execution_id,
        "status": "Pending",
        "input": input_text,
        "output": None,
        "custom_status": None,
        "created_time": stamp,
        "last_updated_time": stamp,
        "parent_instance_id": None,
        "parent_execution_id": None,
        "parent_task_id": None,
        "exec_state": None,
        "suspended": 0,
    }


def parent_ref(row: dict[str, Any]) -> dict[str, Any] | None:
    """The ParentInstance of a new execution's ExecutionStarted, so continue-as-new keeps its parent."""
    if not row.get("parent_instance_id"):
        return None
    return {
        "Name": None,
        "Version": "",
        "OrchestrationInstance": {
            "InstanceId": row["parent_instance_id"],
            "ExecutionId": row.get("parent_execution_id"),
        },
        "TaskScheduleId": row.get("parent_task_id"),
    }


def context_json(runtime: Runtime, new_texts: list[str]) -> str:
    """The §4 context the SDK replays: the stored history plus this episode's new events."""
    row = runtime.row
    first = json.loads(runtime.history_json[1] if runtime.history_json else new_texts[1])
    return h.context_json(
        runtime.history_json + new_texts,
        h.decode_stored_input(first.get("Input")),
        row["instance_id"],
        bool(runtime.history_json),
        row.get("parent_instance_id"),
    )


def apply_control(row: dict[str, Any], suspended: bool, started: bool, now: Any) -> None:
    """Record suspend/resume on a live row; a resumed instance is Running once it has any history."""
    row["suspended"] = int(suspended)
    if row["status"] in LIVE_STATUSES:
        if suspended:
            row["status"] = "Suspended"
        elif row["status"] == "Suspended":
            row["status"] = "Running" if started else "Pending"
    row["last_updated_time"] = iso_time(now)


def apply_outcome(row: dict[str, Any], outcome: EpisodeOutcome, state_json: str, now: Any, suspended: bool) -> None:
    """Record an orchestrator episode's result; a finished instance is never left marked suspended."""
    terminal = outcome.status in ("Completed", "Failed")
    row["last_updated_time"] = iso_time(now)
    row["suspended"] = int(suspended)
    row["status"] = "Suspended" if suspended and not terminal else outcome.status
    if outcome.custom_status_set:
        row["custom_status"] = outcome.custom_status
    if terminal:
        row["output"] = outcome.output
        row["suspended"] = 0
    row["exec_state"] = state_json
