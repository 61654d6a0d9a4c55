"""The protocol document's sample app (§16), plus small orchestrators for retries, events and custom status."""

from __future__ import annotations

from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

from devhost.indexing import FunctionIndex, index_app


def build_index() -> FunctionIndex:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.activity_trigger(input_name="payload")
    def get_work_items(payload: dict) -> list:
        return list(range(1, payload["n"] + 1))

    @app.activity_trigger(input_name="item")
    def process_item(item: int) -> int:
        return item * 10

    @app.activity_trigger(input_name="x")
    def flaky(x: str) -> str:
        return x

    @app.activity_trigger(input_name="x")
    def a(x: object) -> object:
        return x

    @app.orchestration_trigger(context_name="context")
    def fan_out_fan_in(context: df.DurableOrchestrationContext):
        work = yield context.call_activity("get_work_items", context.get_input())
        results = yield context.task_all([context.call_activity("process_item", i) for i in work])
        return sum(results)

    @app.orchestration_trigger(context_name="context")
    def retry_orch(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(first_retry_interval_in_milliseconds=5000, max_number_of_attempts=2)
        return (yield context.call_activity_with_retry("flaky", options, "x"))

    @app.orchestration_trigger(context_name="context")
    def approval(context: df.DurableOrchestrationContext):
        event = context.wait_for_external_event("Approved")
        timer = context.create_timer(context.current_utc_datetime + timedelta(hours=1))
        winner = yield context.task_any([event, timer])
        if winner == event:
            timer.cancel()
            context.set_custom_status({"stage": "approved"})
            return {"approved": event.result}
        return "timeout"

    @app.orchestration_trigger(context_name="context")
    def retry_race(context: df.DurableOrchestrationContext):
        """A plain task that unblocks new work, racing a with-retry task whose events share its episode."""
        attempts = context.get_input()
        options = df.RetryOptions(first_retry_interval_in_milliseconds=5000, max_number_of_attempts=attempts)
        retried = context.call_activity_with_retry("flaky", options, "x")
        plain = context.call_activity("a", "plain")
        winner = yield context.task_any([retried, plain])
        extra = yield context.call_activity("process_item", 4)
        try:
            outcome = yield retried
        except Exception as exc:
            outcome = f"gave up: {str(exc).splitlines()[0].strip()}"
        return [winner.result, extra, outcome]

    @app.orchestration_trigger(context_name="context")
    def custom(context: df.DurableOrchestrationContext):
        context.set_custom_status("working")
        return (yield context.call_activity("a", None))

    return index_app(app)
