"""§16 golden vectors, §8 retry sequences and out-of-order numbering, replayed through devhost's history and
episode code against the real SDK."""

from __future__ import annotations

import json

import pytest
from replay_harness import Harness
from sample_app import build_index

from devhost import history as h
from devhost.history import EventType

INPUT_TEXT = json.dumps(json.dumps({"n": 3}))  # ExecutionStarted.Input of a Python-client start (§6)
A1_ACTION = {"actionType": 0, "functionName": "get_work_items", "input": '{"n": 3}'}
A2_ACTIONS = [
    [
        A1_ACTION,
        {
            "actionType": 12,
            "compoundActions": [{"actionType": 0, "functionName": "process_item", "input": str(i)} for i in (1, 2, 3)],
        },
    ]
]


@pytest.fixture(scope="module")
def index():
    return build_index()


def _fan_out(index) -> Harness:
    return Harness(index, "fan_out_fan_in", INPUT_TEXT)


def test_a1_first_episode_schedules_get_work_items(index):
    harness = _fan_out(index)
    result, outcome = harness.episode()
    assert result.state == {"isDone": False, "schemaVersion": 2, "actions": [[A1_ACTION]]}
    assert [d["EventType"] for d in outcome.decisions] == [EventType.TaskScheduled]
    decision = outcome.decisions[0]
    assert decision["EventId"] == 0 and decision["Name"] == "get_work_items"
    assert decision["Input"] == '["{\\"n\\": 3}"]'
    assert [(a.seq, a.name, a.input) for a in outcome.activities] == [(0, "get_work_items", '{"n": 3}')]
    assert outcome.status == "Running"


def test_a2_a3_out_of_order_completions_number_atoms_depth_first(index):
    harness = _fan_out(index)
    harness.episode()
    result, outcome = harness.episode([h.task_completed(harness.stamp, 0, "[1, 2, 3]")])
    assert result.state == {"isDone": False, "schemaVersion": 2, "actions": A2_ACTIONS}
    assert [(a.seq, a.input) for a in outcome.activities] == [(1, "1"), (2, "2"), (3, "3")]
    result, outcome = harness.episode(
        [h.task_completed(harness.stamp, 3, "30"), h.task_completed(harness.stamp, 1, "10")]
    )
    assert result.state == {"isDone": False, "schemaVersion": 2, "actions": A2_ACTIONS}
    assert outcome.decisions == [] and outcome.status == "Running"
    result, outcome = harness.episode([h.task_completed(harness.stamp, 2, "20")])
    assert result.state == {"isDone": True, "schemaVersion": 2, "actions": A2_ACTIONS, "output": 60}
    assert outcome.status == "Completed" and outcome.output == "60"


def test_a4_activity_failure_fails_the_orchestration(index):
    harness = _fan_out(index)
    harness.episode()
    harness.episode([h.task_completed(harness.stamp, 0, "[1, 2, 3]")])
    harness.episode([h.task_completed(harness.stamp, 1, "10")])
    details = h.dotnet_exception_details("ValueError: boom")
    result, outcome = harness.episode(
        [h.task_failed(harness.stamp, 2, "Activity function 'process_item' failed: ValueError: boom", details)]
    )
    assert result.kind == "failed"
    assert result.state["actions"] == A2_ACTIONS
    expected_error = f"Activity function 'process_item' failed: ValueError: boom \n {details}"
    assert result.state["error"] == expected_error
    assert outcome.status == "Failed"
    assert outcome.output == f"Orchestrator function 'fan_out_fan_in' failed: {expected_error}"


def test_a5_without_schema_keys_the_sdk_falls_back_to_v1(index):
    harness = Harness(index, "fan_out_fan_in", INPUT_TEXT, schema_keys=False)
    harness.episode()
    result, _ = harness.episode([h.task_completed(harness.stamp, 0, "[1, 2, 3]")])
    assert "schemaVersion" not in result.state
    assert result.state["actions"] == [[A1_ACTION], A2_ACTIONS[0][1]["compoundActions"]]


def test_b1_retry_succeeds_on_second_attempt(index):
    harness = Harness(index, "retry_orch", None)
    atom = {
        "actionType": 12,
        "compoundActions": [
            {
                "actionType": 1,
                "functionName": "flaky",
                "input": '"x"',
                "retryOptions": {"firstRetryIntervalInMilliseconds": 5000, "maxNumberOfAttempts": 2},
            }
        ],
    }
    result, outcome = harness.episode()
    assert result.state["actions"] == [[atom]]
    assert [(d["EventType"], d["EventId"]) for d in outcome.decisions] == [(EventType.TaskScheduled, 0)]

    details = h.dotnet_exception_details("RuntimeError: nope")
    result, outcome = harness.episode(
        [h.task_failed(harness.stamp, 0, "Activity function 'flaky' failed: RuntimeError: nope", details)]
    )
    assert result.state["actions"] == [[atom]] and not result.state["isDone"]
    timer = outcome.decisions[0]
    assert (timer["EventType"], timer["EventId"]) == (EventType.TimerCreated, 1)
    assert h.parse_timestamp(timer["FireAt"]) == h.parse_timestamp(harness.stamp) + __import__("datetime").timedelta(
        seconds=5
    )

    result, outcome = harness.episode([h.timer_fired(harness.stamp, 1, timer["FireAt"])])
    assert [(d["EventType"], d["EventId"], d["Name"]) for d in outcome.decisions] == [
        (EventType.TaskScheduled, 2, "flaky")
    ]
    result, outcome = harness.episode([h.task_completed(harness.stamp, 2, '"ok on attempt 2"')])
    assert result.state["isDone"] is True and result.state["output"] == "ok on attempt 2"
    assert outcome.status == "Completed"


