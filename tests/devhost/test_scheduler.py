"""The scheduler's rules, in process: batching, concurrency bounds, retries, durable timers, suspension, terminate.

Each test runs devhost's real engine (dispatchers, timers, SQLite store in memory) over a small DFApp through the
real SDK; nothing is mocked. Counts are asserted, never durations.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func
from inprocess import finished, history, kinds, reached, running_engine, start

from devhost import history as h
from devhost.decisions import ExecutionState
from devhost.history import EventType
from devhost.instances import Runtime, apply_control, new_instance
from devhost.model import MessageRow, RuntimeStatus
from devhost.triage import triage


class Gauge:
    """How many callers are inside at once, and the most there ever were."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> Gauge:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


def fan_out_app(gauge: Gauge) -> df.DFApp:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.activity_trigger(input_name="x")
    def slow_sync(x: int) -> int:
        with gauge:
            time.sleep(0.03)
        return x

    @app.activity_trigger(input_name="x")
    async def slow_async(x: int) -> int:
        with gauge:
            await asyncio.sleep(0.03)
        return x

    @app.orchestration_trigger(context_name="context")
    def fan_out(context: df.DurableOrchestrationContext):
        n = context.get_input()["n"]
        calls = [context.call_activity("slow_sync" if i % 2 else "slow_async", i) for i in range(n)]
        return sum((yield context.task_all(calls)))

    return app


def test_a_fan_out_is_bounded_by_max_concurrent_activities_over_sync_and_async_together():
    gauge = Gauge()

    async def run() -> None:
        async with running_engine(fan_out_app(gauge), max_concurrent_activities=3) as engine:
            await start(engine, "fan_out", "f1", {"n": 24})
            row = await finished(engine, "f1")
            assert row.status is RuntimeStatus.COMPLETED and row.output == str(sum(range(24)))
            assert engine.stats.activities_run == 24

    asyncio.run(run())
    assert gauge.most == 3  # 24 calls waiting for 3 slots: the bound is reached and never passed


def test_completions_that_arrive_during_an_episode_are_delivered_together():
    async def run() -> None:
        async with running_engine(fan_out_app(Gauge()), max_concurrent_activities=8) as engine:
            await start(engine, "fan_out", "f2", {"n": 40})
            row = await finished(engine, "f2")
            assert row.status is RuntimeStatus.COMPLETED
            stats = engine.stats
            assert stats.events_delivered == 41  # ExecutionStarted and 40 results, each delivered once
            assert stats.episodes < stats.events_delivered  # some episodes took several results at once
            events = await history(engine, "f2")
            assert kinds(events).count(EventType.TaskCompleted) == 40

    asyncio.run(run())


def orchestrator_app(gauge: Gauge, seen: dict[str, Gauge]) -> df.DFApp:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.activity_trigger(input_name="x")
    def echo(x: int) -> int:
        return x

    @app.orchestration_trigger(context_name="context")
    def stepper(context: df.DurableOrchestrationContext):
        # Replay runs here on an orchestrator thread: count episodes in progress, overall and per instance.
        mine = seen.setdefault(context.instance_id, Gauge())
        with gauge, mine:
            time.sleep(0.02)
        total = 0
        for i in range(3):
            total += yield context.call_activity("echo", i)
        return total

    return app


def test_episodes_are_bounded_by_max_concurrent_orchestrators_and_never_two_of_one_instance():
    gauge = Gauge()
    seen: dict[str, Gauge] = {}

    async def run() -> None:
        async with running_engine(orchestrator_app(gauge, seen), max_concurrent_orchestrators=2) as engine:
            for i in range(6):
                await start(engine, "stepper", f"s{i}")
            for i in range(6):
                row = await finished(engine, f"s{i}")
                assert row.status is RuntimeStatus.COMPLETED and row.output == "3"

    asyncio.run(run())
    assert gauge.most == 2
    assert sorted(seen) == [f"s{i}" for i in range(6)]
    assert all(g.most == 1 for g in seen.values())


