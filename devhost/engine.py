"""The engine: wires the store, orchestrations, activities and timers together, and serves client operations.

The parts share one event loop and one database thread; everything here and every public coroutine runs on that
loop. Where the work happens:

* `orchestrations.py`: episode scheduling, batching, replay, commits, terminate/suspend/resume,
* `activities.py`: activity pools and batched completion commits,
* `timers.py`: messages that become visible later (durable timers),
* `stats.py`: the counters at /admin/devhost/stats.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import history as h
from . import logs
from .activities import Activities
from .indexing import FunctionIndex
from .instances import new_instance_row
from .orchestrations import Orchestrations
from .settings import HostSettings
from .stats import Stats
from .store import MessageRow, Store
from .timers import TimerQueue


class Engine:
    """Owns the store and the work loops; the other modules reach each other and the hub through it."""

    def __init__(self, index: FunctionIndex, settings: HostSettings, store: Store) -> None:
        self.index = index
        self.settings = settings
        self.store = store
        self.stats = Stats()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.db_pool = ThreadPoolExecutor(1, thread_name_prefix="devhost-db")
        self.finished_executions: set[str] = set()
        self.stopping = False
        self._tasks: list[asyncio.Task[Any]] = []
        msg_max, act_max = store.max_ids()
        self.message_ids = itertools.count(msg_max + 1)
        self.orchestrations = Orchestrations(self)
        self.activities = Activities(self, act_max + 1)
        self.timers = TimerQueue(self.deliver)

    # ---- lifecycle ------------------------------------------------------------------------------------

    async def db(self, fn: Any, *args: Any) -> Any:
        """Run a store call on the single database thread."""
        assert self.loop is not None
        return await self.loop.run_in_executor(self.db_pool, fn, *args)

    async def start(self) -> None:
        """Start the loops and resume everything that was queued when the host last stopped."""
        self.loop = asyncio.get_running_loop()
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
        self.stopping = True
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
        row = new_instance_row(instance_id, name, execution_id, input_text, now)
        event = h.execution_started(h.format_timestamp(now), name, input_text, instance_id, execution_id)
        message = self.new_message(instance_id, execution_id, event)
        await self.db(self.store.create_instance, row, message)
        # Only now: a rejected start (InstanceExists) must leave the live instance's runtime, and what it holds, alone.
        old = self.orchestrations.evict(instance_id)
        if old is not None:
            self.finished_executions.add(old.row["execution_id"])
        self.deliver(message)

    async def get_instance(self, instance_id: str) -> dict[str, Any] | None:
        """The instance's hub row, or None."""
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
                self.finished_executions.add(runtime.row["execution_id"])
            self.orchestrations.discard_inbox(iid)
        rows = [await self.get_instance(iid) for iid in instance_ids]
        for row in rows:
            if row:
                self.finished_executions.add(row["execution_id"])
        return await self.db(self.store.purge, [r["instance_id"] for r in rows if r])
