"""A simulated Durable host for orchestrator tests: the real SDK replays every episode, the host side follows
the protocol reference, and activities are plain Python functions.

Per episode the host appends ``OrchestratorStarted`` and the delivered events, replays the whole history
through the SDK (``worker.call_orchestrator``), numbers the new actions (§5.4, §5.5), writes their
``TaskScheduled`` decisions and ``OrchestratorCompleted``. With-retry tasks follow DTFx's interceptor (§8):
every failure gets a retry timer (after the last attempt one with ``FireAt = now``), a fired timer with attempts
left gets a new attempt. Events that only reserve an id go first in an episode, as the SDK numbers in history
order. Continue-as-new starts a new execution with a fresh history. Which completions arrive in which episode
is chosen by a seeded random generator, so a test can try many host-shaped orderings.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.histories import History, atoms
from tests.support.worker import call_orchestrator

Activity = Callable[[str, Any, int], Any]  # (name, input, attempt) -> result, or raises to fail the attempt
PAYLOAD_LIMIT = 45 * 1024


@dataclass
class _Attempt:
    seq: int
    name: str
    input_text: str
    attempts: int
    attempt: int = 1
    timer: int | None = None


@dataclass
class Execution:
    """What one execution looked like: its history length, its largest payloads, how it ended."""

    events: int = 0
    actions: int = 0
    timers: int = 0
    largest_payload: int = 0
    custom_statuses: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SimResult:
    outcome: str  # "completed" or "failed"
    output: Any
    error: str | None
    executions: list[Execution]
    calls: list[tuple[str, Any]]


class SimHost:
    def __init__(self, orchestrator: str, activity: Activity, seed: int = 0, max_batch: int | None = None) -> None:
        self.orchestrator = orchestrator
        self.activity = activity
        self.random = random.Random(seed)
        self.max_batch = max_batch
        self.calls: list[tuple[str, Any]] = []
        self.clock = 0  # durable timers fired so far: activities can model an outage that passes with time

    def run(self, orchestration_input: Any, max_episodes: int = 100_000) -> SimResult:
        executions: list[Execution] = []
        payload = orchestration_input
        for _ in range(1000):
            execution = Execution()
            executions.append(execution)
            ended, value = self._execution(payload, execution, max_episodes)
            if ended == "continued":
                payload = value
                continue
            output, error = (value, None) if ended == "completed" else (None, value)
            return SimResult(ended, output, error, executions, self.calls)
        raise AssertionError("more than 1000 executions")

    def _execution(self, payload: Any, execution: Execution, max_episodes: int) -> tuple[str, Any]:
        history = History(self.orchestrator, payload)
        execution.largest_payload = max(execution.largest_payload, len(json.dumps(payload)))
        seen = 0
        next_id = 0
        pending: list[tuple[int, dict[str, Any]]] = []  # (order, event) waiting to be delivered
        attempts: dict[int, _Attempt] = {}  # by the seq (or timer id) whose event is awaited
        for _ in range(max_episodes):
            outcome, state = call_orchestrator(self.orchestrator, history.context())
            assert outcome != "crashed", state
            status = state.get("customStatus")
            if status is not None:
                execution.custom_statuses.append(status)
                execution.largest_payload = max(execution.largest_payload, len(json.dumps(status)))
            if outcome == "failed":
                execution.events = len(history.events)
                return "failed", state["error"]
            flat = atoms(state["actions"][0])
            execution.actions = len(flat)
            for atom in flat[seen:]:
                if atom["actionType"] == 4:
                    execution.events = len(history.events)
                    return "continued", json.loads(atom["input"])
                assert atom["actionType"] in (0, 1, 5), atom
                seq, next_id = next_id, next_id + 1
                if atom["actionType"] == 5:  # a durable timer; the simulation fires it whenever it likes
                    history.timer_created(seq, atom["fireAt"])
                    execution.timers += 1
                    pending.append((0, {"kind": "user_timer", "seq": seq, "fire_at": atom["fireAt"]}))
                    continue
                history.task_scheduled(seq, atom["functionName"], atom["input"])
                retry = atom.get("retryOptions", {}).get("maxNumberOfAttempts", 1)
                attempt = _Attempt(seq, atom["functionName"], atom["input"], retry)
                attempts[seq] = attempt
                pending.append(self._run(attempt))
                execution.largest_payload = max(execution.largest_payload, len(atom["input"]))
            seen = len(flat)
            if state.get("isDone"):
                execution.events = len(history.events)
                return "completed", state.get("output")
            assert pending, "the orchestration waits for nothing: it would hang"
            history.episode()
            count = self.random.randint(1, min(len(pending), self.max_batch or len(pending)))
            batch = [pending.pop(self.random.randrange(len(pending))) for _ in range(count)]
            # Id-reserving events first (failures of with-retry tasks, retry timers with attempts left).
            batch.sort(key=lambda item: 0 if _reserves(item[1], attempts) else 1)
            for _, event in batch:
                next_id = self._deliver(history, event, attempts, pending, next_id)
        raise AssertionError(f"no end after {max_episodes} episodes")

    def _run(self, attempt: _Attempt) -> tuple[int, dict[str, Any]]:
        value = json.loads(attempt.input_text)
        self.calls.append((attempt.name, value))
        try:
            result = self.activity(attempt.name, value, attempt.attempt)
        except Exception as exc:
            return 0, {"kind": "failed", "seq": attempt.seq, "message": f"{type(exc).__name__}: {exc}"}
        return 0, {"kind": "completed", "seq": attempt.seq, "result": result}

    def _deliver(
        self,
        history: History,
        event: dict[str, Any],
        attempts: dict[int, _Attempt],
        pending: list[tuple[int, dict[str, Any]]],
        next_id: int,
    ) -> int:
        if event["kind"] == "user_timer":
            history.timer_fired(event["seq"], event["fire_at"])
            self.clock += 1
        elif event["kind"] == "completed":
            history.task_completed(event["seq"], event["result"])
            attempts.pop(event["seq"])
        elif event["kind"] == "failed":
            attempt = attempts.pop(event["seq"])
            history.task_failed(event["seq"], attempt.name, event["message"])
            attempt.timer, next_id = next_id, next_id + 1
            history.timer_created(attempt.timer, history.now())
            attempts[attempt.timer] = attempt
            pending.append((0, {"kind": "timer", "seq": attempt.timer}))
        else:
            attempt = attempts.pop(event["seq"])
            history.timer_fired(event["seq"], history.now())
            if attempt.attempt < attempt.attempts:
                attempt.attempt += 1
                attempt.seq, next_id = next_id, next_id + 1
                history.task_scheduled(attempt.seq, attempt.name, attempt.input_text)
                attempts[attempt.seq] = attempt
                pending.append(self._run(attempt))
        return next_id


def _reserves(event: dict[str, Any], attempts: dict[int, _Attempt]) -> bool:
    if event["kind"] == "user_timer":
        return False
    if event["kind"] == "failed":
        return True
    if event["kind"] == "timer":
        attempt = attempts[event["seq"]]
        return attempt.attempt < attempt.attempts
    return False
