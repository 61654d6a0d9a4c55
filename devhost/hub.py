"""The narrow interfaces the dispatchers see: the engine implements them and wires the parts together.

The orchestration dispatcher and the activity dispatcher never import the engine or each other; each gets a
`Hub` (settings, functions, the store, id allocation, message delivery) and what it needs of the other part.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from .decisions import ActivityWork
from .indexing import FunctionIndex
from .model import ActivityRow, MessageRow
from .settings import HostSettings
from .stats import Stats
from .store import Store

_T = TypeVar("_T")


class Hub(Protocol):
    """The task hub as the dispatchers use it.

    `db`, `deliver` and `loop` are used on the engine's event loop. `new_message` and `new_activity` must be
    thread-safe: activity threads and the database thread allocate message ids too; they also read `stopping`,
    `settings`, `index`, `finished_executions` and add to `stats`.
    """

    index: FunctionIndex
    settings: HostSettings
    store: Store
    stats: Stats
    finished_executions: set[str]  # executions that ended: results of their activities are dropped

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def stopping(self) -> bool: ...

    async def db(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a store call on the single database thread."""
        ...

    def new_message(
        self, instance_id: str, execution_id: str | None, event: dict[str, Any], visible_at: float = 0.0
    ) -> MessageRow: ...

    def new_activity(self, instance_id: str, execution_id: str, work: ActivityWork) -> ActivityRow: ...

    def deliver(self, message: MessageRow) -> None:
        """Hand an already durable message to its instance, or to the timers if it is not visible yet."""
        ...


class ActivityQueue(Protocol):
    """What the orchestration dispatcher needs of the activity dispatcher."""

    def submit(self, item: ActivityRow) -> None: ...

    def in_flight(self, instance_id: str) -> int: ...

    def forget(self, instance_id: str) -> None: ...
