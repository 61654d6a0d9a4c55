"""A minimal in-process host loop over devhost's history/episode code, for unit tests against the real SDK."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from devhost import history as h
from devhost.decisions import EpisodeInfo, EpisodeOutcome, ExecutionState, order_episode, plan_episode
from devhost.indexing import FunctionIndex
from devhost.invoke import OrchestratorResult, call_orchestrator


class Harness:
    """Runs episodes of one orchestration: history in, SDK state out, decisions appended."""

    def __init__(
        self,
        index: FunctionIndex,
        name: str,
        input_text: str | None,
        schema_keys: bool = True,
        max_actions: int = 100_000,
    ) -> None:
        self.max_actions = max_actions
        self.index = index
        self.info = index.orchestrators[name]
        self.name = name
        self.input_text = input_text
        self.history: list[dict[str, Any]] = []
        self.state = ExecutionState()
        self.now = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(milliseconds=250)
        self.schema_keys = schema_keys
        self.last_delivered: list[dict[str, Any]] = []

    def context(self, new_events: list[dict[str, Any]]) -> str:
        text = h.context_json(
            [json.dumps(e) for e in self.history + new_events],
            h.decode_stored_input(self.input_text),
            "abc123",
            bool(self.history),
            None,
        )
        if not self.schema_keys:
            data = json.loads(text)
            data.pop("upperSchemaVersion")
            data.pop("upperSchemaVersionNew")
            text = json.dumps(data)
        return text

    def episode(
        self, delivered: list[dict[str, Any]] | None = None, advance: timedelta = timedelta(seconds=1)
    ) -> tuple[OrchestratorResult, EpisodeOutcome]:
        if self.history:
            self.now += advance
        stamp = h.format_timestamp(self.now)
        new = [h.orchestrator_started(stamp)]
        if not self.history:
            new.append(
                h.execution_started(stamp, self.name, self.input_text, "abc123", "570241544df34e4eafe605ab61ae8111")
            )
        # Like replay.py: retry-id reserving events first (order_episode), whatever order the test gives.
        delivered = order_episode(self.state, delivered or [], lambda event: event)
        new += delivered
        self.last_delivered = delivered
        result = call_orchestrator(self.info, self.context(new))
        outcome = plan_episode(
            self.state,
            delivered,
            result.kind,
            result.state,
            result.message,
            EpisodeInfo(
                self.name,
                "abc123",
                "570241544df34e4eafe605ab61ae8111",
                None,
                self.now,
                stamp,
                set(self.index.activities),
                set(self.index.orchestrators),
                self.max_actions,
            ),
        )
        self.history += new + outcome.decisions + [h.orchestrator_completed(stamp)]
        return result, outcome

    @property
    def stamp(self) -> str:
        return h.format_timestamp(self.now)