def retry_app(calls: list[str]) -> df.DFApp:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.activity_trigger(input_name="x")
    def fails_twice(x: str) -> str:
        calls.append(x)
        if len(calls) <= 2:
            raise RuntimeError(f"attempt {len(calls)} failed")
        return f"{x} after {len(calls)}"

    @app.orchestration_trigger(context_name="context")
    def retrying(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(first_retry_interval_in_milliseconds=50, max_number_of_attempts=3)
        return (yield context.call_activity_with_retry("fails_twice", options, "job"))

    @app.orchestration_trigger(context_name="context")
    def gives_up(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(first_retry_interval_in_milliseconds=50, max_number_of_attempts=2)
        return (yield context.call_activity_with_retry("fails_twice", options, "job"))

    return app


def test_a_failed_attempt_gets_a_retry_timer_then_the_next_attempt():
    calls: list[str] = []

    async def run() -> None:
        async with running_engine(retry_app(calls)) as engine:
            await start(engine, "retrying", "r1")
            row = await finished(engine, "r1")
            assert row.status is RuntimeStatus.COMPLETED and row.output == '"job after 3"'
            assert kinds(await history(engine, "r1")) == [
                EventType.ExecutionStarted,
                EventType.TaskScheduled,
                EventType.TaskFailed,
                EventType.TimerCreated,
                EventType.TimerFired,
                EventType.TaskScheduled,
                EventType.TaskFailed,
                EventType.TimerCreated,
                EventType.TimerFired,
                EventType.TaskScheduled,
                EventType.TaskCompleted,
                EventType.ExecutionCompleted,
            ]

    asyncio.run(run())
    assert calls == ["job", "job", "job"]


def test_after_the_last_attempt_the_final_timer_delivers_the_failure():
    calls: list[str] = []

    async def run() -> None:
        async with running_engine(retry_app(calls)) as engine:
            await start(engine, "gives_up", "r2")
            row = await finished(engine, "r2")
            assert row.status is RuntimeStatus.FAILED
            assert "attempt 2 failed" in (row.output or "")
            events = await history(engine, "r2")
            # Two attempts, each failure followed by a timer; the second timer fires at once (FireAt = now, §8).
            assert kinds(events).count(EventType.TaskScheduled) == 2
            assert kinds(events).count(EventType.TimerFired) == 2
            created = [e for e in events if e["EventType"] == EventType.TimerCreated]
            failed = [e for e in events if e["EventType"] == EventType.TaskFailed]
            assert h.parse_timestamp(created[-1]["FireAt"]) <= h.parse_timestamp(failed[-1]["Timestamp"]) + timedelta(
                seconds=1
            )

    asyncio.run(run())
    assert calls == ["job", "job"]


def timer_app() -> df.DFApp:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.orchestration_trigger(context_name="context")
    def sleeper(context: df.DurableOrchestrationContext):
        yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=300))
        return "woke"

    @app.orchestration_trigger(context_name="context")
    def waiter(context: df.DurableOrchestrationContext):
        return (yield context.wait_for_external_event("Go"))

    return app


def test_a_durable_timer_fires_no_earlier_than_its_fire_at():
    async def run() -> None:
        async with running_engine(timer_app()) as engine:
            await start(engine, "sleeper", "t1")
            row = await finished(engine, "t1")
            assert row.status is RuntimeStatus.COMPLETED and row.output == '"woke"'
            events = await history(engine, "t1")
            created = next(e for e in events if e["EventType"] == EventType.TimerCreated)
            fired = events.index(next(e for e in events if e["EventType"] == EventType.TimerFired))
            episode_start = next(e for e in reversed(events[:fired]) if e["EventType"] == EventType.OrchestratorStarted)
            assert h.parse_timestamp(episode_start["Timestamp"]) >= h.parse_timestamp(created["FireAt"])

    asyncio.run(run())


def test_a_suspended_instance_holds_its_events_until_resumed_and_terminate_ends_it():
    async def run() -> None:
        async with running_engine(timer_app()) as engine:
            await start(engine, "waiter", "w1")
            await reached(engine, "w1", {RuntimeStatus.RUNNING})
            stamp = h.format_timestamp(h.utcnow())
            await engine.send_event("w1", None, h.execution_suspended(stamp, "hold"))
            await reached(engine, "w1", {RuntimeStatus.SUSPENDED})
            await engine.send_event("w1", None, h.event_raised(stamp, "Go", '"held"'))
            await asyncio.sleep(0.2)
            row = await engine.get_instance("w1")
            assert row is not None and row.status is RuntimeStatus.SUSPENDED and row.suspended
            assert EventType.EventRaised not in kinds(await history(engine, "w1"))
            await engine.send_event("w1", None, h.execution_resumed(stamp, "go"))
            row = await finished(engine, "w1")
            assert row.status is RuntimeStatus.COMPLETED and row.output == '"held"' and not row.suspended

            await start(engine, "waiter", "w2")
            await reached(engine, "w2", {RuntimeStatus.RUNNING})
            await engine.send_event("w2", None, h.execution_terminated(stamp, "stop"))
            row = await finished(engine, "w2")
            assert row.status is RuntimeStatus.TERMINATED and row.output == "stop"

    asyncio.run(run())


