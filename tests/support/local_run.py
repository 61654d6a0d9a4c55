"""Drive a backup in this process: the real ``Plan`` deciding, the app's real activities doing the work.

No Durable host is involved: each group of calls the plan asks for is run in turn through the activity
functions, called as the worker calls them (``worker.call_activity``), and every result goes back to the plan,
across generations. It tests the plan and the activities together against a real Azurite; the orchestrator
itself is tested through the SDK's replay and end to end under devhost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from blueprints.backup import ACTIVITY, _reason
from site_backup.plan import Call, Plan, PlanState, Step
from tests.support.worker import call_activity


@dataclass
class LocalRun:
    """How a local backup went: its output or error, its last status, and every call made."""

    output: int | None = None
    error: str | None = None
    status: dict[str, Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    generations: int = 0


def run_locally(request: object, run: str = "local-run", max_generations: int = 1000) -> LocalRun:
    """Run a whole backup of ``request``; failures of the backup end up in ``error``, not raised."""
    outcome = LocalRun()
    payload: object = request
    for _ in range(max_generations):
        outcome.generations += 1
        plan = Plan(PlanState.from_input(payload), run)
        while groups := plan.next_groups():
            for group in groups:
                for call in group:
                    outcome.calls.append(call)
                    result, error = _call(call)
                    plan.record(call, result, error)
        outcome.status = plan.status()
        if plan.continues():
            payload = plan.continuation()
            json.dumps(payload)  # what the host stores must be JSON
            continue
        try:
            outcome.output = plan.output()
        except Exception as exc:
            outcome.error = str(exc)
        return outcome
    raise AssertionError(f"no end after {max_generations} generations")


def _call(call: Call) -> tuple[Any, str | None]:
    if call.step is Step.WAIT:  # a durable timer: here it fires at once
        return None, None
    name = ACTIVITY[call.step]
    try:
        return json.loads(call_activity(name, json.dumps(call.input))), None
    except Exception as exc:  # an activity that fails for good, as the host reports it to the orchestrator
        return None, _reason(Exception(f"Activity function '{name}' failed: {type(exc).__name__}: {exc}"), name)
