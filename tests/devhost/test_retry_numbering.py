"""§5.5/§8: retry ids and new atoms numbered alike by devhost and the SDK when one episode delivers a with-retry
failure or retry timer together with a completion that makes the orchestrator yield new work.

The SDK numbers in history order; devhost puts the events that only reserve retry ids first in each episode
(`order_episode`), so both number the retries first. These tests deliver the events in the order that used to
break (the completion first) and check the ids the SDK waits on against the decisions devhost recorded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions.models.actions.NoOpAction import NoOpAction
from azure.durable_functions.models.DurableOrchestrationContext import DurableOrchestrationContext
from azure.durable_functions.models.Task import AtomicTask
from azure.durable_functions.models.TaskOrchestrationExecutor import TaskOrchestrationExecutor
from http_client import call, wait_for_status
from replay_harness import Harness
from sample_app import build_index

from devhost import history as h
from devhost.history import EventType
from tests.support.devhost_process import running_devhost

REASON = "Activity function 'flaky' failed: RuntimeError: nope"
DETAILS = h.dotnet_exception_details("RuntimeError: nope")
ISSUED = (EventType.TaskScheduled, EventType.TimerCreated, EventType.SubOrchestrationInstanceCreated)
SETTLED = {
    EventType.TaskCompleted: "TaskScheduledId",
    EventType.TaskFailed: "TaskScheduledId",
    EventType.SubOrchestrationInstanceCompleted: "TaskScheduledId",
    EventType.SubOrchestrationInstanceFailed: "TaskScheduledId",
    EventType.TimerFired: "TimerId",
}


@pytest.fixture(scope="module")
def index():
    return build_index()


def attempts_input(attempts: int) -> str:
    """ExecutionStarted.Input as a Python client's start stores it (double encoded, §6)."""
    return json.dumps(json.dumps(attempts))


def devhost_open_ids(history: list[dict[str, Any]]) -> dict[int, str]:
    """Ids devhost issued decisions for and has not delivered an outcome for: id -> "timer" or function name."""
    issued = {e["EventId"]: e.get("Name") or "timer" for e in history if e["EventType"] in ISSUED}
    settled = {e[SETTLED[e["EventType"]]] for e in history if e["EventType"] in SETTLED}
    return {seq: what for seq, what in issued.items() if seq not in settled}


def _sdk_task_name(task: Any) -> str:
    """What an SDK task stands for: a timer, or the function an (re-)attempt calls."""
    action = task._get_action()
    if isinstance(action, NoOpAction):  # RetryAbleTask's retry timer or re-attempt
        return "timer" if action.metadata == "-WithRetry timer" else task.parent.actions.function_name
    return getattr(action, "function_name", "timer")


def sdk_open_ids(harness: Harness) -> dict[int, str]:
    """Ids the real SDK waits on after replaying the recorded history (its own numbering, from open_tasks)."""
    context = DurableOrchestrationContext.from_json(harness.context([]))
    TaskOrchestrationExecutor().execute(context, context.histories, harness.info.callable.orchestrator_function)
    return {
        key: _sdk_task_name(task)
        for key, task in context.open_tasks.items()
        if isinstance(key, int) and isinstance(task, AtomicTask)
    }


def decisions(outcome: Any) -> list[tuple[int, int]]:
    return [(d["EventType"], d["EventId"]) for d in outcome.decisions]


def assert_numbering_agrees(harness: Harness) -> None:
    assert sdk_open_ids(harness) == devhost_open_ids(harness.history)


def test_failure_delivered_after_an_unblocking_completion_reserves_the_timer_first(index):
    harness = Harness(index, "retry_race", attempts_input(2))
    _, outcome = harness.episode()
    assert decisions(outcome) == [(EventType.TaskScheduled, 0), (EventType.TaskScheduled, 1)]

    # Arrival order: the plain task (1) completes, then the with-retry attempt (0) fails.
    _, outcome = harness.episode(
        [h.task_completed(harness.stamp, 1, '"plain"'), h.task_failed(harness.stamp, 0, REASON, DETAILS)]
    )
    assert_numbering_agrees(harness)
    assert decisions(outcome) == [(EventType.TimerCreated, 2), (EventType.TaskScheduled, 3)]
    assert [(a.seq, a.name) for a in outcome.activities] == [(3, "process_item")]
    assert [e["EventType"] for e in harness.last_delivered] == [EventType.TaskFailed, EventType.TaskCompleted]

    timer = outcome.decisions[0]
    _, outcome = harness.episode(
        [h.task_completed(harness.stamp, 3, "40"), h.timer_fired(harness.stamp, 2, timer["FireAt"])]
    )
    assert decisions(outcome) == [(EventType.TaskScheduled, 4)]
    assert [(a.seq, a.name) for a in outcome.activities] == [(4, "flaky")]
    assert_numbering_agrees(harness)

    result, outcome = harness.episode([h.task_completed(harness.stamp, 4, '"ok on attempt 2"')])
    assert outcome.status == "Completed"
    assert result.state["output"] == ["plain", 40, "ok on attempt 2"]


