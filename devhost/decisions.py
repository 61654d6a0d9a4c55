"""Turn one orchestrator response into host decisions: new atoms, sequence numbers and host-side retries.

This is the part of the extension's OutOfProcOrchestrationShim and DTFx's RetryInterceptor that devhost needs
(§5.4, §5.5, §8). It is pure: the engine feeds it the delivered events and the SDK's state and persists what
it returns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any, TypeVar

from . import history as h
from .errors import CALL_HTTP_UNSUPPORTED, ENTITIES_UNSUPPORTED, function_not_found
from .history import EventType
from .model import RuntimeStatus

MAX_RETRY_INTERVAL_MS = 6 * 24 * 3600 * 1000  # DTFx default: 6 days
PAYLOAD_WARN_BYTES = 45 * 1024
CUSTOM_STATUS_WARN_BYTES = 16 * 1024


class ActionType(IntEnum):
    """The SDK's action types (its models.actions.ActionType, §5.3); 10 is the extension's scheduled signal."""

    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    SCHEDULED_SIGNAL_ENTITY = 10
    WHEN_ANY = 11
    WHEN_ALL = 12


_ACTIVITY_TYPES = (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY)
_SUB_TYPES = (ActionType.CALL_SUB_ORCHESTRATOR, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY)
_ENTITY_TYPES = (ActionType.CALL_ENTITY, ActionType.SIGNAL_ENTITY, ActionType.SCHEDULED_SIGNAL_ENTITY)
_CONTAINER_TYPES = (ActionType.WHEN_ANY, ActionType.WHEN_ALL)

_T = TypeVar("_T")


@dataclass
class RetryState:
    """Host-side retry bookkeeping for one with-retry atom; keyed by the seq it currently waits on."""

    kind: str  # "task" or "sub"
    name: str
    input: str | None
    first_ms: float
    max_attempts: int
    backoff: float = 1.0
    max_interval_ms: float = MAX_RETRY_INTERVAL_MS
    attempts: int = 1
    child_id: str | None = None  # an explicit sub-orchestration instance id


@dataclass
class ExecutionState:
    """What the host remembers about one execution between episodes (persisted with each episode)."""

    next_seq: int = 0
    atom_count: int = 0
    prefix_hash: str = ""
    retries: dict[int, RetryState] = field(default_factory=dict)

    def take_seq(self) -> int:
        """The next sequence number of this execution (one counter for every kind of decision, §5.5)."""
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def to_json(self) -> str:
        data = {
            "next_seq": self.next_seq,
            "atom_count": self.atom_count,
            "prefix_hash": self.prefix_hash,
            "retries": {str(k): asdict(v) for k, v in self.retries.items()},
        }
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | None) -> ExecutionState:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            next_seq=data["next_seq"],
            atom_count=data["atom_count"],
            prefix_hash=data["prefix_hash"],
            retries={int(k): RetryState(**v) for k, v in data.get("retries", {}).items()},
        )


@dataclass
class ActivityWork:
    seq: int
    name: str
    input: str | None


@dataclass
class ChildStart:
    seq: int
    name: str
    instance_id: str
    input_text: str | None


@dataclass
class TimerWork:
    seq: int
    fire_at: str


@dataclass
class EpisodeInfo:
    """The facts about the instance that planning needs."""

    orchestrator_name: str
    instance_id: str
    execution_id: str
    parent_instance_id: str | None
    now: datetime
    timestamp: str
    activities: set[str]
    orchestrators: set[str]
    max_actions: int = 100_000


@dataclass
class EpisodeOutcome:
    """Decisions to append after the delivered events, work to enqueue and the new instance status."""

    status: RuntimeStatus = RuntimeStatus.RUNNING
    decisions: list[dict[str, Any]] = field(default_factory=list)
    activities: list[ActivityWork] = field(default_factory=list)
    timers: list[TimerWork] = field(default_factory=list)
    children: list[ChildStart] = field(default_factory=list)
    output: str | None = None
    custom_status: str | None = None
    custom_status_set: bool = False
    continue_input: str | None = None
    warnings: list[str] = field(default_factory=list)
    largest_payload: int = 0  # bytes of the largest activity input, custom status, output or continue-as-new input

    def payload(self, text: str | None) -> None:
        if text is not None:
            self.largest_payload = max(self.largest_payload, len(text.encode("utf-8", "replace")))


def atoms(actions: list[Any]) -> list[dict[str, Any]]:
    """Depth-first flattening of the action tree; WhenAny/WhenAll are containers only (§5.4)."""
    flat: list[dict[str, Any]] = []
    stack: list[Any] = [iter(actions)]
    while stack:
        try:
            item = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        if isinstance(item, list):
            stack.append(iter(item))
        elif item.get("actionType") in _CONTAINER_TYPES:
            stack.append(iter(item.get("compoundActions") or []))
        else:
            flat.append(item)
    return flat


def _signature(atom: dict[str, Any]) -> bytes:
    kind = atom.get("actionType")
    if kind == ActionType.CREATE_TIMER:
        return b"5"
    name = atom.get("functionName") or atom.get("externalEventName") or atom.get("operation") or ""
    return f"{kind}\x1f{name}\x1f{atom.get('input')}".encode()


def _hash_atoms(digest: Any, flat: list[dict[str, Any]]) -> None:
    for atom in flat:
        digest.update(_signature(atom))
        digest.update(b"\x1e")


def _size_warning(what: str, text: str | None, limit: int) -> str | None:
    if text is not None and len(text.encode("utf-8", "replace")) > limit:
        return (
            f"{what} is {len(text.encode('utf-8', 'replace')) // 1024} KB, over the {limit // 1024} KB "
            "that Azure Storage queues/tables accept inline; it will be slower or fail in Azure"
        )
    return None


def failed_output(orchestrator_name: str, error: str) -> str:
    """The status `output` of a failed instance (§5.7)."""
    return f"Orchestrator function '{orchestrator_name}' failed: {error}"


def child_instance_id_error(child_id: str, info: EpisodeInfo) -> str | None:
    if child_id.startswith("@"):
        return f"Sub-orchestration instance id '{child_id}' must not start with '@'"
    if child_id in (info.instance_id, info.parent_instance_id):
        return f"Sub-orchestration instance id '{child_id}' must differ from its parent's and grandparent's"
    return None


def _retry_delay_ms(retry: RetryState) -> float:
    delay = retry.first_ms * (retry.backoff ** (retry.attempts - 1))
    return min(delay, retry.max_interval_ms)


def _child_id(retry_or_explicit: str | None, info: EpisodeInfo, seq: int) -> str:
    return retry_or_explicit or f"{info.execution_id}:{seq}"


def plan_retries(state: ExecutionState, delivered: list[dict[str, Any]], info: EpisodeInfo) -> EpisodeOutcome:
    """Host-side retries (§8): a failure gets a retry timer, a fired retry timer gets the next attempt.

    After the last attempt the timer still comes, with FireAt = now; the SDK fails the task when it fires.
    """
    outcome = EpisodeOutcome()
    for event in delivered:
        kind = event["EventType"]
        if kind in (EventType.TaskCompleted, EventType.SubOrchestrationInstanceCompleted):
            state.retries.pop(event["TaskScheduledId"], None)
        elif kind in (EventType.TaskFailed, EventType.SubOrchestrationInstanceFailed):
            retry = state.retries.pop(event["TaskScheduledId"], None)
            if retry is None:
                continue
            seq = state.take_seq()
            fire = info.now
            if retry.attempts < retry.max_attempts:
                fire = info.now + timedelta(milliseconds=_retry_delay_ms(retry))
            fire_at = h.format_timestamp(fire)
            outcome.decisions.append(h.timer_created(info.timestamp, seq, fire_at))
            outcome.timers.append(TimerWork(seq, fire_at))
            state.retries[seq] = retry
        elif kind == EventType.TimerFired:
            retry = state.retries.pop(event["TimerId"], None)
            if retry is None or retry.attempts >= retry.max_attempts:
                continue
            seq = state.take_seq()
            retry.attempts += 1
            state.retries[seq] = retry
            if retry.kind == "task":
                outcome.decisions.append(h.task_scheduled(info.timestamp, seq, retry.name, retry.input))
                outcome.activities.append(ActivityWork(seq, retry.name, retry.input))
            else:
                child = _child_id(retry.child_id, info, seq)
                outcome.decisions.append(
                    h.sub_orchestration_created(info.timestamp, seq, retry.name, child, retry.input)
                )
                outcome.children.append(ChildStart(seq, retry.name, child, retry.input))
    return outcome


def reserves_only(state: ExecutionState, event: dict[str, Any]) -> bool:
    """Whether an event only reserves a retry id (§8) and can never resume the orchestrator's code.

    These are the events the SDK's RetryAbleTask.try_set_value turns into a new id without settling the task:
    a failure of a with-retry attempt (always: even the last one reserves its FireAt = now timer) and a fired
    retry timer that leads to another attempt. The fired *final* timer settles the task, so it is not one.
    """
    kind = event.get("EventType")
    if kind in (EventType.TaskFailed, EventType.SubOrchestrationInstanceFailed):
        return event.get("TaskScheduledId") in state.retries
    if kind == EventType.TimerFired:
        retry = state.retries.get(event.get("TimerId", -1))
        return retry is not None and retry.attempts < retry.max_attempts
    return False


def order_episode(state: ExecutionState, items: Sequence[_T], event: Callable[[_T], dict[str, Any]]) -> list[_T]:
    """Put an episode's id-reserving retry events first, then the rest, each group in arrival order.

    The SDK numbers in history order: every completion may resume the generator, which numbers its new atoms
    at once, and a retry event reserves its id when it is processed. plan_retries numbers all retry events
    before the response's new atoms, so the two agree only if no event that can resume user code precedes a
    retry event in the episode. Moving the reserving events first gives exactly that and changes nothing else:
    they settle no task, so which child wins a task_any and what the generator sees stay the same. The real
    host does not guarantee message order within an episode either. `state` must be the state before the
    episode (plan_retries has not consumed these events yet).
    """
    flags = [reserves_only(state, event(item)) for item in items]
    return [item for item, flag in zip(items, flags, strict=True) if flag] + [
        item for item, flag in zip(items, flags, strict=True) if not flag
    ]


def _fail(outcome: EpisodeOutcome, info: EpisodeInfo, error: str) -> EpisodeOutcome:
    outcome.status = RuntimeStatus.FAILED
    outcome.output = failed_output(info.orchestrator_name, error)
    outcome.decisions = []
    outcome.activities = []
    outcome.timers = []
    outcome.children = []
    return outcome


def _new_retry(atom: dict[str, Any], kind: str, child_id: str | None) -> RetryState:
    options = atom.get("retryOptions") or {}
    return RetryState(
        kind=kind,
        name=atom["functionName"],
        input=atom.get("input") if kind == "task" else json.dumps(atom.get("input")),
        first_ms=float(options.get("firstRetryIntervalInMilliseconds") or 0),
        max_attempts=int(options.get("maxNumberOfAttempts") or 1),
        backoff=float(options.get("backoffCoefficient") or 1.0),
        max_interval_ms=float(options.get("maxRetryIntervalInMilliseconds") or MAX_RETRY_INTERVAL_MS),
        child_id=child_id,
    )


def _schedule_atom(
    atom: dict[str, Any], state: ExecutionState, info: EpisodeInfo, outcome: EpisodeOutcome
) -> str | None:
    """Append the decision for one new atom; return an error text when the instance must fail."""
    kind = atom.get("actionType")
    if kind in _ENTITY_TYPES:
        return ENTITIES_UNSUPPORTED
    if kind == ActionType.CALL_HTTP:
        return CALL_HTTP_UNSUPPORTED
    if kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
        return None
    if kind in _ACTIVITY_TYPES:
        name = atom.get("functionName") or ""
        if name not in info.activities:
            return function_not_found(name, "activity", info.activities)
        seq = state.take_seq()
        outcome.decisions.append(h.task_scheduled(info.timestamp, seq, name, atom.get("input")))
        outcome.activities.append(ActivityWork(seq, name, atom.get("input")))
        outcome.payload(atom.get("input"))
        warning = _size_warning(f"Input of activity '{name}'", atom.get("input"), PAYLOAD_WARN_BYTES)
        if warning:
            outcome.warnings.append(warning)
        if kind == ActionType.CALL_ACTIVITY_WITH_RETRY:
            state.retries[seq] = _new_retry(atom, "task", None)
        return None
    if kind in _SUB_TYPES:
        name = atom.get("functionName") or ""
        if name not in info.orchestrators:
            return function_not_found(name, "orchestrator", info.orchestrators)
        seq = state.take_seq()
        explicit = atom.get("instanceId")
        child = _child_id(explicit, info, seq)
        problem = child_instance_id_error(child, info)
        if problem:
            return problem
        input_text = json.dumps(atom.get("input"))
        outcome.decisions.append(h.sub_orchestration_created(info.timestamp, seq, name, child, input_text))
        outcome.children.append(ChildStart(seq, name, child, input_text))
        if kind == ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY:
            state.retries[seq] = _new_retry(atom, "sub", explicit)
        return None
    if kind == ActionType.CREATE_TIMER:
        seq = state.take_seq()
        fire_at = atom.get("fireAt") or info.timestamp
        outcome.decisions.append(h.timer_created(info.timestamp, seq, fire_at))
        if not atom.get("isCanceled"):
            outcome.timers.append(TimerWork(seq, fire_at))
        return None
    if kind == ActionType.CONTINUE_AS_NEW:
        state.take_seq()  # continue-as-new uses up a number too (§5.5)
        outcome.continue_input = json.dumps(atom.get("input"))
        outcome.payload(atom.get("input"))
        warning = _size_warning("Continue-as-new input", atom.get("input"), PAYLOAD_WARN_BYTES)
        if warning:
            outcome.warnings.append(warning)
        return None
    return f"devhost does not understand orchestrator action type {kind}"


def plan_episode(
    state: ExecutionState,
    delivered: list[dict[str, Any]],
    result_kind: str,
    result_state: dict[str, Any] | None,
    crash_message: str,
    info: EpisodeInfo,
) -> EpisodeOutcome:
    """Apply one orchestrator response (after retries for the delivered events) and return the outcome."""
    outcome = plan_retries(state, delivered, info)
    if result_kind == "crashed" or result_state is None:
        return _fail(outcome, info, crash_message)
    if "customStatus" in result_state:
        outcome.custom_status = json.dumps(result_state["customStatus"])
        outcome.custom_status_set = True
        outcome.payload(outcome.custom_status)
        warning = _size_warning("Custom status", outcome.custom_status, CUSTOM_STATUS_WARN_BYTES)
        if warning:
            outcome.warnings.append(warning)
    if result_kind == "failed" or result_state.get("error") is not None:
        return _fail(outcome, info, str(result_state.get("error")))

    actions = result_state.get("actions") or []
    if "schemaVersion" in result_state and len(actions) != 1:
        return _fail(outcome, info, f"expected one action list for schema V2/V3, got {len(actions)}")
    flat = atoms(actions)
    digest = hashlib.blake2b(digest_size=16)
    problem = _actions_problem(flat, state, info, digest)
    if problem:
        return _fail(outcome, info, problem)
    for atom in flat[state.atom_count :]:
        problem = _schedule_atom(atom, state, info, outcome)
        if problem:
            return _fail(outcome, info, problem)
    _hash_atoms(digest, flat[state.atom_count :])
    state.atom_count = len(flat)
    state.prefix_hash = digest.hexdigest()
    if result_state.get("isDone"):
        _finish(outcome, result_state, info)
    return outcome


def _actions_problem(flat: list[dict[str, Any]], state: ExecutionState, info: EpisodeInfo, digest: Any) -> str | None:
    """Why the action list can't be accepted (too many, or the earlier ones changed); hashes the known prefix."""
    if len(flat) > info.max_actions:
        return (
            f"Maximum number of orchestration actions ({info.max_actions}) exceeded: the orchestration "
            f"scheduled {len(flat)} actions. Use sub-orchestrations or continue_as_new to split the work "
            "(host.json extensions.durableTask.maxOrchestrationActions)"
        )
    _hash_atoms(digest, flat[: state.atom_count])
    if len(flat) < state.atom_count or (state.atom_count and digest.hexdigest() != state.prefix_hash):
        return (
            "Non-deterministic workflow detected: the orchestrator's earlier actions changed between "
            "replays. Orchestrator code must be deterministic (no random, clock or I/O outside activities)"
        )
    return None


def _finish(outcome: EpisodeOutcome, result_state: dict[str, Any], info: EpisodeInfo) -> None:
    """The orchestrator returned: continue as new or complete, and schedule nothing more either way."""
    if outcome.continue_input is not None:
        outcome.status = RuntimeStatus.CONTINUED_AS_NEW
        outcome.activities, outcome.timers, outcome.children = [], [], []
    else:
        outcome.status = RuntimeStatus.COMPLETED
        outcome.output = json.dumps(result_state["output"]) if "output" in result_state else None
        outcome.activities, outcome.timers, outcome.children = [], [], []
        outcome.payload(outcome.output)
        warning = _size_warning(f"Output of '{info.orchestrator_name}'", outcome.output, PAYLOAD_WARN_BYTES)
        if warning:
            outcome.warnings.append(warning)
