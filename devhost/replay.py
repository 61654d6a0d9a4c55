"""One episode that calls the orchestrator: its new events, the SDK's replay, and what the episode commits.

It returns a plan (`EpisodeCommit`: the write, and the work to start once it is committed) and calls nothing
back: the orchestration dispatcher commits it and starts the work, so nothing the episode schedules (activities,
timers, child starts, parent notifications) starts before its transaction is committed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from . import history as h
from .decisions import EpisodeInfo, EpisodeOutcome, ExecutionState, failed_output, order_episode, plan_episode
from .errors import child_exists, function_not_found
from .hub import Hub
from .indexing import FunctionInfo
from .instances import Runtime, apply_outcome, context_json, episode_time, new_instance, parent_notification, parent_ref
from .invoke import call_orchestrator
from .model import ActivityRow, Instance, MessageRow, RuntimeStatus
from .store import EpisodeWrite
from .triage import Triage

ChildStarts = list[tuple[Instance, MessageRow]]


@dataclass
class EpisodeCommit:
    """What an episode commits in one transaction, and what starts only once it is committed."""

    write: EpisodeWrite
    outcome: EpisodeOutcome
    state_json: str  # the execution state after the episode
    appended: list[str]  # the history events it appends
    delivered: int  # messages delivered to the orchestrator
    activities: list[ActivityRow]
    children: ChildStarts
    invocation: str  # the id its "Executed" log line shows


class OrchestratorEpisode:
    """Holds one episode's moment, new events and decisions from replay to the plan of its commit."""

    def __init__(
        self, hub: Hub, runtime: Runtime, triage: Triage, activities: set[str], orchestrators: set[str]
    ) -> None:
        self.hub = hub
        self.activities = activities  # the names the app defines, for the decisions' "function not found"
        self.orchestrators = orchestrators
        self.runtime = runtime
        self.triage = triage
        self.row = replace(runtime.row)
        self.iid = self.row.instance_id
        self.now = episode_time(runtime)
        self.stamp = h.format_timestamp(self.now)
        self.info = hub.index.orchestrators.get(self.row.name)
        self.deliver, self.new_texts = self._new_events()

    def _new_events(self) -> tuple[list[MessageRow], list[str]]:
        """The delivered messages in the order the SDK numbers them, and the episode's new history events."""
        # Retry-id reserving events first, so the SDK numbers retries before new atoms, as plan_episode does.
        control = [m.event for m in self.triage.control]
        if self.runtime.history_json:
            deliver = order_episode(self.runtime.state, self.triage.deliver, lambda m: m.event)
            delivered = [m.event for m in deliver]
            new_events = [h.orchestrator_started(self.stamp), *control, *delivered]
        else:
            # Episode 1 is [OrchestratorStarted, ExecutionStarted, ...] (§4.3); triage put the start first.
            start, *rest = self.triage.deliver
            deliver = [start, *order_episode(self.runtime.state, rest, lambda m: m.event)]
            delivered = [m.event for m in deliver]
            new_events = [h.orchestrator_started(self.stamp), delivered[0], *control, *delivered[1:]]
        return deliver, [json.dumps(e) for e in new_events]

    def unknown_orchestrator(self) -> tuple[EpisodeOutcome, str]:
        """The outcome when the instance's orchestrator is not indexed: the instance fails."""
        name = self.row.name
        output = failed_output(name, function_not_found(name, "orchestrator"))
        return EpisodeOutcome(status=RuntimeStatus.FAILED, output=output), self.runtime.state.to_json()

    def replay(self, info: FunctionInfo) -> tuple[EpisodeOutcome, str]:
        """Runs in an orchestrator thread: build the context, call the SDK, plan the decisions."""
        stats = self.hub.stats
        episode = EpisodeInfo(
            orchestrator_name=self.row.name,
            instance_id=self.iid,
            execution_id=self.row.execution_id,
            parent_instance_id=self.row.parent_instance_id,
            now=self.now,
            timestamp=self.stamp,
            activities=self.activities,
            orchestrators=self.orchestrators,
            max_actions=self.hub.settings.max_orchestration_actions,
        )
        t0 = time.perf_counter()
        context = context_json(self.runtime, self.new_texts)
        t1 = time.perf_counter()
        cpu = time.thread_time()
        result = call_orchestrator(info, context)
        stats.replay_cpu_seconds += time.thread_time() - cpu
        t2 = time.perf_counter()
        state = ExecutionState.from_json(self.runtime.state.to_json())
        delivered = [m.event for m in self.deliver]
        outcome = plan_episode(state, delivered, result.kind, result.state, result.message, episode)
        t3 = time.perf_counter()
        stats.context_build_seconds += t1 - t0
        stats.replay_seconds += t2 - t1
        stats.plan_seconds += t3 - t2
        return outcome, state.to_json()

    # ---- what the episode commits ---------------------------------------------------------------------

    def plan_commit(self, outcome: EpisodeOutcome, state_json: str) -> EpisodeCommit:
        """Everything the episode commits: history, row, consumed messages and the work it schedules."""
        terminal = outcome.status.ends_execution
        tail: list[dict[str, Any]] = []
        if terminal:
            tail.append(h.execution_completed(self.stamp, outcome.status, outcome.output))
        tail.append(h.orchestrator_completed(self.stamp))
        appended = self.new_texts + [json.dumps(e) for e in outcome.decisions + tail]
        row = self.row
        apply_outcome(row, outcome, state_json, self.now, self.triage.suspended)
        consumed = [m.id for m in self.deliver + self.triage.control] + self.triage.stale
        activities = [self.hub.new_activity(self.iid, row.execution_id, a) for a in outcome.activities]
        timers = [
            self.hub.new_message(
                self.iid,
                row.execution_id,
                h.timer_fired(t.fire_at, t.seq, t.fire_at),
                h.parse_timestamp(t.fire_at).timestamp(),
            )
            for t in outcome.timers
        ]
        children = self._child_starts(outcome)
        write = EpisodeWrite(
            instance_id=self.iid,
            row=row,
            append_events=list(enumerate(appended, len(self.runtime.history_json))),
            consumed_message_ids=consumed,
            activities=activities,
            messages=timers,
            children=children,
            drop_outstanding=terminal,
            reject_child=self._child_rejected(row.execution_id),
        )
        if terminal:
            notification = parent_notification(row, outcome.status, outcome.output, self.stamp)
            write.messages = [] if notification is None else [self.hub.new_message(*notification)]
        if outcome.status is RuntimeStatus.CONTINUED_AS_NEW:
            self._continue_as_new(write, outcome)
        return EpisodeCommit(
            write, outcome, state_json, appended, len(self.deliver), activities, children, str(uuid.uuid4())
        )

    def _child_starts(self, outcome: EpisodeOutcome) -> ChildStarts:
        """A Pending row and an ExecutionStarted message per new sub-orchestration."""
        row = self.row
        children: ChildStarts = []
        for child in outcome.children:
            child_exec = uuid.uuid4().hex
            parent = {
                "Name": row.name,
                "Version": "",
                "OrchestrationInstance": {"InstanceId": self.iid, "ExecutionId": row.execution_id},
                "TaskScheduleId": child.seq,
            }
            child_row = new_instance(child.instance_id, child.name, child_exec, child.input_text, self.now)
            child_row.parent_instance_id = self.iid
            child_row.parent_execution_id = row.execution_id
            child_row.parent_task_id = child.seq
            start_event = h.execution_started(
                self.stamp, child.name, child.input_text, child.instance_id, child_exec, parent
            )
            children.append((child_row, self.hub.new_message(child.instance_id, child_exec, start_event)))
        return children

    def _continue_as_new(self, write: EpisodeWrite, outcome: EpisodeOutcome) -> None:
        """Replace the execution: empty history, new execution id, and its ExecutionStarted as the only message."""
        row = self.row
        new_exec = uuid.uuid4().hex
        # Only the old execution's work goes: the messages this episode consumed (delivered events the
        # orchestrator did not wait for are dropped, preserveUnprocessedEvents: false) and what is pinned to the
        # old execution (activity results, timers). Unpinned messages that arrived meanwhile reach the new one.
        write.drop_execution_id = row.execution_id
        write.reset_history = True
        write.append_events = []
        row.execution_id = new_exec
        row.input = outcome.continue_input
        row.exec_state = None
        row.suspended = False
        row.status = RuntimeStatus.CONTINUED_AS_NEW
        start_event = h.execution_started(
            self.stamp, row.name, outcome.continue_input, self.iid, new_exec, parent_ref(row)
        )
        write.messages = [self.hub.new_message(self.iid, new_exec, start_event)]

    def _child_rejected(self, execution_id: str) -> Callable[[MessageRow], MessageRow]:
        """A child id that belongs to a live instance fails that child call, in the episode's own transaction."""

        def failure_message(child_start: MessageRow) -> MessageRow:
            seq = int(child_start.event["ParentInstance"]["TaskScheduleId"])
            text = child_exists(child_start.instance_id)
            failure = h.sub_orchestration_failed(self.stamp, seq, text, h.dotnet_exception_details(text))
            return self.hub.new_message(self.iid, execution_id, failure)

        return failure_message
