"""Counters that show where the host's time goes, served at /admin/devhost/stats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .store import Store


@dataclass
class Stats:
    """Wall and CPU time per stage, so a slow run can be blamed on replay, SQLite or the functions."""

    episodes: int = 0
    replay_seconds: float = 0.0
    replay_cpu_seconds: float = 0.0
    batching_wait_seconds: float = 0.0
    context_build_seconds: float = 0.0
    plan_seconds: float = 0.0
    episode_wall_seconds: float = 0.0
    events_delivered: int = 0
    activities_run: int = 0
    activity_seconds: float = 0.0
    completion_batches: int = 0
    completions_committed: int = 0
    # The platform's limits, as the largest seen so far: events in one execution's history, actions one
    # execution scheduled, and bytes of one payload (activity input or output, orchestration input or
    # output, continue-as-new input, custom status).
    largest_history_events: int = 0
    largest_action_count: int = 0
    largest_payload_bytes: int = 0

    def payload(self, size: int) -> None:
        self.largest_payload_bytes = max(self.largest_payload_bytes, size)

    def as_dict(self, store: Store) -> dict[str, Any]:
        """The counters plus the store's own, as one JSON object."""
        data = dict(self.__dict__)
        data["sqlite_seconds"] = store.busy_seconds
        data["sqlite_cpu_seconds"] = store.cpu_seconds
        data["sqlite_transactions"] = store.transactions
        return data
