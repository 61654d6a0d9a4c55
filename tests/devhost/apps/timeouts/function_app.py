"""Activities that outlive host.json's functionTimeout (2 s), one async and one sync, and one that does not."""

import asyncio
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def run_one(context: df.DurableOrchestrationContext):
    request = context.get_input()
    return (yield context.call_activity(request["name"], request.get("seconds", 10)))


@app.activity_trigger(input_name="seconds")
async def sleep_async(seconds: int) -> int:
    await asyncio.sleep(seconds)
    return seconds


@app.activity_trigger(input_name="seconds")
def sleep_sync(seconds: int) -> int:
    time.sleep(seconds)
    return seconds


@app.activity_trigger(input_name="seconds")
async def quick(seconds: int) -> int:
    return seconds