def test_last_failure_with_an_unblocking_completion_reserves_the_final_timer_first(index):
    harness = Harness(index, "retry_race", attempts_input(1))
    harness.episode()
    _, outcome = harness.episode(
        [h.task_completed(harness.stamp, 1, '"plain"'), h.task_failed(harness.stamp, 0, REASON, DETAILS)]
    )
    assert decisions(outcome) == [(EventType.TimerCreated, 2), (EventType.TaskScheduled, 3)]
    assert outcome.decisions[0]["FireAt"] == harness.stamp  # the final timer, FireAt = now (§8)
    assert_numbering_agrees(harness)

    # The final timer delivers the failure: it may resume user code, so it keeps its place after the completion.
    result, outcome = harness.episode(
        [h.task_completed(harness.stamp, 3, "40"), h.timer_fired(harness.stamp, 2, outcome.decisions[0]["FireAt"])]
    )
    assert [e["EventType"] for e in harness.last_delivered] == [EventType.TaskCompleted, EventType.TimerFired]
    assert outcome.status == "Completed"
    assert result.state["output"] == ["plain", 40, f"gave up: {REASON}"]


def test_retry_timer_delivered_after_an_unblocking_completion_reserves_the_reattempt_first(index):
    harness = Harness(index, "retry_race", attempts_input(2))
    harness.episode()
    _, outcome = harness.episode([h.task_failed(harness.stamp, 0, REASON, DETAILS)])
    timer = outcome.decisions[0]
    assert (timer["EventType"], timer["EventId"]) == (EventType.TimerCreated, 2)

    _, outcome = harness.episode(
        [h.task_completed(harness.stamp, 1, '"plain"'), h.timer_fired(harness.stamp, 2, timer["FireAt"])]
    )
    assert_numbering_agrees(harness)
    assert decisions(outcome) == [(EventType.TaskScheduled, 3), (EventType.TaskScheduled, 4)]
    assert [(a.seq, a.name) for a in outcome.activities] == [(3, "flaky"), (4, "process_item")]
    assert [e["EventType"] for e in harness.last_delivered] == [EventType.TimerFired, EventType.TaskCompleted]

    result, outcome = harness.episode(
        [h.task_completed(harness.stamp, 4, "40"), h.task_completed(harness.stamp, 3, '"ok on attempt 2"')]
    )
    assert outcome.status == "Completed"
    assert result.state["output"] == ["plain", 40, "ok on attempt 2"]


# ---- end to end over HTTP ------------------------------------------------------------------------------------

APP = Path(__file__).parent / "apps" / "patterns"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    hub = tmp_path_factory.mktemp("hub") / "hub.sqlite"
    with running_devhost(APP, hub=hub) as process:
        yield process


def _until(check: Any, what: str, timeout: float = 60.0) -> None:
    """Poll `check` until it is true (bounded; the failure says what never happened)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen")
        time.sleep(0.02)


def _committed(host: Any) -> int:
    return int(call("GET", f"{host.base_url}/admin/devhost/stats").json()["completions_committed"])


@pytest.mark.parametrize(
    ("fail_times", "max_attempts", "outcome"),
    [
        (1, 2, "ok on attempt 2"),
        (5, 1, "gave up: Activity function 'gated_flaky' failed: RuntimeError: nope 1"),
    ],
)
def test_retry_failure_and_unblocking_completion_in_one_episode_complete(
    host, tmp_path, fail_times, max_attempts, outcome
):
    wh = f"{host.base_url}/runtime/webhooks/durabletask"
    payload = {"dir": str(tmp_path), "fail_times": fail_times, "max_attempts": max_attempts}
    instance_id = call("POST", f"{wh}/orchestrators/retry_race", payload).json()["id"]
    _until(lambda: (tmp_path / "flaky.started").exists() and (tmp_path / "plain.started").exists(), "both starts")

    # Hold both results while suspended, so that they arrive plain first and are delivered in one episode.
    assert call("POST", f"{wh}/instances/{instance_id}/suspend").status == 202
    wait_for_status(host.base_url, instance_id, ("Suspended",))
    base = _committed(host)
    (tmp_path / "plain.go").write_text("1")
    _until(lambda: _committed(host) >= base + 1, "the plain result's commit")
    (tmp_path / "flaky.go").write_text("1")
    _until(lambda: _committed(host) >= base + 2, "the failed attempt's commit")
    assert call("POST", f"{wh}/instances/{instance_id}/resume").status == 202

    status = wait_for_status(host.base_url, instance_id)
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == ["plain", 42, outcome]
    events = call("GET", f"{wh}/instances/{instance_id}?showHistory=true").json()["historyEvents"]
    kinds = [e["EventType"] for e in events]
    resumed = kinds.index("ExecutionResumed")
    # Recorded with the reserving failure first (TaskScheduled rows are merged into completions, §13.5).
    assert kinds[resumed + 1 : resumed + 4] == ["TaskFailed", "TaskCompleted", "TimerCreated"]
