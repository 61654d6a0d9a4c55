"""Bounded concurrency for the activities that make many storage calls at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


async def each(items: Iterable[_T], work: Callable[[_T], Awaitable[_R]], at_once: int) -> list[_R]:
    """Run ``work`` on every item, ``at_once`` at a time, and return the results (in no particular order).

    The first error cancels the work still running and is raised as it is, so an activity fails (and is
    retried) with the storage error itself rather than an exception group.
    """
    queue = iter(items)
    results: list[_R] = []

    async def worker() -> None:
        for item in queue:
            results.append(await work(item))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(at_once):
                group.create_task(worker())
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None
    return results
