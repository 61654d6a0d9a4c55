"""Drive a backup, restore or verify in this process: the real plan deciding, the app's real activities doing
the work.

No Durable host is involved: each group of calls the plan asks for is run in turn through the activity
functions, called as the worker calls them (``worker.call_activity``), and every result goes back to the plan,
across generations. It tests the plans and the activities together against a real Azurite; the orchestrators
themselves are tested through the SDK's replay and end to end under devhost.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from blueprints import backup, prune, recovery
from blueprints.plan_loop import Plan, reason
from site_backup.plan import Call, PlanState, Step
from site_backup.plan import Plan as BackupPlan
from site_backup.prune import work_area
from site_backup.prune_plan import PrunePlan, PruneState
from site_backup.recovery_plan import RecoveryPlan, RecoveryState
from tests.support.worker import call_activity


@dataclass
class LocalRun:
    """How a local run went: its output or error, its last status, and every call made."""

    output: Any = None
    error: str | None = None
    status: dict[str, Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    generations: int = 0
    run: str = ""


def run_locally(request: object, run: str | None = None, max_generations: int = 1000) -> LocalRun:
    """Run a whole backup of ``request``; failures of the backup end up in ``error``, not raised."""
    run = run or uuid.uuid4().hex

    def plan(payload: object) -> Plan:
        return BackupPlan(PlanState.from_input(payload), run, lambda: datetime.now(UTC))

    return _drive(plan, request, backup.ACTIVITY, run, max_generations)


def restore_locally(request: dict[str, Any]) -> LocalRun:
    return _recover_locally("restore", request)


def verify_locally(request: dict[str, Any]) -> LocalRun:
    return _recover_locally("verify", request)


def _recover_locally(kind: str, request: dict[str, Any]) -> LocalRun:
    def plan(payload: object) -> Plan:
        return RecoveryPlan(RecoveryState.from_input(kind, payload))

    return _drive(plan, request, recovery.ACTIVITY, kind, 1000)


def prune_locally(request: dict[str, Any], instance: str | None = None) -> LocalRun:
    """Run a whole prune of ``request`` (as the starter checked it: ``checked_prune``)."""
    instance = instance or uuid.uuid4().hex
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def plan(payload: object) -> Plan:
        return PrunePlan(PruneState.from_input(payload), work_area(instance), started)

    return _drive(plan, request, prune.ACTIVITY, instance, 1000)


def _drive(
    make: Callable[[object], Plan], request: object, activities: Mapping[StrEnum, str], run: str, generations: int
) -> LocalRun:
    outcome = LocalRun(run=run)
    payload: object = request
    for _ in range(generations):
        outcome.generations += 1
        plan = make(payload)
        while groups := plan.next_groups():
            for group in groups:
                for call in group:
                    outcome.calls.append(call)
                    result, error = _call(call, activities)
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
    raise AssertionError(f"no end after {generations} generations")


def _call(call: Call, activities: Mapping[StrEnum, str]) -> tuple[Any, str | None]:
    if call.step is Step.WAIT:  # a durable timer: here it fires at once
        return None, None
    name = activities[call.step]
    try:
        return json.loads(call_activity(name, json.dumps(call.input))), None
    except Exception as exc:  # an activity that fails for good, as the host reports it to the orchestrator
        return None, reason(Exception(f"Activity function '{name}' failed: {type(exc).__name__}: {exc}"), name)
