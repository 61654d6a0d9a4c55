"""Activity execution: sync functions in a thread pool, async ones on the loop, results committed in batches.

Both kinds share one bound, maxConcurrentActivityFunctions: work items wait in one queue and take a slot
before either kind starts. A pool thread that finishes a sync activity keeps its slot for the next sync item
in the queue, so a sync fan-out does not go through the loop per item. A result counts only once the flush loop has
committed it (work item deleted, completion message inserted), so a crash before that runs the activity again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
import traceback
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from . import history as h
from . import logs
from .episode import PAYLOAD_WARN_BYTES, ActivityWork
from .indexing import FunctionInfo
from .invoke import run_async_activity, run_sync_activity, worker_error_text
from .store import ActivityRow, MessageRow

if TYPE_CHECKING:
    from .engine import Engine


class FunctionTimeoutException(Exception):
    """An activity ran longer than host.json's functionTimeout (the host's own exception name and wording)."""

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(f"Timeout value of {timespan(seconds)} was exceeded by function: Functions.{name}")


def timespan(seconds: float) -> str:
    """Seconds as a .NET TimeSpan, hh:mm:ss."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


class Activities:
    """Runs activity work items and turns their results into committed completion messages."""

    def __init__(self, engine: Engine, first_id: int) -> None:
        self.engine = engine
        self.pool = ThreadPoolExecutor(engine.settings.max_concurrent_activities, thread_name_prefix="devhost-activity")
        self.limit = engine.settings.max_concurrent_activities
        self.running = 0  # slots taken, by both kinds; guarded by _slot_lock
        self.waiting: deque[tuple[FunctionInfo | None, ActivityRow]] = deque()
        self._slot_lock = threading.Lock()
        self.ids = itertools.count(first_id)
        self.outstanding: dict[str, int] = {}
        self.completed: deque[tuple[int, MessageRow]] = deque()
        self.flush_wakeup = asyncio.Event()
        self._flush_requested = False
        self._flush_lock = threading.Lock()

    # ---- bookkeeping for the orchestrations -----------------------------------------------------------

    def new_item(self, instance_id: str, execution_id: str, work: ActivityWork) -> ActivityRow:
        """A work item with a fresh id, for an episode to commit before it is submitted."""
        return ActivityRow(next(self.ids), instance_id, execution_id, work.seq, work.name, work.input)

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
        info = self.engine.index.activities.get(item.name)
        with self._slot_lock:
            self.waiting.append((info, item))
        self._dispatch()

    @staticmethod
    def _is_async(info: FunctionInfo | None) -> bool:
        return info is not None and info.is_async

    def _dispatch(self) -> None:
        """On the loop: start queued work items while slots are free."""
        assert self.engine.loop is not None
        while not self.engine.stopping:
            with self._slot_lock:
                if self.running >= self.limit or not self.waiting:
                    return
                info, item = self.waiting.popleft()
                self.running += 1
            if self._is_async(info):
                assert info is not None
                self.engine.loop.create_task(self._run_async(info, item))
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
                if self.waiting and not self._is_async(self.waiting[0][0]) and not self.engine.stopping:
                    info, item = self.waiting.popleft()
                    continue
                self.running -= 1
                more = bool(self.waiting)
            if more:
                assert self.engine.loop is not None
                with contextlib.suppress(RuntimeError):  # the loop is closed during shutdown
                    self.engine.loop.call_soon_threadsafe(self._dispatch)
            return

    def _release(self) -> None:
        """On the loop: give back an async activity's slot and start what waits for it."""
        with self._slot_lock:
            self.running -= 1
        self._dispatch()

    def _run_sync(self, info: FunctionInfo | None, item: ActivityRow) -> None:
        if self.engine.stopping:
            return
        if item.execution_id in self.engine.finished_executions:
            return  # the instance finished; its outstanding work items were dropped with it
        started = time.perf_counter()
        try:
            if info is None:
                raise LookupError(
                    f"The function '{item.name}' doesn't exist, is disabled, or is not an activity function."
                )
            result = self._call_sync(info, item)
        except BaseException as exc:
            self._done(item, started, None, exc)
            return
        self._done(item, started, result, None)

    def _call_sync(self, info: FunctionInfo, item: ActivityRow) -> str:
        """Run a sync activity; past functionTimeout its attempt fails and the thread is abandoned (the real host
        recycles the worker process instead, which a thread cannot be)."""
        timeout = self.engine.settings.function_timeout
        if timeout is None:
            return run_sync_activity(info, item.input)
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["result"] = run_sync_activity(info, item.input)
            except BaseException as exc:
                outcome["error"] = exc

        runner = threading.Thread(target=call, name=f"devhost-activity-{item.name}", daemon=True)
        runner.start()
        runner.join(timeout)
        if runner.is_alive():
            self._log_timeout(item, timeout)
            raise FunctionTimeoutException(item.name, timeout)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def _log_timeout(self, item: ActivityRow, timeout: float) -> None:
        logs.error(
            f"Timeout value of {timespan(timeout)} exceeded by function '{item.name}' "
            f"(instance {item.instance_id}). Initiating cancellation."
        )

    async def _run_async(self, info: FunctionInfo, item: ActivityRow) -> None:
        try:
            if self.engine.stopping:
                return
            started = time.perf_counter()
            timeout = self.engine.settings.function_timeout
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
                if self.engine.stopping or (task is not None and task.cancelling()):
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
        stats = self.engine.stats
        stats.activities_run += 1
        stats.payload(len(item.input or "") if error is not None else max(len(item.input or ""), len(result or "")))
        stats.activity_seconds += elapsed
        self.completed.append((item.id, self.engine.new_message(item.instance_id, item.execution_id, event)))
        self._request_flush()

    def _request_flush(self) -> None:
        """Wake the flush loop once per batch, not once per result, to keep cross-thread calls rare."""
        with self._flush_lock:
            if self._flush_requested:
                return
            self._flush_requested = True
        assert self.engine.loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed during shutdown
            self.engine.loop.call_soon_threadsafe(self.flush_wakeup.set)

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
            await self.engine.db(self.engine.store.complete_activities, batch)
            self.engine.stats.completion_batches += 1
            self.engine.stats.completions_committed += len(batch)
            self._deliver_committed(batch)

    def _deliver_committed(self, batch: list[tuple[int, MessageRow]]) -> None:
        for _, message in batch:
            left = self.outstanding.get(message.instance_id, 0) - 1
            if left > 0:
                self.outstanding[message.instance_id] = left
            else:
                self.outstanding.pop(message.instance_id, None)
            if message.execution_id in self.engine.finished_executions:
                continue
            self.engine.deliver(message)


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
