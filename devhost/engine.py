"""The engine: wires the store, the two dispatchers and the durable timers together, and serves client operations.

The parts share one event loop and one database thread; everything here and every public coroutine runs on that
loop. The engine is the parts' `Hub` (hub.py); where the work happens:

* `orchestration_dispatcher.py`: episode scheduling, batching, commits, terminate/suspend/resume,
* `replay.py`: one episode that calls the orchestrator, planned as one commit,
* `activity_dispatcher.py`: activity pools and batched completion commits,
* `durable_timers.py`: messages that become visible later,
* `stats.py`: the counters at /admin/devhost/stats.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from . import history as h
from . import logs
from .activity_dispatcher import ActivityDispatcher
from .decisions import ActivityWork
from .durable_timers import TimerQueue
from .indexing import FunctionIndex
from .instances import new_instance
from .model import ActivityRow, Instance, MessageRow
from .orchestration_dispatcher import OrchestrationDispatcher
from .settings import HostSettings
from .stats import Stats
from .store import Store

_T = TypeVar("_T")


class Engine:
    """Owns the store, the ids and the work loops; the parts reach the hub through it (it is their `Hub`)."""

    def __init__(self, index: FunctionIndex, settings: HostSettings, store: Store) -> None:
        self.index = index
        self.settings = settings
        self.store = store
        self.stats = Stats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.db_pool = ThreadPoolExecutor(1, thread_name_prefix="devhost-db")
        self.finished_executions: set[str] = set()
        self._stopping = False
        self._tasks: list[asyncio.Task[Any]] = []
        msg_max, act_max = store.max_ids()
        self.message_ids = itertools.count(msg_max + 1)
        self.activity_ids = itertools.count(act_max + 1)
        self.timers = TimerQueue(self.deliver)
        self.activities = ActivityDispatcher(self)
        self.orchestrations = OrchestrationDispatcher(self, self.activities, self.timers.holds)

    # ---- lifecycle ------------------------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop everything runs on, from `start` on."""
        if self._loop is None:
            raise RuntimeError("the engine has not been started")
        return self._loop

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def db(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a store call on the single database thread."""
        return await self.loop.run_in_executor(self.db_pool, fn, *args)

    async def start(self) -> None:
        """Start the loops and resume everything that was queued when the host last stopped."""
        self._loop = asyncio.get_running_loop()
        self._tasks.append(self.loop.create_task(self.timers.run()))
        self._tasks.append(self.loop.create_task(self.activities.flush_loop()))
        messages, activities = await self.db(self.store.pending_work)
        for message in messages:
            self.deliver(message)
        for activity in activities:
            self.activities.submit(activity)
        if messages or activities:
            logs.line(f"devhost: resumed {len(messages)} queued messages and {len(activities)} activities")

    async def stop(self) -> None:
        """Stop dispatching; in-flight work stays queued in the hub and runs again next start."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        self.activities.shutdown()
        self.orchestrations.shutdown()
        await asyncio.sleep(0)
        self.db_pool.submit(self.store.close).result(timeout=10)
        self.db_pool.shutdown(wait=True)

    # ---- messages -------------------------------------------------------------------------------------

    def new_message(
        self, instance_id: str, execution_id: str | None, event: dict[str, Any], visible_at: float = 0.0
    ) -> MessageRow:
        """A message with a fresh id; ids only grow, so the hub returns queued messages in arrival order."""
        return MessageRow(next(self.message_ids), instance_id, execution_id, visible_at, event)

    def new_activity(self, instance_id: str, execution_id: str, work: ActivityWork) -> ActivityRow:
        """A work item with a fresh id, for an episode to commit before it is submitted."""
        return ActivityRow(next(self.activity_ids), instance_id, execution_id, work.seq, work.name, work.input)

    def deliver(self, message: MessageRow) -> None:
        """Hand an already durable message to its instance, or to the timers if it is not visible yet."""
        if message.visible_at > time.time():
            self.timers.schedule(message)
            return
        self.orchestrations.enqueue(message)

    # ---- client operations ----------------------------------------------------------------------------

    async def start_new(self, name: str, instance_id: str, input_text: str | None) -> None:
        """Create the instance (Pending) and queue its ExecutionStarted; raises InstanceExists if live."""
        now = h.utcnow()
        self.stats.payload(len(input_text or ""))
        execution_id = uuid.uuid4().hex
        row = new_instance(instance_id, name, execution_id, input_text, now)
        event = h.execution_started(h.format_timestamp(now), name, input_text, instance_id, execution_id)
        message = self.new_message(instance_id, execution_id, event)
        await self.db(self.store.create_instance, row, message)
        # Only now: a rejected start (InstanceExists) must leave the live instance's runtime, and what it holds, alone.
        old = self.orchestrations.evict(instance_id)
        if old is not None:
            self.finished_executions.add(old.row.execution_id)
        self.deliver(message)

    async def get_instance(self, instance_id: str) -> Instance | None:
        """The instance, or None."""
        return await self.db(self.store.get_instance, instance_id)

    async def send_event(self, instance_id: str, execution_id: str | None, event: dict[str, Any]) -> None:
        """Queue one message (raise event, terminate, suspend, resume) durably, then deliver it."""
        message = self.new_message(instance_id, execution_id, event)
        await self.db(self.store.add_messages, [message])
        self.deliver(message)

    async def purge(self, instance_ids: list[str]) -> int:
        """Delete the instances in any state; live ones stop, and results of their activities are dropped."""
        for iid in instance_ids:
            runtime = self.orchestrations.evict(iid)
            if runtime is not None:
                self.finished_executions.add(runtime.row.execution_id)
            self.orchestrations.discard_inbox(iid)
        found = [row for iid in instance_ids if (row := await self.get_instance(iid)) is not None]
        for row in found:
            self.finished_executions.add(row.execution_id)
        return await self.db(self.store.purge, [row.instance_id for row in found])
