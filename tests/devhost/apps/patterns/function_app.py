"""A small app with one orchestration per Durable Functions pattern, used to test devhost end to end."""

import asyncio
import json
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


# ---- HTTP starters ----------------------------------------------------------------------------------


@app.route(route="orchestrators/{functionName}/{instanceId?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(req.route_params["functionName"], req.route_params.get("instanceId"), payload)
    return client.create_check_status_response(req, instance_id)


@app.route(route="wait/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start_wait(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    instance_id = await client.start_new(req.route_params["functionName"], None, json.loads(body) if body else None)
    timeout_ms = int(req.params.get("timeout_ms", "20000"))
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=timeout_ms, retry_interval_in_milliseconds=100
    )


@app.route(route="plain/{name}", methods=["GET"])
def plain(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(
            {
                "name": req.route_params["name"],
                "q": req.params.get("q"),
                "greeting": os.environ.get("PATTERNS_GREETING"),
            }
        ),
        status_code=203,
        mimetype="application/json",
        headers={"X-Pattern": "plain"},
    )


@app.route(route="explode", methods=["GET"])
def explode(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret detail that must not reach the client")


# ---- activities ---------------------------------------------------------------------------------------


@app.activity_trigger(input_name="name")
def hello(name: str) -> str:
    return f"Hello {name}!"


@app.activity_trigger(input_name="x")
def double(x: int) -> int:
    return x * 2


@app.activity_trigger(input_name="x")
async def async_double(x: int) -> int:
    return x * 2


@app.activity_trigger(input_name="payload")
def flaky(payload: dict) -> str:
    """Fails `fail_times` times (counted in a file), then succeeds."""
    return _flaky_attempt(payload)


def _flaky_attempt(payload: dict) -> str:
    counter = Path(payload["dir"]) / "flaky.count"
    count = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(count))
    if count <= payload["fail_times"]:
        raise RuntimeError(f"nope {count}")
    return f"ok on attempt {count}"


@app.activity_trigger(input_name="payload")
def slow(payload: dict) -> int:
    """Sleeps, then records that it ran (one file per run) so tests can count executions."""
    time.sleep(payload["delay"])
    marker = Path(payload["dir"]) / f"slow-{payload['i']}-{time.time_ns()}"
    marker.write_text("done")
    return payload["i"]


def _wait_for(path: Path) -> None:
    """Block until a test creates `path` (bounded, so a broken test cannot wedge the pool forever)."""
    deadline = time.monotonic() + 60
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


@app.activity_trigger(input_name="payload")
def gated(payload: dict) -> str:
    """Announces that it started, waits for the test's go file, then returns its name."""
    folder = Path(payload["dir"])
    (folder / f"{payload['name']}.started").write_text("1")
    _wait_for(folder / f"{payload['name']}.go")
    return payload["name"]


@app.activity_trigger(input_name="payload")
def gated_flaky(payload: dict) -> str:
    """`flaky`, but each attempt first announces itself and waits for the test's go file."""
    folder = Path(payload["dir"])
    (folder / "flaky.started").write_text("1")
    _wait_for(folder / "flaky.go")
    return _flaky_attempt(payload)


@app.activity_trigger(input_name="x")
def boom(x: int) -> int:
    raise ValueError("boom")


# ---- orchestrators ------------------------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def chaining(context: df.DurableOrchestrationContext):
    results = []
    for city in ["Tokyo", "Seattle", "London"]:
        results.append((yield context.call_activity("hello", city)))
    return results


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    n = (context.get_input() or {}).get("n", 5)
    results = yield context.task_all([context.call_activity("double", i) for i in range(n)])
    more = yield context.task_all([context.call_activity("async_double", i) for i in range(n)])
    return sum(results) + sum(more)


@app.orchestration_trigger(context_name="context")
def retry_orch(context: df.DurableOrchestrationContext):
    payload = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=payload["max_attempts"])
    return (yield context.call_activity_with_retry("flaky", options, payload))


@app.orchestration_trigger(context_name="context")
def event_or_timer(context: df.DurableOrchestrationContext):
    seconds = (context.get_input() or {}).get("seconds", 60)
    event = context.wait_for_external_event("Approved")
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    winner = yield context.task_any([event, timer])
    if winner == event:
        timer.cancel()
        context.set_custom_status({"stage": "approved"})
        return {"approved": event.result}
    return "timed out"


