"""Call the app's functions exactly as the Python worker does (converters, keyword arguments, awaiting)."""

from __future__ import annotations

import inspect
import json
import uuid
from dataclasses import dataclass
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter, OrchestrationTriggerConverter

from .indexing import FunctionInfo

OUT_OF_PROC_LABEL = "\n\n$OutOfProcData$:"


class InvocationContext:
    """What the worker passes to an unbound `context` parameter (a func.Context look-alike)."""

    def __init__(self, function_name: str, invocation_id: str | None = None) -> None:
        self.invocation_id = invocation_id or str(uuid.uuid4())
        self.function_name = function_name
        self.function_directory = ""
        self.trace_context = None
        self.retry_context = None
        self.thread_local_storage = None


@dataclass
class OrchestratorResult:
    """The outcome of one orchestrator call: a state, a failure state ($OutOfProcData$) or a crash."""

    kind: str  # "state", "failed" or "crashed"
    state: dict[str, Any] | None = None
    message: str = ""


def call_orchestrator(info: FunctionInfo, context_json: str) -> OrchestratorResult:
    """Decode the context like OrchestrationTriggerConverter and call the SDK's handle(context)."""
    try:
        ctx = OrchestrationTriggerConverter.decode(meta.Datum(value=context_json, type="string"), trigger_metadata=None)
        return OrchestratorResult("state", json.loads(info.callable(ctx)))
    except Exception as exc:
        _, sep, state = str(exc).partition(OUT_OF_PROC_LABEL)
        if sep:
            try:
                return OrchestratorResult("failed", json.loads(state))
            except ValueError:
                pass
        return OrchestratorResult("crashed", None, f"{type(exc).__name__}: {exc}")


def activity_arguments(info: FunctionInfo, action_input: str | None) -> dict[str, Any]:
    """Decode the action input text into the trigger parameter, as ActivityTriggerConverter does."""
    arg = ActivityTriggerConverter.decode(
        meta.Datum(value=action_input if action_input is not None else "null", type="string"),
        trigger_metadata=None,
    )
    kwargs: dict[str, Any] = {info.trigger_param: arg}
    if info.wants_context:
        kwargs["context"] = InvocationContext(info.name)
    return kwargs


def encode_activity_result(value: Any) -> str:
    """TaskCompleted.Result: the df_dumps text of the return value (ValueError if not serializable)."""
    text: str = ActivityTriggerConverter.encode(value, expected_type=None).value
    return text


def run_sync_activity(info: FunctionInfo, action_input: str | None) -> str:
    """Run a sync activity (in a worker thread) and return its encoded result."""
    out = info.callable(**activity_arguments(info, action_input))
    if inspect.isawaitable(out):
        raise TypeError("a sync activity returned an awaitable")
    return encode_activity_result(out)


async def run_async_activity(info: FunctionInfo, action_input: str | None) -> str:
    """Run an async activity on the event loop and return its encoded result."""
    out = info.callable(**activity_arguments(info, action_input))
    if inspect.isawaitable(out):
        out = await out
    return encode_activity_result(out)


def worker_error_text(exc: BaseException) -> str:
    """The worker reports a failure as `<Type>: <message>`."""
    return f"{type(exc).__name__}: {exc}"
