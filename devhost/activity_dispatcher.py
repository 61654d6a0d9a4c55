"""Activity execution: sync functions in a thread pool, async ones on the loop, results committed in batches.

Both kinds share one bound, maxConcurrentActivityFunctions: work items wait in one queue and take a slot
before either kind starts. A pool thread that finishes a sync activity keeps its slot for the next sync item
in the queue, so a sync fan-out does not go through the loop per item. A result counts only once the flush loop has
committed it (work item deleted, completion message inserted), so a crash before that runs the activity again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import traceback
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import history as h
from . import logs
from .decisions import PAYLOAD_WARN_BYTES
from .errors import FunctionTimeoutException, function_not_found, timespan
from .hub import Hub
from .indexing import FunctionInfo
from .invoke import run_async_activity, run_sync_activity, worker_error_text
from .model import ActivityRow, MessageRow


class ActivityDispatcher:
    """Runs activity work items and turns their results into committed completion messages."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.limit = hub.settings.max_concurrent_activities
        self.pool = ThreadPoolExecutor(self.limit, thread_name_prefix="devhost-activity")
        self.running = 0  # slots taken, by both kinds; guarded by _slot_lock
        self.waiting: deque[tuple[FunctionInfo | None, ActivityRow]] = deque()
        self._slot_lock = threading.Lock()
        self.outstanding: dict[str, int] = {}
        self.completed: deque[tuple[int, MessageRow]] = deque()
        self.flush_wakeup = asyncio.Event()
        self._flush_requested = False
        self._flush_lock = threading.Lock()

    # ---- bookkeeping for the orchestrations -----------------------------------------------------------

    def in_flight(self, instance_id: str) -> int:
        """How many of the instance's activities have been submitted but not yet committed."""
        return self.outstanding.get(instance_id, 0)

    def forget(self, instance_id: str) -> None:
        """Stop counting the instance's activities (it finished or started a new execution)."""
        self.outstanding.pop(instance_id, None)

    def shutdown(self) -> None:
        """Drop queued sync activities; their work items stay in the hub for the next start."""
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ---- running --------------------------------------------------------------------------------------

    def submit(self, item: ActivityRow) -> None:
        """Queue a work item for a slot; async activities then run on the loop, anything else (including unknown
        names) in the thread pool."""
        self.outstanding[item.instance_id] = self.outstanding.get(item.instance_id, 0) + 1
        info = self.hub.index.activities.get(item.name)
        with self._slot_lock:
            self.waiting.append((info, item))
        self._dispatch()

    @staticmethod
    def _is_async(info: FunctionInfo | None) -> bool:
        return info is not None and info.is_async

    def _dispatch(self) -> None:
        """On the loop: start queued work items while slots are free."""
        while not self.hub.stopping:
            with self._slot_lock:
                if self.running >= self.limit or not self.waiting:
                    return
                info, item = self.waiting.popleft()
                self.running += 1
            if self._is_async(info):
                assert info is not None
                self.hub.loop.create_task(self._run_async(info, item))
            else:
                try:
                    self.pool.submit(self._sync_slot, info, item)
                except RuntimeError:  # the pool was shut down: we are stopping
                    return

    def _sync_slot(self, info: FunctionInfo | None, item: ActivityRow) -> None:
        """In a pool thread, holding one slot: run sync items until the queue has none at its head."""
        while True:
            try:
                self._run_sync(info, item)
            except Exception:  # never lose the slot, whatever went wrong in devhost
                logs.error(f"activity '{item.name}' ({item.instance_id}) crashed in devhost:\n{traceback.format_exc()}")
            with self._slot_lock:
                if self.waiting and not self._is_async(self.waiting[0][0]) and not self.hub.stopping:
                    info, item = self.waiting.popleft()
                    continue
                self.running -= 1
                more = bool(self.waiting)
            if more:
                with contextlib.suppress(RuntimeError):  # the loop is closed during shutdown
                    self.hub.loop.call_soon_threadsafe(self._dispatch)
            return

    def _release(self) -> None:
        """On the loop: give back an async activity's slot and start what waits for it."""
        with self._slot_lock:
            self.running -= 1
        self._dispatch()

    def _run_sync(self, info: FunctionInfo | None, item: ActivityRow) -> None:
        if self.hub.stopping:
            return
        if item.execution_id in self.hub.finished_executions:
            return  # the instance finished; its outstanding work items were dropped with it
        started = time.perf_counter()
        try:
            if info is None:
                raise LookupError(function_not_found(item.name, "activity"))
            result = self._call_sync(info, item)
        except BaseException as exc:
            self._done(item, started, None, exc)
            return
        self._done(item, started, result, None)

    def _call_sync(self, info: FunctionInfo, item: ActivityRow) -> str:
        """Run a sync activity; past functionTimeout its attempt fails and the thread is abandoned (the real host
        recycles the worker process instead, which a thread cannot be)."""
        timeout = self.hub.settings.function_timeout
        if timeout is None:
            return run_sync_activity(info, item.input)
        results: list[str] = []
        errors: list[BaseException] = []

        def call() -> None:
            try:
                results.append(run_sync_activity(info, item.input))
            except BaseException as exc:
                errors.append(exc)

        runner = threading.Thread(target=call, name=f"devhost-activity-{item.name}", daemon=True)
        runner.start()
        runner.join(timeout)
        if runner.is_alive():
            self._log_timeout(item, timeout)
            raise FunctionTimeoutException(item.name, timeout)
        if errors:
            raise errors[0]
        return results[0]

    def _log_timeout(self, item: ActivityRow, timeout: float) -> None:
        logs.error(
            f"Timeout value of {timespan(timeout)} exceeded by function '{item.name}' "
            f"(instance {item.instance_id}). Initiating cancellation."
        )

    async def _run_async(self, info: FunctionInfo, item: ActivityRow) -> None:
        try:
            if self.hub.stopping:
                return
            started = time.perf_counter()
            timeout = self.hub.settings.function_timeout
            try:
                try:
                    result = await asyncio.wait_for(run_async_activity(info, item.input), timeout)
                except TimeoutError as exc:
                    if timeout is None or time.perf_counter() - started < timeout:
                        raise  # the activity's own timeout, not the host's
                    self._log_timeout(item, timeout)
                    raise FunctionTimeoutException(item.name, timeout) from exc
            except BaseException as exc:
                # A CancelledError raised by the activity itself is a failure like any other; only a real
                # cancellation (the engine stopping, or this task being cancelled) propagates.
                task = asyncio.current_task()
                if self.hub.stopping or (task is not None and task.cancelling()):
                    raise
                self._done(item, started, None, exc)
                return
            self._done(item, started, result, None)
        finally:
            self._release()

    def _done(self, item: ActivityRow, started: float, result: str | None, error: BaseException | None) -> None:
        """Called on whichever thread ran the activity: log it, queue its completion, wake the flush loop."""
        elapsed = time.perf_counter() - started
        event = _completion_event(item, elapsed, result, error)
        stats = self.hub.stats
        stats.activities_run += 1
        stats.payload(len(item.input or "") if error is not None else max(len(item.input or ""), len(result or "")))
        stats.activity_seconds += elapsed
        self.completed.append((item.id, self.hub.new_message(item.instance_id, item.execution_id, event)))
        self._request_flush()

    def _request_flush(self) -> None:
        """Wake the flush loop once per batch, not once per result, to keep cross-thread calls rare."""
        with self._flush_lock:
            if self._flush_requested:
                return
            self._flush_requested = True
        with contextlib.suppress(RuntimeError):  # the loop is closed during shutdown
            self.hub.loop.call_soon_threadsafe(self.flush_wakeup.set)

    # ---- committing -----------------------------------------------------------------------------------

    async def flush_loop(self) -> None:
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
            await self.hub.db(self.hub.store.complete_activities, batch)
            self.hub.stats.completion_batches += 1
            self.hub.stats.completions_committed += len(batch)
            self._deliver_committed(batch)

    def _deliver_committed(self, batch: list[tuple[int, MessageRow]]) -> None:
        for _, message in batch:
            left = self.outstanding.get(message.instance_id, 0) - 1
            if left > 0:
                self.outstanding[message.instance_id] = left
            else:
                self.outstanding.pop(message.instance_id, None)
            if message.execution_id in self.hub.finished_executions:
                continue
            self.hub.deliver(message)


def _completion_event(
    item: ActivityRow, elapsed: float, result: str | None, error: BaseException | None
) -> dict[str, Any]:
    """TaskCompleted or TaskFailed (with the extension's Reason and Details), logged like the host does."""
    stamp = h.format_timestamp(h.utcnow())
    invocation = str(uuid.uuid4())
    if error is None:
        logs.executed(item.name, invocation, elapsed)
        if result is not None and len(result) > PAYLOAD_WARN_BYTES:
            logs.warn(
                f"instance {item.instance_id}: output of activity '{item.name}' is "
                f"{len(result) // 1024} KB, over the {PAYLOAD_WARN_BYTES // 1024} KB that Azure "
                "Storage queues accept inline; it will be slower or fail in Azure"
            )
        return h.task_completed(stamp, item.seq, result)
    text = worker_error_text(error)
    reason = f"Activity function '{item.name}' failed: {text}"
    logs.executed(item.name, invocation, elapsed, text)
    logs.error(f"activity '{item.name}' ({item.instance_id}) failed:\n" + "".join(traceback.format_exception(error)))
    return h.task_failed(stamp, item.seq, reason, h.dotnet_exception_details(text))
