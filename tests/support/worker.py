"""Call the app's functions the way the Python worker does (protocol reference §3)."""

import asyncio
import inspect
import json
import threading
from collections.abc import Coroutine
from functools import cache
from typing import Any, TypeVar

from azure.functions import meta
from azure.functions.decorators.function_app import Function
from azure.functions.durable_functions import ActivityTriggerConverter, OrchestrationTriggerConverter

OUT_OF_PROC_LABEL = "\n\n$OutOfProcData$:"


@cache
def app_functions() -> dict[str, Function]:
    """The app's functions by name, indexed once (a second get_functions() call fails)."""
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def call_orchestrator(name: str, context: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Run one episode; returns ("state", state) or ("failed", state) or ("crashed", message)."""
    fn = app_functions()[name]
    ctx = OrchestrationTriggerConverter.decode(
        meta.Datum(value=json.dumps(context), type="string"), trigger_metadata=None
    )
    try:
        return "state", json.loads(fn.get_user_function()(ctx))
    except Exception as exc:
        _, sep, state = str(exc).partition(OUT_OF_PROC_LABEL)
        return ("failed", json.loads(state)) if sep else ("crashed", f"{type(exc).__name__}: {exc}")


_T = TypeVar("_T")


@cache
def worker_loop() -> asyncio.AbstractEventLoop:
    """One long-lived event loop in a thread, like the Python worker's, on which async functions run."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="worker-loop", daemon=True).start()
    return loop


def run_on_worker_loop(coroutine: Coroutine[Any, Any, _T], timeout: float = 600) -> _T:
    """Run a coroutine on the worker loop and wait for it (storage connections stay bound to that loop)."""
    return asyncio.run_coroutine_threadsafe(coroutine, worker_loop()).result(timeout)


async def close_connections() -> None:
    """Close the connections bound to the running loop: the app's storage connections, and the durable
    client's session (the SDK keeps one, global, on the first loop it ran on)."""
    from azure.durable_functions.models.utils import http_utils

    from site_backup.storage import close_storage

    await close_storage()
    await http_utils._close_session()


def close_worker_loop() -> None:
    """Close the connections opened on the worker loop, and stop it (a session's end)."""
    if worker_loop.cache_info().currsize:
        run_on_worker_loop(close_connections(), timeout=30)
        worker_loop().call_soon_threadsafe(worker_loop().stop)


def call_activity(name: str, action_input: str) -> str:
    """Run an activity with the action's input text; returns the TaskCompleted.Result text."""
    fn = app_functions()[name]
    param = next(b.name for b in fn.get_bindings() if b.type == "activityTrigger")
    arg = ActivityTriggerConverter.decode(meta.Datum(value=action_input, type="string"), trigger_metadata=None)
    out = fn.get_user_function()(**{param: arg})
    if inspect.isawaitable(out):
        out = run_on_worker_loop(out)
    return ActivityTriggerConverter.encode(out, expected_type=None).value
