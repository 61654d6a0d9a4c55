"""What the task hub holds: instances with their runtime status, orchestrator messages and activity work items.

These are plain values; the store persists them and every other part passes them around.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from enum import StrEnum
from typing import Any


class RuntimeStatus(StrEnum):
    """An instance's `runtimeStatus`, spelled as the extension spells it (§13.4)."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    CANCELED = "Canceled"
    TERMINATED = "Terminated"
    SUSPENDED = "Suspended"

    @property
    def is_live(self) -> bool:
        """Still running or able to run: a new start with its id is refused."""
        return self in LIVE

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def ends_execution(self) -> bool:
        """The orchestrator itself finished the execution (it returned or raised)."""
        return self in (RuntimeStatus.COMPLETED, RuntimeStatus.FAILED)


LIVE = frozenset(
    {RuntimeStatus.PENDING, RuntimeStatus.RUNNING, RuntimeStatus.CONTINUED_AS_NEW, RuntimeStatus.SUSPENDED}
)
TERMINAL = frozenset({RuntimeStatus.COMPLETED, RuntimeStatus.FAILED, RuntimeStatus.TERMINATED, RuntimeStatus.CANCELED})


@dataclass
class Instance:
    """One orchestration instance: the `instances` row (its current execution, status, payloads, parent)."""

    instance_id: str
    name: str
    execution_id: str
    status: RuntimeStatus
    input: str | None
    output: str | None
    custom_status: str | None
    created_time: str
    last_updated_time: str
    parent_instance_id: str | None = None
    parent_execution_id: str | None = None
    parent_task_id: int | None = None
    exec_state: str | None = None  # the host's ExecutionState of this execution, as JSON
    suspended: bool = False

    @classmethod
    def pending(cls, instance_id: str, name: str, execution_id: str, input_text: str | None, stamp: str) -> Instance:
        """A new instance before its first episode, for client starts and sub-orchestration starts alike."""
        return cls(instance_id, name, execution_id, RuntimeStatus.PENDING, input_text, None, None, stamp, stamp)

    @classmethod
    def from_row(cls, values: Sequence[Any]) -> Instance:
        instance = cls(*values)
        instance.status = RuntimeStatus(instance.status)
        instance.suspended = bool(instance.suspended)
        return instance

    def to_row(self) -> tuple[Any, ...]:
        return astuple(self)


INSTANCE_COLUMNS = tuple(f.name for f in fields(Instance))


@dataclass
class MessageRow:
    """An orchestrator message: a history event waiting for its instance's next episode."""

    id: int
    instance_id: str
    execution_id: str | None
    visible_at: float
    event: dict[str, Any]


@dataclass
class ActivityRow:
    """An activity work item; deleted when its completion message is committed."""

    id: int
    instance_id: str
    execution_id: str
    seq: int
    name: str
    input: str | None
