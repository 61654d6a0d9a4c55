"""Durable timers: messages with a future visible-at time wait in a heap until they are due."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Callable

from .model import MessageRow


class TimerQueue:
    """Holds not-yet-visible messages in memory (they are already durable in the hub) and releases them on time."""

    def __init__(self, deliver: Callable[[MessageRow], None]) -> None:
        self._deliver = deliver
        self._heap: list[tuple[float, int, MessageRow]] = []
        self._ids: set[int] = set()
        self._wakeup = asyncio.Event()

    def schedule(self, message: MessageRow) -> None:
        """Hold a message until its visible-at time; wakes the loop in case it is the earliest."""
        heapq.heappush(self._heap, (message.visible_at, message.id, message))
        self._ids.add(message.id)
        self._wakeup.set()

    def holds(self, message_id: int) -> bool:
        """Whether the message is still waiting here (it will be delivered when due)."""
        return message_id in self._ids

    async def run(self) -> None:
        """Deliver due messages forever, sleeping until the earliest one or until a new one arrives."""
        while True:
            now = time.time()
            while self._heap and self._heap[0][0] <= now:
                _, _, message = heapq.heappop(self._heap)
                self._ids.discard(message.id)
                message.visible_at = 0.0
                self._deliver(message)
            timeout = self._heap[0][0] - now if self._heap else None
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)
