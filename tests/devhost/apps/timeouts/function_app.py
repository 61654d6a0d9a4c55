"""Activities that outlive host.json's functionTimeout (2 s), one async and one sync, and one that does not."""

import asyncio
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def run_one(context: df.DurableOrchestrationContext):
    name = context.get_input()["name"]
    return (yield context.call_activity(name, 10))


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
