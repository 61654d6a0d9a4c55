"""When orchestrator episodes run, and what each episode's messages mean.

One episode per instance at a time: messages that arrive while it runs wait in the inbox and are delivered
together in the next one, after a short batching wait when activity results are still on their way. Episodes
are bounded by maxConcurrentOrchestratorFunctions. Terminate, suspend and resume are handled here, without
calling the orchestrator when nothing else is delivered; episodes that call it are in `orchestrator_episode.py`.
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import history as h
from . import logs
from .episode import ExecutionState
from .history import EventType
from .instances import Runtime, apply_control, iso_time
from .orchestrator_episode import OrchestratorEpisode
from .store import TERMINAL_STATUSES, EpisodeWrite, MessageRow, StaleEpisode

if TYPE_CHECKING:
    from .engine import Engine

MAX_BATCHING_WAIT = 2.0


@dataclass
class Triage:
    """An episode's messages sorted by what they do: run the orchestrator, change suspension, or nothing."""

    deliver: list[MessageRow]
    control: list[MessageRow]
    stale: list[int]
    suspended: bool


class Orchestrations:
    """Schedules episodes per instance, keeps the active instances' runtimes cached, and commits episodes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pool = ThreadPoolExecutor(
            engine.settings.max_concurrent_orchestrators, thread_name_prefix="devhost-orchestrator"
        )
        self.slots = asyncio.Semaphore(engine.settings.max_concurrent_orchestrators)
        self.inbox: dict[str, list[MessageRow]] = {}
        self.running: set[str] = set()
        self.last_episode_seconds: dict[str, float] = {}
        self.cache: dict[str, Runtime] = {}
        self.activity_names = set(engine.index.activities)
        self.orchestrator_names = set(engine.index.orchestrators)

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
        if instance_id in self.running or self.engine.stopping:
            return
        self.running.add(instance_id)
        assert self.engine.loop is not None
        self.engine.loop.create_task(self._drain_instance(instance_id))

    async def _drain_instance(self, instance_id: str) -> None:
        """Run episodes for one instance until its inbox is empty; never two of one instance at once."""
        try:
            while not self.engine.stopping and self.inbox.get(instance_id):
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
        if self.inbox.get(instance_id) and not self.engine.stopping:
            self._kick(instance_id)

    async def _gather_more(self, instance_id: str) -> None:
        """Let completions that are still on their way join this episode.

        Each episode replays the whole history, so with many activities in flight it pays to wait about as
        long as the previous episode took: replay then uses at most about half of the wall time, instead of
        one episode per handful of completions. Nothing waits when no more results are expected.
        """
        expected = self.engine.activities.in_flight(instance_id)
        if expected <= 0:
            return
        delay = min(self.last_episode_seconds.get(instance_id, 0.0), MAX_BATCHING_WAIT)
        if delay < 0.005:
            return
        started = time.perf_counter()
        await asyncio.sleep(delay)
        self.engine.stats.batching_wait_seconds += time.perf_counter() - started

    async def _runtime(self, instance_id: str, in_hand: list[MessageRow]) -> Runtime | None:
        cached = self.cache.get(instance_id)
        if cached is not None:
            return cached
        row, events, queued = await self.engine.db(self.engine.store.load_runtime, instance_id)
        if row is None:
            return None
        runtime = Runtime(row=row, history_json=events, state=ExecutionState.from_json(row["exec_state"]))
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
        timers = self.engine.timers
        return [m for m in queued if m.id not in known and m.visible_at <= now and not timers.holds(m.id)]

    def episode_time(self, runtime: Runtime) -> Any:
        """The wall clock, kept non-decreasing per instance so history timestamps never go back."""
        now = h.utcnow()
        if runtime.last_time is not None and now <= runtime.last_time:
            now = runtime.last_time
        runtime.last_time = now
        return now

    # ---- one episode: sorting the messages ------------------------------------------------------------

    async def _episode(self, instance_id: str, messages: list[MessageRow]) -> None:
        runtime = await self._runtime(instance_id, messages)
        if runtime is None:
            await self.engine.db(self.engine.store.delete_messages, [m.id for m in messages])
            return
        row = runtime.row
        current = [m for m in messages if m.execution_id in (None, row["execution_id"])]
        stale = [m.id for m in messages if m.execution_id not in (None, row["execution_id"])]
        if row["status"] in TERMINAL_STATUSES:
            self.cache.pop(instance_id, None)
            await self._consume_only(runtime, [m.id for m in messages])
            return
        candidates = runtime.held + current
        terminate = next((m for m in candidates if m.event["EventType"] == EventType.ExecutionTerminated), None)
        if terminate is not None:
            await self._terminate(runtime, terminate, [m.id for m in messages + runtime.held])
            return
        triage = self._triage(runtime, current, stale)
        if not triage.deliver:
            if triage.control or triage.stale:
                await self._control_only(runtime, triage)
            return
        await OrchestratorEpisode(self, runtime, triage).run()

    def _triage(self, runtime: Runtime, current: list[MessageRow], stale: list[int]) -> Triage:
        """Apply suspend/resume in arrival order: a suspended instance holds its messages until resumed.

        Messages held by an earlier episode come first and are looked at again, so they are delivered as soon as
        the instance is no longer suspended (or, before it started, once its ExecutionStarted is delivered).
        """
        triage = Triage(deliver=[], control=[], stale=stale, suspended=bool(runtime.row["suspended"]))
        execution_id = runtime.row["execution_id"]
        waiting: list[MessageRow] = []
        for message in runtime.held:
            if message.execution_id in (None, execution_id):
                waiting.append(message)
            else:
                triage.stale.append(message.id)
        seen = {m.id for m in waiting}
        on_hold: list[MessageRow] = []
        for message in waiting + [m for m in current if m.id not in seen]:
            kind = message.event["EventType"]
            if kind == EventType.ExecutionSuspended:
                if not triage.suspended:
                    triage.suspended = True
                    triage.control.append(message)
                else:
                    triage.stale.append(message.id)
            elif kind == EventType.ExecutionResumed:
                if triage.suspended:
                    triage.suspended = False
                    triage.control.append(message)
                    triage.deliver.extend(on_hold)
                    on_hold = []
                else:
                    triage.stale.append(message.id)
            elif triage.suspended:
                on_hold.append(message)
            else:
                triage.deliver.append(message)
        runtime.held = on_hold
        self._order_start(runtime, triage)
        return triage

    def _order_start(self, runtime: Runtime, triage: Triage) -> None:
        """ExecutionStarted must come first in a new execution and never again after it.

        An instance that has not started yet and is suspended does not start: its ExecutionStarted is held with
        the other messages until it is resumed, so the orchestrator is never called while it is suspended.
        """
        if not runtime.history_json:
            starts = [m for m in triage.deliver if m.event["EventType"] == EventType.ExecutionStarted]
            if not starts or triage.suspended:
                # Nothing can run before ExecutionStarted; keep the messages (earliest first) for later.
                runtime.held = triage.deliver + runtime.held
                triage.deliver = []
            else:
                triage.deliver = starts[:1] + [m for m in triage.deliver if m is not starts[0]]
        else:
            for m in triage.deliver:
                if m.event["EventType"] == EventType.ExecutionStarted:
                    triage.stale.append(m.id)
            triage.deliver = [m for m in triage.deliver if m.event["EventType"] != EventType.ExecutionStarted]

    # ---- episodes that don't call the orchestrator ----------------------------------------------------

    async def commit(self, runtime: Runtime, write: EpisodeWrite) -> list[MessageRow] | None:
        """Commit an episode unless the instance was purged or replaced meanwhile (then None).

        Otherwise returns the child starts the store rejected because the child id belongs to a live instance.
        """
        write.expected_execution_id = runtime.row["execution_id"]
        try:
            return await self.engine.db(self.engine.store.commit_episode, write)
        except StaleEpisode:
            self.cache.pop(runtime.row["instance_id"], None)
            return None

    async def _consume_only(self, runtime: Runtime, message_ids: list[int]) -> None:
        if not message_ids:
            return
        write = EpisodeWrite(instance_id=runtime.row["instance_id"], row=runtime.row, consumed_message_ids=message_ids)
        await self.commit(runtime, write)

    async def _control_only(self, runtime: Runtime, triage: Triage) -> None:
        """Suspend/resume without new work: record the events and the status, don't call the orchestrator."""
        row = dict(runtime.row)
        now = self.episode_time(runtime)
        stamp = h.format_timestamp(now)
        events: list[dict[str, Any]] = []
        if triage.control:
            events = [
                h.orchestrator_started(stamp),
                *(m.event for m in triage.control),
                h.orchestrator_completed(stamp),
            ]
        apply_control(row, triage.suspended, bool(runtime.history_json), now)
        texts = [json.dumps(e) for e in events]
        start = len(runtime.history_json)
        write = EpisodeWrite(
            instance_id=row["instance_id"],
            row=row,
            append_events=list(enumerate(texts, start)) if runtime.history_json else [],
            consumed_message_ids=[m.id for m in triage.control] + triage.stale,
        )
        if await self.commit(runtime, write) is None:
            return
        runtime.row = row
        if runtime.history_json:
            runtime.history_json.extend(texts)

    async def _terminate(self, runtime: Runtime, message: MessageRow, consumed: list[int]) -> None:
        row = dict(runtime.row)
        now = self.episode_time(runtime)
        stamp = h.format_timestamp(now)
        reason = message.event.get("Input")
        events = [
            h.orchestrator_started(stamp),
            message.event,
            h.execution_completed(stamp, "Terminated", reason),
            h.orchestrator_completed(stamp),
        ]
        row.update(status="Terminated", output=reason, last_updated_time=iso_time(now), suspended=0)
        texts = [json.dumps(e) for e in events]
        start = len(runtime.history_json)
        write = EpisodeWrite(
            instance_id=row["instance_id"],
            row=row,
            append_events=list(enumerate(texts, start)),
            consumed_message_ids=consumed,
            drop_outstanding=True,
            messages=self.notify_parent(row, "Failed", reason or "Terminated", stamp),
        )
        if await self.commit(runtime, write) is None:
            return
        self.finish(runtime)
        for m in write.messages:
            self.engine.deliver(m)

    def finish(self, runtime: Runtime) -> None:
        """Forget a finished execution; results of its activities still running are dropped when they arrive."""
        iid = runtime.row["instance_id"]
        self.engine.finished_executions.add(runtime.row["execution_id"])
        self.cache.pop(iid, None)
        self.engine.activities.forget(iid)
        self.last_episode_seconds.pop(iid, None)
        runtime.held = []

    def notify_parent(self, row: dict[str, Any], status: str, output: str | None, stamp: str) -> list[MessageRow]:
        """The SubOrchestrationInstanceCompleted/Failed message for the parent, if there is one."""
        parent = row.get("parent_instance_id")
        if not parent:
            return []
        seq = int(row["parent_task_id"])
        if status == "Completed":
            event = h.sub_orchestration_completed(stamp, seq, output)
        else:
            text = output or status
            event = h.sub_orchestration_failed(stamp, seq, text, h.dotnet_exception_details(text))
        return [self.engine.new_message(parent, row.get("parent_execution_id"), event)]
