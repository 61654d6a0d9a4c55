"""Continue-as-new episodes a test can hold open (to send messages meanwhile), and an activity that raises
asyncio.CancelledError."""

import asyncio
import time
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _wait_for(path: Path) -> None:
    """Block until a test creates `path` (bounded, so a broken test cannot wedge the host forever)."""
    deadline = time.monotonic() + 60
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)


@app.orchestration_trigger(context_name="context")
def gated_can(context: df.DurableOrchestrationContext):
    """Waits for E and adds its value; the episode that continues as new first announces itself
    (`can-<total>.entered`) and waits for the test's `can-<total>.go`."""
    inp = context.get_input()
    if inp["total"] >= inp["until"]:
        return inp["total"]
    value = yield context.wait_for_external_event("E")
    if not context.is_replaying:
        folder = Path(inp["dir"])
        (folder / f"can-{inp['total']}.entered").write_text("1")
        _wait_for(folder / f"can-{inp['total']}.go")
    context.continue_as_new({**inp, "total": inp["total"] + value})
    return None


@app.activity_trigger(input_name="x")
async def cancels(x: int) -> int:
    await asyncio.sleep(0)
    if x < 0:
        raise asyncio.CancelledError()
    return x


@app.orchestration_trigger(context_name="context")
def call_cancels(context: df.DurableOrchestrationContext):
    """Calls `cancels` once per input, collecting results and failure messages."""
    out = []
    for x in context.get_input()["xs"]:
        try:
            out.append((yield context.call_activity("cancels", x)))
        except Exception as exc:
            out.append(str(exc))
    return out