# ---- triage, on its own -------------------------------------------------------------------------------


def _message(id_: int, event: dict, execution: str | None = "e1") -> MessageRow:
    return MessageRow(id_, "i1", execution, 0.0, event)


def _runtime(started: bool, suspended: bool = False) -> Runtime:
    row = new_instance("i1", "orch", "e1", None, h.utcnow())
    row.suspended = suspended
    stamp = h.format_timestamp(h.utcnow())
    events = [h.orchestrator_started(stamp), h.execution_started(stamp, "orch", None, "i1", "e1")] if started else []
    return Runtime(row=row, history_json=[json.dumps(e) for e in events], state=ExecutionState())


STAMP = "2026-12-01T00:00:00.0000000Z"


def test_triage_holds_what_arrives_while_suspended_and_delivers_it_on_resume():
    runtime = _runtime(started=True)
    suspend = _message(1, h.execution_suspended(STAMP, None))
    raised = _message(2, h.event_raised(STAMP, "Go", "1"), None)
    first = triage(runtime, [suspend, raised], [])
    assert first.suspended and first.control == [suspend] and first.deliver == []
    assert runtime.held == [raised]
    runtime.row.suspended = first.suspended  # what the dispatcher records once the suspension is committed
    resume = _message(3, h.execution_resumed(STAMP, None))
    second = triage(runtime, [resume], [])
    assert not second.suspended and second.control == [resume] and second.deliver == [raised]
    assert runtime.held == []


def test_triage_drops_repeated_suspends_and_messages_of_another_execution():
    runtime = _runtime(started=True)
    suspend = _message(1, h.execution_suspended(STAMP, None))
    again = _message(2, h.execution_suspended(STAMP, None))
    runtime.held = [_message(3, h.event_raised(STAMP, "Go", "1"), "old-execution")]
    result = triage(runtime, [suspend, again], [9])
    assert result.control == [suspend]
    assert sorted(result.stale) == [2, 3, 9]


def test_triage_puts_execution_started_first_and_holds_everything_before_it():
    runtime = _runtime(started=False)
    raised = _message(1, h.event_raised(STAMP, "Go", "1"), None)
    early = triage(runtime, [raised], [])
    assert early.deliver == [] and runtime.held == [raised]  # nothing runs before ExecutionStarted
    started = _message(2, h.execution_started(STAMP, "orch", None, "i1", "e1"))
    result = triage(runtime, [started], [])
    assert result.deliver == [started, raised]
    assert runtime.held == []


def test_triage_treats_a_second_execution_started_as_stale():
    runtime = _runtime(started=True)
    duplicate = _message(1, h.execution_started(STAMP, "orch", None, "i1", "e1"))
    raised = _message(2, h.event_raised(STAMP, "Go", "1"), None)
    result = triage(runtime, [duplicate, raised], [])
    assert result.deliver == [raised] and result.stale == [1]


def test_suspending_an_instance_between_executions_shows_it_suspended_and_resuming_shows_it_pending():
    """After continue-as-new and before the new execution's first episode the instance is ContinuedAsNew; a suspend
    then is recorded as Suspended (it is live), and a resume before it started makes it Pending again."""
    row = new_instance("i1", "orch", "e2", None, h.utcnow())
    row.status = RuntimeStatus.CONTINUED_AS_NEW
    apply_control(row, suspended=True, started=False, now=h.utcnow())
    assert (row.status, row.suspended) == (RuntimeStatus.SUSPENDED, True)
    apply_control(row, suspended=False, started=False, now=h.utcnow())
    assert (row.status, row.suspended) == (RuntimeStatus.PENDING, False)
    finished_row = new_instance("i2", "orch", "e1", None, h.utcnow())
    finished_row.status = RuntimeStatus.COMPLETED
    apply_control(finished_row, suspended=True, started=True, now=h.utcnow())
    assert finished_row.status is RuntimeStatus.COMPLETED  # a finished instance's status never changes