def test_b1_retries_exhausted_get_a_final_immediate_timer(index):
    harness = Harness(index, "retry_orch", None)
    details = h.dotnet_exception_details("RuntimeError: nope")
    reason = "Activity function 'flaky' failed: RuntimeError: nope"
    harness.episode()
    _, outcome = harness.episode([h.task_failed(harness.stamp, 0, reason, details)])
    first_timer = outcome.decisions[0]
    harness.episode([h.timer_fired(harness.stamp, 1, first_timer["FireAt"])])
    result, outcome = harness.episode([h.task_failed(harness.stamp, 2, reason, details)])
    final = outcome.decisions[0]
    assert (final["EventType"], final["EventId"]) == (EventType.TimerCreated, 3)
    assert final["FireAt"] == harness.stamp  # FireAt = now after the last attempt
    assert outcome.status == "Running" and not result.state["isDone"]
    result, outcome = harness.episode([h.timer_fired(harness.stamp, 3, final["FireAt"])])
    assert result.kind == "failed"
    assert outcome.decisions == []
    assert outcome.status == "Failed"
    assert outcome.output == f"Orchestrator function 'retry_orch' failed: {reason} \n {details}"


@pytest.mark.parametrize(
    ("event_input", "approved"),
    [
        (json.dumps(json.dumps({"by": "bob"})), json.dumps({"by": "bob"})),
        (json.dumps({"by": "bob"}), {"by": "bob"}),
    ],
)
def test_b2_event_beats_timer_with_both_encodings(index, event_input, approved):
    harness = Harness(index, "approval", None)
    result, outcome = harness.episode()
    assert result.state["actions"] == [
        [
            {
                "actionType": 11,
                "compoundActions": [
                    {"actionType": 6, "externalEventName": "Approved", "reason": "ExternalEvent"},
                    {"actionType": 5, "fireAt": "2024-01-01T01:00:00.250000Z", "isCanceled": False},
                ],
            }
        ]
    ]
    assert [(d["EventType"], d["EventId"]) for d in outcome.decisions] == [(EventType.TimerCreated, 0)]
    result, outcome = harness.episode([h.event_raised(harness.stamp, "Approved", event_input)])
    assert result.state["output"] == {"approved": approved}
    assert result.state["customStatus"] == {"stage": "approved"}
    assert result.state["actions"][0][0]["compoundActions"][1]["isCanceled"] is True
    assert outcome.status == "Completed" and outcome.custom_status == json.dumps({"stage": "approved"})


def test_c_custom_status_travels_with_the_first_episode(index):
    harness = Harness(index, "custom", None)
    result, outcome = harness.episode()
    assert result.state == {
        "isDone": False,
        "schemaVersion": 2,
        "customStatus": "working",
        "actions": [[{"actionType": 0, "functionName": "a", "input": "null"}]],
    }
    assert outcome.custom_status_set and outcome.custom_status == '"working"'


def test_non_deterministic_prefix_fails_the_instance(index):
    harness = _fan_out(index)
    harness.episode()
    harness.state.prefix_hash = "0" * 32  # as if an earlier episode had scheduled something else
    _, outcome = harness.episode([h.task_completed(harness.stamp, 0, "[1, 2, 3]")])
    assert outcome.status == "Failed" and "Non-deterministic" in outcome.output


def test_unknown_activity_fails_with_the_extension_wording(index):
    harness = _fan_out(index)
    harness.index.activities.pop("process_item")
    try:
        harness.episode()
        _, outcome = harness.episode([h.task_completed(harness.stamp, 0, "[1]")])
    finally:
        harness.index.activities["process_item"] = harness.index.all["process_item"]
    assert outcome.status == "Failed"
    assert (
        "The function 'process_item' doesn't exist, is disabled, or is not an activity function. "
        "Additional info: The following are the known activity functions: 'a', 'flaky', "
        "'get_work_items'."
    ) in outcome.output


def test_max_orchestration_actions_fails_the_instance(index):
    harness = Harness(index, "fan_out_fan_in", INPUT_TEXT, max_actions=3)
    harness.episode()
    _, outcome = harness.episode([h.task_completed(harness.stamp, 0, "[1, 2, 3]")])
    assert outcome.status == "Failed"
    assert "Maximum number of orchestration actions (3) exceeded" in outcome.output
    assert outcome.activities == []
