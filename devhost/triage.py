"""Which of an episode's messages run the orchestrator, which only change suspension, and which are stale.

No I/O: it looks at the instance's cached runtime and the messages, and leaves in `runtime.held` what waits.
"""

from __future__ import annotations

from dataclasses import dataclass

from .history import EventType
from .instances import Runtime
from .model import MessageRow


@dataclass
class Triage:
    """An episode's messages sorted by what they do: run the orchestrator, change suspension, or nothing."""

    deliver: list[MessageRow]
    control: list[MessageRow]
    stale: list[int]
    suspended: bool


def triage(runtime: Runtime, current: list[MessageRow], stale: list[int]) -> Triage:
    """Apply suspend/resume in arrival order: a suspended instance holds its messages until resumed.

    Messages held by an earlier episode come first and are looked at again, so they are delivered as soon as
    the instance is no longer suspended (or, before it started, once its ExecutionStarted is delivered).
    """
    result = Triage(deliver=[], control=[], stale=list(stale), suspended=runtime.row.suspended)
    execution_id = runtime.row.execution_id
    waiting: list[MessageRow] = []
    for message in runtime.held:
        if message.execution_id in (None, execution_id):
            waiting.append(message)
        else:
            result.stale.append(message.id)
    seen = {m.id for m in waiting}
    on_hold: list[MessageRow] = []
    for message in waiting + [m for m in current if m.id not in seen]:
        kind = message.event["EventType"]
        if kind == EventType.ExecutionSuspended:
            if not result.suspended:
                result.suspended = True
                result.control.append(message)
            else:
                result.stale.append(message.id)
        elif kind == EventType.ExecutionResumed:
            if result.suspended:
                result.suspended = False
                result.control.append(message)
                result.deliver.extend(on_hold)
                on_hold = []
            else:
                result.stale.append(message.id)
        elif result.suspended:
            on_hold.append(message)
        else:
            result.deliver.append(message)
    runtime.held = on_hold
    _order_start(runtime, result)
    return result


def _order_start(runtime: Runtime, result: Triage) -> None:
    """ExecutionStarted must come first in a new execution and never again after it.

    An instance that has not started yet and is suspended does not start: its ExecutionStarted is held with
    the other messages until it is resumed, so the orchestrator is never called while it is suspended.
    """
    if not runtime.history_json:
        starts = [m for m in result.deliver if m.event["EventType"] == EventType.ExecutionStarted]
        if not starts or result.suspended:
            # Nothing can run before ExecutionStarted; keep the messages (earliest first) for later.
            runtime.held = result.deliver + runtime.held
            result.deliver = []
        else:
            result.deliver = starts[:1] + [m for m in result.deliver if m is not starts[0]]
    else:
        for m in result.deliver:
            if m.event["EventType"] == EventType.ExecutionStarted:
                result.stale.append(m.id)
        result.deliver = [m for m in result.deliver if m.event["EventType"] != EventType.ExecutionStarted]
