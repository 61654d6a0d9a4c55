"""An orchestrator whose context_name is not `context`: the worker refuses the parameter mismatch."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="ctx")
def orchestrator(ctx: df.DurableOrchestrationContext):
    return (yield ctx.call_activity("echo", 1))


@app.activity_trigger(input_name="x")
def echo(x: int) -> int:
    return x
