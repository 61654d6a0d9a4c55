"""The SDK's private parts that blueprints/durable_sdk.py relies on, checked against the installed SDK.

An upgrade of azure-functions-durable that moves them fails here, before any orchestrator runs.
"""

from __future__ import annotations

import json
from importlib.metadata import version

import azure.durable_functions as df
import pytest

from blueprints.durable_sdk import children_of, is_running, raw_input
from devhost import history as h


def _context(input_text: str) -> df.DurableOrchestrationContext:
    """A context as the host sends it for a first episode (§4), built with devhost's own event builders."""
    stamp = h.format_timestamp(h.utcnow())
    events = [h.orchestrator_started(stamp), h.execution_started(stamp, "orch", input_text, "i1", "e1")]
    body = h.context_json([json.dumps(e) for e in events], input_text, "i1", False, None)
    return df.DurableOrchestrationContext.from_json(body)


def test_the_sdk_is_the_major_version_the_adapter_was_written_for():
    assert version("azure-functions-durable").split(".")[0] == "1"


def test_children_of_a_task_all_are_its_tasks_in_order_and_still_running():
    context = _context(json.dumps({"n": 1}))
    tasks = [context.call_activity("a", i) for i in range(3)]
    group = context.task_all(tasks)
    assert children_of(group) == tasks
    assert all(is_running(t) for t in tasks) and is_running(group)


def test_children_of_a_single_task_is_refused():
    context = _context(json.dumps(None))
    with pytest.raises(TypeError, match="not a compound task"):
        children_of(context.call_activity("a", 1))


def test_raw_input_is_the_input_before_the_sdks_second_decoding():
    context = _context("/home/site/wwwroot")  # a bare path posted to the webhook: not JSON text
    with pytest.raises(ValueError):
        context.get_input()
    assert raw_input(context) == "/home/site/wwwroot"
