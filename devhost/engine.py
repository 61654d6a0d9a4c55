"""The engine: runs orchestrator episodes and activities with the host's concurrency rules.

* one episode per instance at a time; messages that arrive meanwhile are delivered together next time,
* sync activities in a thread pool bounded by maxConcurrentActivityFunctions, async ones on the loop,
* episodes bounded by maxConcurrentOrchestratorFunctions,
* activity results committed in small batches before they count as done,
* durable timers held in a heap until due.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import threading
import time
import traceback
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import history as h
from . import logs
from .episode import (
    PAYLOAD_WARN_BYTES,
    EpisodeInfo,
    EpisodeOutcome,
    ExecutionState,
    failed_output,
    order_episode,
    plan_episode,
)
from .history import EventType
from .indexing import FunctionIndex, FunctionInfo
from .invoke import call_orchestrator, run_async_activity, run_sync_activity, worker_error_text
from .settings import HostSettings
from .store import TERMINAL_STATUSES, ActivityRow, EpisodeWrite, MessageRow, StaleEpisode, Store

T = TypeVar("T")
CONTROL_EVENTS = (EventType.ExecutionSuspended, EventType.ExecutionResumed)
MAX_BATCHING_WAIT = 2.0


@dataclass
class Stats:
    """Counters exposed at /admin/devhost/stats to show where time goes."""

    episodes: int = 0
    replay_seconds: float = 0.0
    replay_cpu_seconds: float = 0.0
    batching_wait_seconds: float = 0.0
    context_build_seconds: float = 0.0
    plan_seconds: float = 0.0
    episode_wall_seconds: float = 0.0
    events_delivered: int = 0
    activities_run: int = 0
    activity_seconds: float = 0.0
    completion_batches: int = 0
    completions_committed: int = 0

    def as_dict(self, store: Store) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["sqlite_seconds"] = store.busy_seconds
        data["sqlite_cpu_seconds"] = store.cpu_seconds
        data["sqlite_transactions"] = store.transactions
        return data


@dataclass
class Runtime:
    """A cached active instance: its row, serialized history and execution state."""

    row: dict[str, Any]
    history_json: list[str]
    state: ExecutionState
    last_time: Any = None
    held: list[MessageRow] = field(default_factory=list)


def _iso(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Engine:
    """Owns the store, the caches and the work loops; all public coroutines run on the one event loop."""

    def __init__(self, index: FunctionIndex, settings: HostSettings, store: Store) -> None:
        self.index = index
        self.settings = settings
        self.store = store
        self.stats = Stats()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.db_pool = ThreadPoolExecutor(1, thread_name_prefix="devhost-db")
        self.orchestrator_pool = ThreadPoolExecutor(
            settings.max_concurrent_orchestrators, thread_name_prefix="devhost-orchestrator"
        )
        self.activity_pool = ThreadPoolExecutor(
            settings.max_concurrent_activities, thread_name_prefix="devhost-activity"
        )
        self.async_activity_slots = asyncio.Semaphore(settings.max_concurrent_activities)
        self.episode_slots = asyncio.Semaphore(settings.max_concurrent_orchestrators)
        self.inbox: dict[str, list[MessageRow]] = {}
        self.running: set[str] = set()
        self.outstanding: dict[str, int] = {}
        self.last_episode_seconds: dict[str, float] = {}
        self.cache: dict[str, Runtime] = {}
        self.finished_executions: set[str] = set()
        self.timers: list[tuple[float, int, MessageRow]] = []
        self.timer_wakeup = asyncio.Event()
        self.completed: deque[tuple[int, MessageRow]] = deque()
        self.flush_wakeup = asyncio.Event()
        self._flush_requested = False
        self._flush_lock = threading.Lock()
        msg_max, act_max = store.max_ids()
        self.message_ids = itertools.count(msg_max + 1)
        self.activity_ids = itertools.count(act_max + 1)
        self.stopping = False
        self._tasks: list[asyncio.Task[Any]] = []
        self.activity_names = set(index.activities)
        self.orchestrator_names = set(index.orchestrators)

    # ---- lifecycle ----------------------------------------------------------------------------------

    async def db(self, fn: Any, *args: Any) -> Any:
        """Run a store call on the single database thread."""
        assert self.loop is not None
        return await self.loop.run_in_executor(self.db_pool, fn, *args)

    async def start(self) -> None:
        """Start the loops and resume everything that was queued when the host last stopped."""
        self.loop = asyncio.get_running_loop()
        self._tasks.append(self.loop.create_task(self._timer_loop()))
        self._tasks.append(self.loop.create_task(self._flush_loop()))
        messages, activities = await self.db(self.store.pending_work)
        for message in messages:
            self._deliver(message)
        for activity in activities:
            self._submit_activity(activity)
        if messages or activities:
            logs.line(f"devhost: resumed {len(messages)} queued messages and {len(activities)} activities")

    async def stop(self) -> None:
        """Stop dispatching; in-flight work stays queued in the hub and runs again next start."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        self.activity_pool.shutdown(wait=False, cancel_futures=True)
        self.orchestrator_pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.sleep(0)
        self.db_pool.submit(self.store.close).result(timeout=10)
        self.db_pool.shutdown(wait=True)

    # ---- message delivery ---------------------------------------------------------------------------

    def new_message(
        self, instance_id: str, execution_id: str | None, event: dict[str, Any], visible_at: float = 0.0
    ) -> MessageRow:
        return MessageRow(next(self.message_ids), instance_id, execution_id, visible_at, event)

    def _deliver(self, message: MessageRow) -> None:
        if message.visible_at > time.time():
            heapq.heappush(self.timers, (message.visible_at, message.id, message))
            self.timer_wakeup.set()
            return
        self.inbox.setdefault(message.instance_id, []).append(message)
        self._kick(message.instance_id)

    def _kick(self, instance_id: str) -> None:
        if instance_id in self.running or self.stopping:
            return
        self.running.add(instance_id)
        assert self.loop is not None
        self.loop.create_task(self._drain_instance(instance_id))

    async def _timer_loop(self) -> None:
        while True:
            now = time.time()
            while self.timers and self.timers[0][0] <= now:
                _, _, message = heapq.heappop(self.timers)
                message.visible_at = 0.0
                self._deliver(message)
            timeout = self.timers[0][0] - now if self.timers else None
            self.timer_wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.timer_wakeup.wait(), timeout)

    # ---- orchestrator episodes ----------------------------------------------------------------------

    async def _drain_instance(self, instance_id: str) -> None:
        try:
            while not self.stopping and self.inbox.get(instance_id):
                await self._gather_more(instance_id)
                messages = self.inbox.pop(instance_id)
                async with self.episode_slots:
                    try:
                        await self._episode(instance_id, messages)
                    except Exception:
                        logs.error(f"episode of {instance_id} crashed in devhost:\n{traceback.format_exc()}")
                        self.cache.pop(instance_id, None)
        finally:
            self.running.discard(instance_id)
        if self.inbox.get(instance_id) and not self.stopping:
            self._kick(instance_id)

    async def _gather_more(self, instance_id: str) -> None:
        """Let completions that are still on their way join this episode.

        Each episode replays the whole history, so with many activities in flight it pays to wait about as
        long as the previous episode took: replay then uses at most about half of the wall time, instead of
        one episode per handful of completions. Nothing waits when no more results are expected.
        """
        expected = self.outstanding.get(instance_id, 0)
        if expected <= 0:
            return
        delay = min(self.last_episode_seconds.get(instance_id, 0.0), MAX_BATCHING_WAIT)
        if delay < 0.005:
            return
        started = time.perf_counter()
        await asyncio.sleep(delay)
        self.stats.batching_wait_seconds += time.perf_counter() - started

    async def _runtime(self, instance_id: str) -> Runtime | None:
        cached = self.cache.get(instance_id)
        if cached is not None:
            return cached
        row, events = await self.db(self.store.load_runtime, instance_id)
        if row is None:
            return None
        runtime = Runtime(row=row, history_json=events, state=ExecutionState.from_json(row["exec_state"]))
        if events:
            runtime.last_time = h.parse_timestamp(json.loads(events[-1])["Timestamp"])
        self.cache[instance_id] = runtime
        return runtime

    def _episode_time(self, runtime: Runtime) -> Any:
        now = h.utcnow()
        if runtime.last_time is not None and now <= runtime.last_time:
            now = runtime.last_time
        runtime.last_time = now
        return now

    async def _episode(self, instance_id: str, messages: list[MessageRow]) -> None:
        runtime = await self._runtime(instance_id)
        if runtime is None:
            await self.db(self.store.delete_messages, [m.id for m in messages])
            return
        row = runtime.row
        current = [m for m in messages if m.execution_id in (None, row["execution_id"])]
        stale = [m.id for m in messages if m.execution_id not in (None, row["execution_id"])]
        if row["status"] in TERMINAL_STATUSES:
            self.cache.pop(instance_id, None)
            await self._consume_only(runtime, [m.id for m in messages])
            return
        terminate = next((m for m in current if m.event["EventType"] == EventType.ExecutionTerminated), None)
        if terminate is not None:
            await self._terminate(runtime, terminate, [m.id for m in messages])
            return

        deliver: list[MessageRow] = []
        control: list[MessageRow] = []
        suspended = bool(row["suspended"])
        for message in current:
            kind = message.event["EventType"]
            if kind == EventType.ExecutionSuspended:
                if not suspended:
                    suspended = True
                    control.append(message)
                else:
                    stale.append(message.id)
            elif kind == EventType.ExecutionResumed:
                if suspended:
                    suspended = False
                    control.append(message)
                    deliver.extend(runtime.held)
                    runtime.held = []
                else:
                    stale.append(message.id)
            elif suspended:
                runtime.held.append(message)
            else:
                deliver.append(message)

        if not runtime.history_json:
            starts = [m for m in deliver if m.event["EventType"] == EventType.ExecutionStarted]
            if not starts:
                # Nothing can run before ExecutionStarted; keep the messages for later.
                runtime.held.extend(deliver)
                deliver = []
            else:
                deliver = starts[:1] + [m for m in deliver if m is not starts[0]]
        else:
            for m in deliver:
                if m.event["EventType"] == EventType.ExecutionStarted:
                    stale.append(m.id)
            deliver = [m for m in deliver if m.event["EventType"] != EventType.ExecutionStarted]

        if not deliver:
            if control or stale:
                await self._control_only(runtime, control, stale, suspended)
            return
        await self._run_orchestrator(runtime, deliver, control, stale, suspended)

    async def _consume_only(self, runtime: Runtime, message_ids: list[int]) -> None:
        if not message_ids:
            return
        write = EpisodeWrite(instance_id=runtime.row["instance_id"], row=runtime.row, consumed_message_ids=message_ids)
        await self._commit(runtime, write)

    async def _commit(self, runtime: Runtime, write: EpisodeWrite) -> list[MessageRow] | None:
        """Commit an episode unless the instance was purged or replaced meanwhile (then None)."""
        write.expected_execution_id = runtime.row["execution_id"]
        try:
            return await self.db(self.store.commit_episode, write)
        except StaleEpisode:
            self.cache.pop(runtime.row["instance_id"], None)
            return None

    async def _control_only(
        self, runtime: Runtime, control: list[MessageRow], stale: list[int], suspended: bool
    ) -> None:
        """Suspend/resume without new work: record the events and the status, don't call the orchestrator."""
        row = dict(runtime.row)
        now = self._episode_time(runtime)
        stamp = h.format_timestamp(now)
        events: list[dict[str, Any]] = []
        if control:
            events = [h.orchestrator_started(stamp)] + [m.event for m in control] + [h.orchestrator_completed(stamp)]
        row["suspended"] = int(suspended)
        if row["status"] in ("Running", "Suspended", "Pending"):
            if suspended:
                row["status"] = "Suspended"
            elif row["status"] == "Suspended":
                row["status"] = "Running" if runtime.history_json else "Pending"
        row["last_updated_time"] = _iso(now)
        texts = [json.dumps(e) for e in events]
        start = len(runtime.history_json)
        write = EpisodeWrite(
            instance_id=row["instance_id"],
            row=row,
            append_events=list(enumerate(texts, start)) if runtime.history_json else [],
            consumed_message_ids=[m.id for m in control] + stale,
        )
        if await self._commit(runtime, write) is None:
            return
        runtime.row = row
        if runtime.history_json:
            runtime.history_json.extend(texts)

    async def _terminate(self, runtime: Runtime, message: MessageRow, consumed: list[int]) -> None:
        row = dict(runtime.row)
        now = self._episode_time(runtime)
        stamp = h.format_timestamp(now)
        reason = message.event.get("Input")
        events = [
            h.orchestrator_started(stamp),
            message.event,
            h.execution_completed(stamp, "Terminated", reason),
            h.orchestrator_completed(stamp),
        ]
        row.update(status="Terminated", output=reason, last_updated_time=_iso(now), suspended=0)
        texts = [json.dumps(e) for e in events]
        start = len(runtime.history_json)
        write = EpisodeWrite(
            instance_id=row["instance_id"],
            row=row,
            append_events=list(enumerate(texts, start)),
            consumed_message_ids=consumed,
            drop_outstanding=True,
            messages=self._notify_parent(row, "Failed", reason or "Terminated", stamp),
        )
        if await self._commit(runtime, write) is None:
            return
        self._finish(runtime)
        for m in write.messages:
            self._deliver(m)

    def _finish(self, runtime: Runtime) -> None:
        iid = runtime.row["instance_id"]
        self.finished_executions.add(runtime.row["execution_id"])
        self.cache.pop(iid, None)
        self.outstanding.pop(iid, None)
        self.last_episode_seconds.pop(iid, None)
        runtime.held = []

    def _notify_parent(self, row: dict[str, Any], status: str, output: str | None, stamp: str) -> list[MessageRow]:
        parent = row.get("parent_instance_id")
        if not parent:
            return []
        seq = int(row["parent_task_id"])
        if status == "Completed":
            event = h.sub_orchestration_completed(stamp, seq, output)
        else:
            text = output or status
            event = h.sub_orchestration_failed(stamp, seq, text, h.dotnet_exception_details(text))
        return [self.new_message(parent, row.get("parent_execution_id"), event)]

    def _build_context(self, runtime: Runtime, new_texts: list[str]) -> str:
        row = runtime.row
        first = json.loads(runtime.history_json[1] if runtime.history_json else new_texts[1])
        return h.context_json(
            runtime.history_json + new_texts,
            h.decode_stored_input(first.get("Input")),
            row["instance_id"],
            bool(runtime.history_json),
            row.get("parent_instance_id"),
        )

    def _replay(
        self,
        info: FunctionInfo,
        runtime: Runtime,
        new_texts: list[str],
        delivered: list[dict[str, Any]],
        episode: EpisodeInfo,
    ) -> tuple[EpisodeOutcome, str]:
        """Runs in an orchestrator thread: build the context, call the SDK, plan the decisions."""
        t0 = time.perf_counter()
        context = self._build_context(runtime, new_texts)
        t1 = time.perf_counter()
        cpu = time.thread_time()
        result = call_orchestrator(info, context)
        self.stats.replay_cpu_seconds += time.thread_time() - cpu
        t2 = time.perf_counter()
        state = ExecutionState.from_json(runtime.state.to_json())
        outcome = plan_episode(state, delivered, result.kind, result.state, result.message, episode)
        t3 = time.perf_counter()
        self.stats.context_build_seconds += t1 - t0
        self.stats.replay_seconds += t2 - t1
        self.stats.plan_seconds += t3 - t2
        return outcome, state.to_json()

    async def _run_orchestrator(
        self, runtime: Runtime, deliver: list[MessageRow], control: list[MessageRow], stale: list[int], suspended: bool
    ) -> None:
        wall = time.perf_counter()
        row = dict(runtime.row)
        iid = row["instance_id"]
        info = self.index.orchestrators.get(row["name"])
        now = self._episode_time(runtime)
        stamp = h.format_timestamp(now)
        # Retry-id reserving events first, so the SDK numbers retries before new atoms, as plan_episode does.
        deliver = order_episode(runtime.state, deliver, lambda m: m.event)
        delivered = [m.event for m in deliver]
        new_events = [h.orchestrator_started(stamp)] + [m.event for m in control] + delivered
        new_texts = [json.dumps(e) for e in new_events]
        invocation = str(uuid.uuid4())
        episode = EpisodeInfo(
            orchestrator_name=row["name"],
            instance_id=iid,
            execution_id=row["execution_id"],
            parent_instance_id=row.get("parent_instance_id"),
            now=now,
            timestamp=stamp,
            activities=self.activity_names,
            orchestrators=self.orchestrator_names,
            max_actions=self.settings.max_orchestration_actions,
        )
        if info is None:
            outcome = EpisodeOutcome(
                status="Failed",
                output=failed_output(
                    row["name"],
                    f"The function '{row['name']}' doesn't exist, is disabled, or is not an orchestrator function.",
                ),
            )
            state_json = runtime.state.to_json()
        else:
            assert self.loop is not None
            outcome, state_json = await self.loop.run_in_executor(
                self.orchestrator_pool, self._replay, info, runtime, new_texts, delivered, episode
            )
        for warning in outcome.warnings:
            logs.warn(f"instance {iid}: {warning}")

        decisions = list(outcome.decisions)
        tail: list[dict[str, Any]] = []
        terminal = outcome.status in ("Completed", "Failed")
        if terminal:
            tail.append(h.execution_completed(stamp, outcome.status, outcome.output))
        tail.append(h.orchestrator_completed(stamp))
        appended = new_texts + [json.dumps(e) for e in decisions + tail]
        start = len(runtime.history_json)

        row["last_updated_time"] = _iso(now)
        row["suspended"] = int(suspended)
        row["status"] = "Suspended" if suspended and not terminal else outcome.status
        if outcome.custom_status_set:
            row["custom_status"] = outcome.custom_status
        if terminal:
            row["output"] = outcome.output
            row["suspended"] = 0
        row["exec_state"] = state_json

        activities = [
            ActivityRow(next(self.activity_ids), iid, row["execution_id"], a.seq, a.name, a.input)
            for a in outcome.activities
        ]
        messages = [
            self.new_message(
                iid,
                row["execution_id"],
                h.timer_fired(t.fire_at, t.seq, t.fire_at),
                h.parse_timestamp(t.fire_at).timestamp(),
            )
            for t in outcome.timers
        ]
        children = []
        for child in outcome.children:
            child_exec = uuid.uuid4().hex
            parent_ref = {
                "Name": row["name"],
                "Version": "",
                "OrchestrationInstance": {"InstanceId": iid, "ExecutionId": row["execution_id"]},
                "TaskScheduleId": child.seq,
            }
            child_row = self._new_row(child.instance_id, child.name, child_exec, child.input_text, now)
            child_row.update(parent_instance_id=iid, parent_execution_id=row["execution_id"], parent_task_id=child.seq)
            start_event = h.execution_started(
                stamp, child.name, child.input_text, child.instance_id, child_exec, parent_ref
            )
            children.append((child_row, self.new_message(child.instance_id, child_exec, start_event)))

        write = EpisodeWrite(
            instance_id=iid,
            row=row,
            append_events=list(enumerate(appended, start)),
            consumed_message_ids=[m.id for m in deliver + control] + stale,
            activities=activities,
            messages=messages,
            children=children,
            drop_outstanding=terminal,
        )
        if terminal:
            write.messages = self._notify_parent(row, outcome.status, outcome.output, stamp)
        continue_start: MessageRow | None = None
        if outcome.status == "ContinuedAsNew":
            new_exec = uuid.uuid4().hex
            write.drop_outstanding = True
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
                stamp, row["name"], outcome.continue_input, iid, new_exec, self._parent_ref(row)
            )
            continue_start = self.new_message(iid, new_exec, start_event)
            write.messages = [continue_start]

        old_execution = runtime.row["execution_id"]
        rejected = await self._commit(runtime, write)
        if rejected is None:
            return

        self.stats.episodes += 1
        self.stats.events_delivered += len(deliver)
        runtime.row = row
        if outcome.status == "ContinuedAsNew":
            self.finished_executions.add(old_execution)
            runtime.history_json = []
            runtime.state = ExecutionState()
            runtime.held = []
        elif terminal:
            self._finish(runtime)
        else:
            runtime.history_json.extend(appended)
            runtime.state = ExecutionState.from_json(state_json)
        for child_start in rejected:
            seq = int(child_start.event["ParentInstance"]["TaskScheduleId"])
            text = f"An orchestration with the instance ID '{child_start.instance_id}' already exists."
            failure = h.sub_orchestration_failed(stamp, seq, text, h.dotnet_exception_details(text))
            write.messages.append(self.new_message(iid, row["execution_id"], failure))
        if rejected:
            await self.db(self.store.add_messages, write.messages[-len(rejected) :])
        for activity in activities:
            self._submit_activity(activity)
        for message in write.messages:
            self._deliver(message)
        for _, child_message in children:
            if child_message not in rejected:
                self._deliver(child_message)
        elapsed = time.perf_counter() - wall
        self.stats.episode_wall_seconds += elapsed
        if terminal or outcome.status == "ContinuedAsNew":
            self.last_episode_seconds.pop(iid, None)
            self.outstanding.pop(iid, None)
        else:
            self.last_episode_seconds[iid] = elapsed
        error = outcome.output if outcome.status == "Failed" else None
        logs.executed(row["name"], invocation, elapsed, error)

    def _parent_ref(self, row: dict[str, Any]) -> dict[str, Any] | None:
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

    # ---- activities ---------------------------------------------------------------------------------

    def _submit_activity(self, item: ActivityRow) -> None:
        self.outstanding[item.instance_id] = self.outstanding.get(item.instance_id, 0) + 1
        info = self.index.activities.get(item.name)
        if info is not None and info.is_async:
            assert self.loop is not None
            self.loop.create_task(self._run_async_activity(info, item))
        else:
            self.activity_pool.submit(self._run_sync_activity, info, item)

    def _activity_done(
        self, item: ActivityRow, started: float, result: str | None, error: BaseException | None
    ) -> None:
        elapsed = time.perf_counter() - started
        stamp = h.format_timestamp(h.utcnow())
        invocation = str(uuid.uuid4())
        if error is None:
            event = h.task_completed(stamp, item.seq, result)
            logs.executed(item.name, invocation, elapsed)
            if result is not None and len(result) > PAYLOAD_WARN_BYTES:
                logs.warn(
                    f"instance {item.instance_id}: output of activity '{item.name}' is "
                    f"{len(result) // 1024} KB, over the {PAYLOAD_WARN_BYTES // 1024} KB that Azure "
                    "Storage queues accept inline; it will be slower or fail in Azure"
                )
        else:
            text = worker_error_text(error)
            reason = f"Activity function '{item.name}' failed: {text}"
            event = h.task_failed(stamp, item.seq, reason, h.dotnet_exception_details(text))
            logs.executed(item.name, invocation, elapsed, text)
            logs.error(
                f"activity '{item.name}' ({item.instance_id}) failed:\n" + "".join(traceback.format_exception(error))
            )
        self.stats.activities_run += 1
        self.stats.activity_seconds += elapsed
        self.completed.append((item.id, self.new_message(item.instance_id, item.execution_id, event)))
        with self._flush_lock:
            if self._flush_requested:
                return
            self._flush_requested = True
        assert self.loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed during shutdown
            self.loop.call_soon_threadsafe(self.flush_wakeup.set)

    def _run_sync_activity(self, info: FunctionInfo | None, item: ActivityRow) -> None:
        if self.stopping:
            return
        if item.execution_id in self.finished_executions:
            return  # the instance finished; its outstanding work items were dropped with it
        started = time.perf_counter()
        try:
            if info is None:
                raise LookupError(
                    f"The function '{item.name}' doesn't exist, is disabled, or is not an activity function."
                )
            result = run_sync_activity(info, item.input)
        except BaseException as exc:
            self._activity_done(item, started, None, exc)
            return
        self._activity_done(item, started, result, None)

    async def _run_async_activity(self, info: FunctionInfo, item: ActivityRow) -> None:
        async with self.async_activity_slots:
            if self.stopping:
                return
            started = time.perf_counter()
            try:
                result = await run_async_activity(info, item.input)
            except Exception as exc:
                self._activity_done(item, started, None, exc)
                return
            self._activity_done(item, started, result, None)

    async def _flush_loop(self) -> None:
        """Commit activity results in batches; a result counts only once committed."""
        while True:
            await self.flush_wakeup.wait()
            self.flush_wakeup.clear()
            with self._flush_lock:
                self._flush_requested = False
            batch: list[tuple[int, MessageRow]] = []
            while self.completed:
                batch.append(self.completed.popleft())
            if not batch:
                continue
            await self.db(self.store.complete_activities, batch)
            self.stats.completion_batches += 1
            self.stats.completions_committed += len(batch)
            for _, message in batch:
                left = self.outstanding.get(message.instance_id, 0) - 1
                if left > 0:
                    self.outstanding[message.instance_id] = left
                else:
                    self.outstanding.pop(message.instance_id, None)
                if message.execution_id in self.finished_executions:
                    continue
                self._deliver(message)

    # ---- client operations --------------------------------------------------------------------------

    def _new_row(
        self, instance_id: str, name: str, execution_id: str, input_text: str | None, now: Any
    ) -> dict[str, Any]:
        stamp = _iso(now)
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

    async def start_new(self, name: str, instance_id: str, input_text: str | None) -> None:
        """Create the instance (Pending) and queue its ExecutionStarted; raises InstanceExists if live."""
        now = h.utcnow()
        execution_id = uuid.uuid4().hex
        row = self._new_row(instance_id, name, execution_id, input_text, now)
        event = h.execution_started(h.format_timestamp(now), name, input_text, instance_id, execution_id)
        message = self.new_message(instance_id, execution_id, event)
        old = self.cache.pop(instance_id, None)
        await self.db(self.store.create_instance, row, message)
        if old is not None:
            self.finished_executions.add(old.row["execution_id"])
        self._deliver(message)

    async def get_instance(self, instance_id: str) -> dict[str, Any] | None:
        return await self.db(self.store.get_instance, instance_id)

    async def send_event(self, instance_id: str, execution_id: str | None, event: dict[str, Any]) -> None:
        """Queue one message (raise event, terminate, suspend, resume) durably, then deliver it."""
        message = self.new_message(instance_id, execution_id, event)
        await self.db(self.store.add_messages, [message])
        self._deliver(message)

    async def purge(self, instance_ids: list[str]) -> int:
        for iid in instance_ids:
            runtime = self.cache.pop(iid, None)
            if runtime is not None:
                self.finished_executions.add(runtime.row["execution_id"])
            self.inbox.pop(iid, None)
        rows = [await self.get_instance(iid) for iid in instance_ids]
        for row in rows:
            if row:
                self.finished_executions.add(row["execution_id"])
        return await self.db(self.store.purge, [r["instance_id"] for r in rows if r])