@app.orchestration_trigger(context_name="context")
def parent_orch(context: df.DurableOrchestrationContext):
    first = yield context.call_sub_orchestrator("chaining")
    second = yield context.call_sub_orchestrator("fan_out", {"n": 3}, "child-of-" + context.instance_id)
    return {"first": first, "second": second}


@app.orchestration_trigger(context_name="context")
def counter_can(context: df.DurableOrchestrationContext):
    n = context.get_input() or 0
    yield context.call_activity("double", n)
    if n < 3:
        context.continue_as_new(n + 1)
        return None
    return n


@app.orchestration_trigger(context_name="context")
def long_wait(context: df.DurableOrchestrationContext):
    value = yield context.wait_for_external_event("Finish")
    return value


@app.orchestration_trigger(context_name="context")
def custom_status_orch(context: df.DurableOrchestrationContext):
    context.set_custom_status("working")
    greeting = yield context.call_activity("hello", "status")
    context.set_custom_status({"stage": "done", "greeting": greeting})
    return greeting


@app.orchestration_trigger(context_name="context")
def failing_orch(context: df.DurableOrchestrationContext):
    yield context.call_activity("boom", 1)
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def unknown_activity_orch(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("no_such_activity", 1))


@app.orchestration_trigger(context_name="context")
def slow_fan_out(context: df.DurableOrchestrationContext):
    payload = context.get_input()
    tasks = [
        context.call_activity("slow", {"dir": payload["dir"], "delay": payload["delay"], "i": i})
        for i in range(payload["n"])
    ]
    results = yield context.task_all(tasks)
    return sum(results)


@app.orchestration_trigger(context_name="context")
def flaky_child(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("flaky", context.get_input()))


@app.orchestration_trigger(context_name="context")
def parent_retry_orch(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=3)
    return (yield context.call_sub_orchestrator_with_retry("flaky_child", options, context.get_input()))


@app.orchestration_trigger(context_name="context")
def retry_race(context: df.DurableOrchestrationContext):
    """A plain task that unblocks new work, racing a with-retry task whose failure arrives in the same episode."""
    payload = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=100, max_number_of_attempts=payload["max_attempts"])
    retried = context.call_activity_with_retry("gated_flaky", options, payload)
    plain = context.call_activity("gated", {"dir": payload["dir"], "name": "plain"})
    winner = yield context.task_any([retried, plain])
    extra = yield context.call_activity("double", 21)
    try:
        outcome = yield retried
    except Exception as exc:
        outcome = f"gave up: {str(exc).splitlines()[0].strip()}"
    return [winner.result, extra, outcome]


@app.orchestration_trigger(context_name="context")
def unknown_sub_orch(context: df.DurableOrchestrationContext):
    return (yield context.call_sub_orchestrator("no_such_orchestrator"))


@app.orchestration_trigger(context_name="context")
def entity_orch(context: df.DurableOrchestrationContext):
    return (yield context.call_entity(df.EntityId("counter", "k1"), "get"))


# ---- shared activity limit (maxConcurrentActivityFunctions is 4 in host.json) -------------------------

_CONCURRENCY_LOCK = threading.Lock()
_CONCURRENCY = {"now": 0, "max": 0}


def _activity_entered() -> None:
    with _CONCURRENCY_LOCK:
        _CONCURRENCY["now"] += 1
        _CONCURRENCY["max"] = max(_CONCURRENCY["max"], _CONCURRENCY["now"])


def _activity_left() -> int:
    with _CONCURRENCY_LOCK:
        _CONCURRENCY["now"] -= 1
        return _CONCURRENCY["max"]


@app.activity_trigger(input_name="x")
def counted_sync(x: int) -> int:
    """Counts how many counted_* activities run at once; returns the highest count seen so far."""
    _activity_entered()
    time.sleep(0.3)
    return _activity_left()


@app.activity_trigger(input_name="x")
async def counted_async(x: int) -> int:
    _activity_entered()
    await asyncio.sleep(0.3)
    return _activity_left()


@app.orchestration_trigger(context_name="context")
def mixed_fan_out(context: df.DurableOrchestrationContext):
    """As many sync as async activities at once; returns the most that ever ran together."""
    n = context.get_input()["n"]
    tasks = [context.call_activity("counted_sync", i) for i in range(n)]
    tasks += [context.call_activity("counted_async", i) for i in range(n)]
    return max((yield context.task_all(tasks)))
