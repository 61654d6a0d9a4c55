"""devhost's engine in the test process: an in-memory task hub, an app indexed from a DFApp, no subprocess.

For the scheduler's own rules (batching, concurrency bounds, retries, timers, suspension); what needs a real
process (signals, SIGKILL, restarts from a hub file) stays with tests/support/devhost_process.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import azure.durable_functions as df

from devhost.engine import Engine
from devhost.history import EventType
from devhost.indexing import index_app
from devhost.model import Instance, RuntimeStatus
from devhost.settings import HostSettings
from devhost.store import Store


@asynccontextmanager
async def running_engine(app: df.DFApp, **settings: Any) -> AsyncIterator[Engine]:
    """A started engine over `app` and a fresh in-memory hub; stopped (and the hub closed) on the way out."""
    engine = Engine(index_app(app), HostSettings(**settings), Store(Path(":memory:")))
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


async def start(engine: Engine, name: str, instance_id: str, value: object = None) -> None:
    await engine.start_new(name, instance_id, json.dumps(value))


async def finished(engine: Engine, instance_id: str, timeout: float = 30.0) -> Instance:
    """The instance once it is Completed, Failed or Terminated (bounded: fails the test after `timeout`)."""
    ends = {RuntimeStatus.COMPLETED, RuntimeStatus.FAILED, RuntimeStatus.TERMINATED}
    return await reached(engine, instance_id, ends, timeout)


async def reached(engine: Engine, instance_id: str, statuses: set[RuntimeStatus], timeout: float = 30.0) -> Instance:
    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        row = await engine.get_instance(instance_id)
        if row is not None and row.status in statuses:
            return row
        await asyncio.sleep(0.01)
    raise AssertionError(f"{instance_id} did not reach {sorted(statuses)}: {row}")


async def history(engine: Engine, instance_id: str) -> list[dict[str, Any]]:
    return [json.loads(t) for t in await engine.db(engine.store.load_history, instance_id)]


def kinds(events: list[dict[str, Any]]) -> list[EventType]:
    """Event types without the episode markers."""
    markers = (EventType.OrchestratorStarted, EventType.OrchestratorCompleted)
    return [EventType(e["EventType"]) for e in events if e["EventType"] not in markers]
