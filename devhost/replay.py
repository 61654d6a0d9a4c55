"""One episode that calls the orchestrator: replay on an orchestrator thread, one commit, then the new work.

Nothing the episode schedules (activities, timers, child starts, parent notifications) starts before its
transaction is committed, so a crash at any point leaves the hub consistent.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import history as h
from . import logs
from .episode import EpisodeInfo, EpisodeOutcome, ExecutionState, failed_output, order_episode, plan_episode
from .indexing import FunctionInfo
from .instances import Runtime, apply_outcome, context_json, new_instance_row, parent_ref
from .invoke import call_orchestrator
from .store import ActivityRow, EpisodeWrite, MessageRow

if TYPE_CHECKING:
    from .orchestrations import Orchestrations, Triage

ChildStarts = list[tuple[dict[str, Any], MessageRow]]


class OrchestratorEpisode:
    """Holds one episode's moment, new events and decisions while they go from replay to commit to dispatch."""

    def __init__(self, orchestrations: Orchestrations, runtime: Runtime, triage: Triage) -> None:
        self.wall = time.perf_counter()
        self.orchestrations = orchestrations
        self.engine = orchestrations.engine
        self.runtime = runtime
        self.triage = triage
        self.row = dict(runtime.row)
        self.iid: str = self.row["instance_id"]
        self.now = orchestrations.episode_time(runtime)
        self.stamp = h.format_timestamp(self.now)

    async def run(self) -> None:
        """Replay with the delivered events, commit the decisions in one transaction, then start the new work."""
        # Retry-id reserving events first, so the SDK numbers retries before new atoms, as plan_episode does.
        control = [m.event for m in self.triage.control]
        if self.runtime.history_json:
            deliver = order_episode(self.runtime.state, self.triage.deliver, lambda m: m.event)
            delivered = [m.event for m in deliver]
            new_events = [h.orchestrator_started(self.stamp), *control, *delivered]
        else:
            # Episode 1 is [OrchestratorStarted, ExecutionStarted, ...] (§4.3); _order_start put the start first.
            start, *rest = self.triage.deliver
            deliver = [start, *order_episode(self.runtime.state, rest, lambda m: m.event)]
            delivered = [m.event for m in deliver]
            new_events = [h.orchestrator_started(self.stamp), delivered[0], *control, *delivered[1:]]
        new_texts = [json.dumps(e) for e in new_events]
        invocation = str(uuid.uuid4())
        outcome, state_json = await self._decide(new_texts, delivered)
        for warning in outcome.warnings:
            logs.warn(f"instance {self.iid}: {warning}")

        terminal = outcome.status in ("Completed", "Failed")
        tail: list[dict[str, Any]] = []
        if terminal:
            tail.append(h.execution_completed(self.stamp, outcome.status, outcome.output))
        tail.append(h.orchestrator_completed(self.stamp))
        appended = new_texts + [json.dumps(e) for e in outcome.decisions + tail]
        apply_outcome(self.row, outcome, state_json, self.now, self.triage.suspended)
        consumed = [m.id for m in deliver + self.triage.control] + self.triage.stale
        write, activities, children = self._write(outcome, appended, consumed)

        old_execution = self.runtime.row["execution_id"]
        rejected = await self.orchestrations.commit(self.runtime, write)
        if rejected is None:
            return
        stats = self.engine.stats
        stats.episodes += 1
        stats.events_delivered += len(deliver)
        stats.payload(outcome.largest_payload)
        stats.largest_history_events = max(stats.largest_history_events, len(self.runtime.history_json) + len(appended))
        stats.largest_action_count = max(stats.largest_action_count, ExecutionState.from_json(state_json).atom_count)
        self._remember(outcome, state_json, appended, old_execution)
        self._start_new_work(write, activities, children, rejected)
        self._finish_timing(outcome, invocation)

    async def _decide(self, new_texts: list[str], delivered: list[dict[str, Any]]) -> tuple[EpisodeOutcome, str]:
        """The episode's outcome and the execution state after it; an unknown orchestrator fails the instance."""
        row = self.row
        info = self.engine.index.orchestrators.get(row["name"])
        if info is None:
            outcome = EpisodeOutcome(
                status="Failed",
                output=failed_output(
                    row["name"],
                    f"The function '{row['name']}' doesn't exist, is disabled, or is not an orchestrator function.",
                ),
            )
            return outcome, self.runtime.state.to_json()
        episode = EpisodeInfo(
            orchestrator_name=row["name"],
            instance_id=self.iid,
            execution_id=row["execution_id"],
            parent_instance_id=row.get("parent_instance_id"),
            now=self.now,
            timestamp=self.stamp,
            activities=self.orchestrations.activity_names,
            orchestrators=self.orchestrations.orchestrator_names,
            max_actions=self.engine.settings.max_orchestration_actions,
        )
        assert self.engine.loop is not None
        return await self.engine.loop.run_in_executor(
            self.orchestrations.pool, self._replay, info, new_texts, delivered, episode
        )

    def _replay(
        self, info: FunctionInfo, new_texts: list[str], delivered: list[dict[str, Any]], episode: EpisodeInfo
    ) -> tuple[EpisodeOutcome, str]:
        """Runs in an orchestrator thread: build the context, call the SDK, plan the decisions."""
        stats = self.engine.stats
        t0 = time.perf_counter()
        context = context_json(self.runtime, new_texts)
        t1 = time.perf_counter()
        cpu = time.thread_time()
        result = call_orchestrator(info, context)
        stats.replay_cpu_seconds += time.thread_time() - cpu
        t2 = time.perf_counter()
        state = ExecutionState.from_json(self.runtime.state.to_json())
        outcome = plan_episode(state, delivered, result.kind, result.state, result.message, episode)
        t3 = time.perf_counter()
        stats.context_build_seconds += t1 - t0
        stats.replay_seconds += t2 - t1
        stats.plan_seconds += t3 - t2
        return outcome, state.to_json()

    # ---- what the episode commits ---------------------------------------------------------------------

    def _write(
        self, outcome: EpisodeOutcome, appended: list[str], consumed: list[int]
    ) -> tuple[EpisodeWrite, list[ActivityRow], ChildStarts]:
        """Everything the episode commits: history, row, consumed messages and the work it schedules."""
        row = self.row
        terminal = outcome.status in ("Completed", "Failed")
        activities = [self.engine.activities.new_item(self.iid, row["execution_id"], a) for a in outcome.activities]
        timers = [
            self.engine.new_message(
                self.iid,
                row["execution_id"],
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
            reject_child=self._child_rejected(row["execution_id"]),
        )
        if terminal:
            write.messages = self.orchestrations.notify_parent(row, outcome.status, outcome.output, self.stamp)
        if outcome.status == "ContinuedAsNew":
            self._continue_as_new(write, outcome)
        return write, activities, children

    def _child_starts(self, outcome: EpisodeOutcome) -> ChildStarts:
        """A Pending row and an ExecutionStarted message per new sub-orchestration."""
        row = self.row
        children: ChildStarts = []
        for child in outcome.children:
            child_exec = uuid.uuid4().hex
            parent = {
                "Name": row["name"],
                "Version": "",
                "OrchestrationInstance": {"InstanceId": self.iid, "ExecutionId": row["execution_id"]},
                "TaskScheduleId": child.seq,
            }
            child_row = new_instance_row(child.instance_id, child.name, child_exec, child.input_text, self.now)
            child_row.update(
                parent_instance_id=self.iid, parent_execution_id=row["execution_id"], parent_task_id=child.seq
            )
            start_event = h.execution_started(
                self.stamp, child.name, child.input_text, child.instance_id, child_exec, parent
            )
            children.append((child_row, self.engine.new_message(child.instance_id, child_exec, start_event)))
        return children

    def _continue_as_new(self, write: EpisodeWrite, outcome: EpisodeOutcome) -> None:
        """Replace the execution: empty history, new execution id, and its ExecutionStarted as the only message."""
        row = self.row
        new_exec = uuid.uuid4().hex
        # Only the old execution's work goes: the messages this episode consumed (delivered events the
        # orchestrator did not wait for are dropped, preserveUnprocessedEvents: false) and what is pinned to the
        # old execution (activity results, timers). Unpinned messages that arrived meanwhile reach the new one.
        write.drop_execution_id = row["execution_id"]
        write.reset_history = True
        write.append_events = []
        write.messages = []
        row.update(
            execution_id=new_exec,
            input=outcome.continue_input,
            exec_state=None,
            suspended=0,
            status="ContinuedAsNew",
        )
        start_event = h.execution_started(
            self.stamp, row["name"], outcome.continue_input, self.iid, new_exec, parent_ref(row)
        )
        write.messages = [self.engine.new_message(self.iid, new_exec, start_event)]

    # ---- after the commit -----------------------------------------------------------------------------

    def _remember(self, outcome: EpisodeOutcome, state_json: str, appended: list[str], old_execution: str) -> None:
        """Bring the cached runtime up to date with what was just committed."""
        runtime = self.runtime
        runtime.row = self.row
        if outcome.status == "ContinuedAsNew":
            self.engine.finished_executions.add(old_execution)
            runtime.history_json = []
            runtime.state = ExecutionState()
            # Messages held back (not delivered to the old execution) carry over unless pinned to it.
            runtime.held = [m for m in runtime.held if m.execution_id in (None, self.row["execution_id"])]
        elif outcome.status in ("Completed", "Failed"):
            self.orchestrations.finish(runtime)
        else:
            runtime.history_json.extend(appended)
            runtime.state = ExecutionState.from_json(state_json)

    def _child_rejected(self, execution_id: str) -> Callable[[MessageRow], MessageRow]:
        """A child id that belongs to a live instance fails that child call, in the episode's own transaction."""

        def failure_message(child_start: MessageRow) -> MessageRow:
            seq = int(child_start.event["ParentInstance"]["TaskScheduleId"])
            text = f"An orchestration with the instance ID '{child_start.instance_id}' already exists."
            failure = h.sub_orchestration_failed(self.stamp, seq, text, h.dotnet_exception_details(text))
            return self.engine.new_message(self.iid, execution_id, failure)

        return failure_message

    def _start_new_work(
        self, write: EpisodeWrite, activities: list[ActivityRow], children: ChildStarts, rejected: list[MessageRow]
    ) -> None:
        """Now that the episode is committed, run its activities and deliver its messages and child starts."""
        for activity in activities:
            self.engine.activities.submit(activity)
        for message in write.messages:
            self.engine.deliver(message)
        for _, child_message in children:
            if child_message not in rejected:
                self.engine.deliver(child_message)

    def _finish_timing(self, outcome: EpisodeOutcome, invocation: str) -> None:
        """Record how long the episode took (the next batching wait uses it) and log the execution."""
        elapsed = time.perf_counter() - self.wall
        self.engine.stats.episode_wall_seconds += elapsed
        if outcome.status in ("Completed", "Failed", "ContinuedAsNew"):
            self.orchestrations.last_episode_seconds.pop(self.iid, None)
            self.engine.activities.forget(self.iid)
        else:
            self.orchestrations.last_episode_seconds[self.iid] = elapsed
        error = outcome.output if outcome.status == "Failed" else None
        logs.executed(self.row["name"], invocation, elapsed, error)
