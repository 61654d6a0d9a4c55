"""When orchestrator episodes run, and what each episode's messages mean (DTFx's orchestration dispatcher).

One episode per instance at a time: messages that arrive while it runs wait in the inbox and are delivered
together in the next one, after a short batching wait when activity results are still on their way. Episodes
are bounded by maxConcurrentOrchestratorFunctions. Terminate, suspend and resume are handled here, without
calling the orchestrator when nothing else is delivered; an episode that calls it is planned by `replay.py`
and committed here.
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from . import history as h
from . import logs
from .decisions import ExecutionState
from .errors import StaleEpisode
from .history import EventType
from .hub import ActivityQueue, Hub
from .instances import Runtime, apply_control, episode_time, iso_time, parent_notification
from .model import MessageRow, RuntimeStatus
from .replay import EpisodeCommit, OrchestratorEpisode
from .store import EpisodeWrite
from .triage import Triage, triage

MAX_BATCHING_WAIT = 2.0


class OrchestrationDispatcher:
    """Schedules episodes per instance, keeps the active instances' runtimes cached, and commits episodes."""

    def __init__(self, hub: Hub, activities: ActivityQueue, timer_holds: Callable[[int], bool]) -> None:
        self.hub = hub
        self.activities = activities
        self.timer_holds = timer_holds  # whether a durable timer still holds a message (it delivers it when due)
        limit = hub.settings.max_concurrent_orchestrators
        self.pool = ThreadPoolExecutor(limit, thread_name_prefix="devhost-orchestrator")
        self.slots = asyncio.Semaphore(limit)
        self.inbox: dict[str, list[MessageRow]] = {}
        self.running: set[str] = set()
        self.last_episode_seconds: dict[str, float] = {}
        self.cache: dict[str, Runtime] = {}
        self.activity_names = set(hub.index.activities)
        self.orchestrator_names = set(hub.index.orchestrators)

    # ---- scheduling -----------------------------------------------------------------------------------

    def enqueue(self, message: MessageRow) -> None:
        """Queue a visible message for its instance and make sure an episode will pick it up."""
        self.inbox.setdefault(message.instance_id, []).append(message)
        self._kick(message.instance_id)

    def evict(self, instance_id: str) -> Runtime | None:
        """Drop the cached runtime (the instance is being replaced or purged) and return it."""
        return self.cache.pop(instance_id, None)

    def discard_inbox(self, instance_id: str) -> None:
        """Forget undelivered messages of a purged instance."""
        self.inbox.pop(instance_id, None)

    def shutdown(self) -> None:
        """Drop queued episodes; their messages stay in the hub for the next start."""
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _kick(self, instance_id: str) -> None:
        if instance_id in self.running or self.hub.stopping:
            return
        self.running.add(instance_id)
        self.hub.loop.create_task(self._drain_instance(instance_id))

    async def _drain_instance(self, instance_id: str) -> None:
        """Run episodes for one instance until its inbox is empty; never two of one instance at once."""
        try:
            while not self.hub.stopping and self.inbox.get(instance_id):
                await self._gather_more(instance_id)
                messages = self.inbox.pop(instance_id)
                async with self.slots:
                    try:
                        await self._episode(instance_id, messages)
                    except Exception:
                        logs.error(f"episode of {instance_id} crashed in devhost:\n{traceback.format_exc()}")
                        self.cache.pop(instance_id, None)
        finally:
            self.running.discard(instance_id)
        if self.inbox.get(instance_id) and not self.hub.stopping:
            self._kick(instance_id)

    async def _gather_more(self, instance_id: str) -> None:
        """Let completions that are still on their way join this episode.

        Each episode replays the whole history, so with many activities in flight it pays to wait about as
        long as the previous episode took: replay then uses at most about half of the wall time, instead of
        one episode per handful of completions. Nothing waits when no more results are expected.
        """
        expected = self.activities.in_flight(instance_id)
        if expected <= 0:
            return
        delay = min(self.last_episode_seconds.get(instance_id, 0.0), MAX_BATCHING_WAIT)
        if delay < 0.005:
            return
        started = time.perf_counter()
        await asyncio.sleep(delay)
        self.hub.stats.batching_wait_seconds += time.perf_counter() - started

    async def _runtime(self, instance_id: str, in_hand: list[MessageRow]) -> Runtime | None:
        cached = self.cache.get(instance_id)
        if cached is not None:
            return cached
        row, events, queued = await self.hub.db(self.hub.store.load_runtime, instance_id)
        if row is None:
            return None
        runtime = Runtime(row=row, history_json=events, state=ExecutionState.from_json(row.exec_state))
        if events:
            runtime.last_time = h.parse_timestamp(json.loads(events[-1])["Timestamp"])
        runtime.held = self._unaccounted(instance_id, queued, in_hand)
        self.cache[instance_id] = runtime
        return runtime

    def _unaccounted(self, instance_id: str, queued: list[MessageRow], in_hand: list[MessageRow]) -> list[MessageRow]:
        """Queued messages that nothing in memory will deliver: what a dropped runtime was holding.

        A runtime rebuilt from the hub (after an eviction, a crashed episode, ...) gets them back as held, so the
        next triage sees them again; messages in this episode, in the inbox or waiting as timers are not held.
        """
        now = time.time()
        known = {m.id for m in in_hand}
        known.update(m.id for m in self.inbox.get(instance_id, ()))
        return [m for m in queued if m.id not in known and m.visible_at <= now and not self.timer_holds(m.id)]

    # ---- one episode: sorting the messages ------------------------------------------------------------

    async def _episode(self, instance_id: str, messages: list[MessageRow]) -> None:
        runtime = await self._runtime(instance_id, messages)
        if runtime is None:
            await self.hub.db(self.hub.store.delete_messages, [m.id for m in messages])
            return
        row = runtime.row
        current = [m for m in messages if m.execution_id in (None, row.execution_id)]
        stale = [m.id for m in messages if m.execution_id not in (None, row.execution_id)]
        if row.status.is_terminal:
            self.cache.pop(instance_id, None)
            await self._consume_only(runtime, [m.id for m in messages])
            return
        candidates = runtime.held + current
        terminate = next((m for m in candidates if m.event["EventType"] == EventType.ExecutionTerminated), None)
        if terminate is not None:
            await self._terminate(runtime, terminate, [m.id for m in messages + runtime.held])
            return
        sorted_messages = triage(runtime, current, stale)
        if not sorted_messages.deliver:
            if sorted_messages.control or sorted_messages.stale:
                await self._control_only(runtime, sorted_messages)
            return
        await self._orchestrator_episode(runtime, sorted_messages)

    # ---- episodes that call the orchestrator ----------------------------------------------------------

    async def _orchestrator_episode(self, runtime: Runtime, sorted_messages: Triage) -> None:
        """Replay on an orchestrator thread, commit the decisions in one transaction, then start the new work."""
        wall = time.perf_counter()
        episode = OrchestratorEpisode(self.hub, runtime, sorted_messages, self.activity_names, self.orchestrator_names)
        if episode.info is None:
            outcome, state_json = episode.unknown_orchestrator()
        else:
            outcome, state_json = await self.hub.loop.run_in_executor(self.pool, episode.replay, episode.info)
        for warning in outcome.warnings:
            logs.warn(f"instance {episode.iid}: {warning}")
        plan = episode.plan_commit(outcome, state_json)
        old_execution = runtime.row.execution_id
        rejected = await self.commit(runtime, plan.write)
        if rejected is None:
            return
        stats = self.hub.stats
        stats.episodes += 1
        stats.events_delivered += plan.delivered
        stats.payload(outcome.largest_payload)
        history_events = len(runtime.history_json) + len(plan.appended)
        stats.largest_history_events = max(stats.largest_history_events, history_events)
        stats.largest_action_count = max(stats.largest_action_count, ExecutionState.from_json(state_json).atom_count)
        self._remember(runtime, plan, old_execution)
        self._start_new_work(plan, rejected)
        self._finish_timing(plan, episode.row.name, episode.iid, time.perf_counter() - wall)

    def _remember(self, runtime: Runtime, plan: EpisodeCommit, old_execution: str) -> None:
        """Bring the cached runtime up to date with what was just committed."""
        runtime.row = plan.write.row
        status = plan.outcome.status
        if status is RuntimeStatus.CONTINUED_AS_NEW:
            self.hub.finished_executions.add(old_execution)
            runtime.history_json = []
            runtime.state = ExecutionState()
            # Messages held back (not delivered to the old execution) carry over unless pinned to it.
            runtime.held = [m for m in runtime.held if m.execution_id in (None, runtime.row.execution_id)]
        elif status.ends_execution:
            self.finish(runtime)
        else:
            runtime.history_json.extend(plan.appended)
            runtime.state = ExecutionState.from_json(plan.state_json)

    def _start_new_work(self, plan: EpisodeCommit, rejected: list[MessageRow]) -> None:
        """Now that the episode is committed, run its activities and deliver its messages and child starts."""
        for activity in plan.activities:
            self.activities.submit(activity)
        for message in plan.write.messages:
            self.hub.deliver(message)
        for _, child_message in plan.children:
            if child_message not in rejected:
                self.hub.deliver(child_message)

    def _finish_timing(self, plan: EpisodeCommit, name: str, instance_id: str, elapsed: float) -> None:
        """Record how long the episode took (the next batching wait uses it) and log the execution."""
        self.hub.stats.episode_wall_seconds += elapsed
        status = plan.outcome.status
        if status.ends_execution or status is RuntimeStatus.CONTINUED_AS_NEW:
            self.last_episode_seconds.pop(instance_id, None)
            self.activities.forget(instance_id)
        else:
            self.last_episode_seconds[instance_id] = elapsed
        error = plan.outcome.output if status is RuntimeStatus.FAILED else None
        logs.executed(name, plan.invocation, elapsed, error)

    # ---- commits, and episodes that don't call the orchestrator ---------------------------------------

    async def commit(self, runtime: Runtime, write: EpisodeWrite) -> list[MessageRow] | None:
        """Commit an episode unless the instance was purged or replaced meanwhile (then None).

        Otherwise returns the child starts the store rejected because the child id belongs to a live instance.
        """
        write.expected_execution_id = runtime.row.execution_id
        try:
            return await self.hub.db(self.hub.store.commit_episode, write)
        except StaleEpisode:
            self.cache.pop(runtime.row.instance_id, None)
            return None

    async def _consume_only(self, runtime: Runtime, message_ids: list[int]) -> None:
        if not message_ids:
            return
        write = EpisodeWrite(instance_id=runtime.row.instance_id, row=runtime.row, consumed_message_ids=message_ids)
        await self.commit(runtime, write)

    async def _control_only(self, runtime: Runtime, sorted_messages: Triage) -> None:
        """Suspend/resume without new work: record the events and the status, don't call the orchestrator."""
        row = replace(runtime.row)
        now = episode_time(runtime)
        stamp = h.format_timestamp(now)
        events: list[dict[str, Any]] = []
        if sorted_messages.control:
            events = [
                h.orchestrator_started(stamp),
                *(m.event for m in sorted_messages.control),
                h.orchestrator_completed(stamp),
            ]
        apply_control(row, sorted_messages.suspended, bool(runtime.history_json), now)
        texts = [json.dumps(e) for e in events]
        start = len(runtime.history_json)
        write = EpisodeWrite(
            instance_id=row.instance_id,
            row=row,
            append_events=list(enumerate(texts, start)) if runtime.history_json else [],
            consumed_message_ids=[m.id for m in sorted_messages.control] + sorted_messages.stale,
        )
        if await self.commit(runtime, write) is None:
            return
        runtime.row = row
        if runtime.history_json:
            runtime.history_json.extend(texts)

    async def _terminate(self, runtime: Runtime, message: MessageRow, consumed: list[int]) -> None:
        row = replace(runtime.row)
        now = episode_time(runtime)
        stamp = h.format_timestamp(now)
        reason = message.event.get("Input")
        events = [
            h.orchestrator_started(stamp),
            message.event,
            h.execution_completed(stamp, RuntimeStatus.TERMINATED, reason),
            h.orchestrator_completed(stamp),
        ]
        row.status = RuntimeStatus.TERMINATED
        row.output = reason
        row.last_updated_time = iso_time(now)
        row.suspended = False
        texts = [json.dumps(e) for e in events]
        start = len(runtime.history_json)
        notification = parent_notification(row, RuntimeStatus.FAILED, reason or RuntimeStatus.TERMINATED.value, stamp)
        write = EpisodeWrite(
            instance_id=row.instance_id,
            row=row,
            append_events=list(enumerate(texts, start)),
            consumed_message_ids=consumed,
            drop_outstanding=True,
            messages=[] if notification is None else [self.hub.new_message(*notification)],
        )
        if await self.commit(runtime, write) is None:
            return
        self.finish(runtime)
        for m in write.messages:
            self.hub.deliver(m)

    def finish(self, runtime: Runtime) -> None:
        """Forget a finished execution; results of its activities still running are dropped when they arrive."""
        iid = runtime.row.instance_id
        self.hub.finished_executions.add(runtime.row.execution_id)
        self.cache.pop(iid, None)
        self.activities.forget(iid)
        self.last_episode_seconds.pop(iid, None)
        runtime.held = []
