"""How a prune is paced, for the same orchestrator loop as the backup (``plan_loop.run_plan``).

Strictly in phases, because each one needs all of the one before: select the runs; list the root's blobs with
their snapshots, stretch by stretch; read the catalog of every referencing run (a window of them); remove the
catalogs of the runs that go; delete the snapshots nothing needs, document by document; clear the work area.
A failure before the snapshot deletions stops the prune before any; one during them is reported, and a rerun
finishes the work. Pure and deterministic; a budget of calls per execution, then continue-as-new.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from .errors import BackupFailed, InvalidBackupRequest
from .messages import MAX_FAILURES_KEPT, _field, _object, _optional, short
from .plan import Call
from .prune import RUNS_PER_REMOVAL
from .prune_messages import PruneRequest, PruneTally, PruneTask, Selection, SnapshotPage

WINDOW = 4
CALLS_PER_EXECUTION = 400


class PruneStep(StrEnum):
    SELECT = "select"
    FIND = "find"
    COLLECT = "collect"
    REMOVE = "remove"
    DELETE = "delete"
    FINISH = "finish"


PHASES = tuple(PruneStep)


@dataclass
class PruneState:
    """What a prune carries from one generation to the next: its phase and how far each phase is."""

    request: PruneRequest
    work: str = ""
    started: str = ""
    phase: PruneStep = PruneStep.SELECT
    selection: Selection | None = None
    marker: str | None = None
    next_number: int = 0  # the next call of the phase (a stretch, a referencing run, a batch, a document)
    listed: bool = False  # every stretch of the root's blobs is listed
    documents: list[int] = field(default_factory=list)  # the stretches that had snapshots
    blobs: int = 0
    snapshots: int = 0
    tally: PruneTally = field(default_factory=PruneTally)
    problems: list[str] = field(default_factory=list)
    fatal: str | None = None
    generation: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request.to_json(),
            "prune": {
                "work": self.work,
                "started": self.started,
                "phase": str(self.phase),
                "selection": self.selection.to_json() if self.selection else None,
                "marker": self.marker,
                "nextNumber": self.next_number,
                "listed": self.listed,
                "documents": self.documents,
                "blobs": self.blobs,
                "snapshots": self.snapshots,
                "tally": self.tally.to_json(),
                "problems": self.problems,
                "fatal": self.fatal,
                "generation": self.generation,
            },
        }

    @classmethod
    def from_input(cls, value: object) -> PruneState:
        """A fresh state for a request, or the one a generation carried."""
        if not (isinstance(value, dict) and "prune" in value):
            return cls(PruneRequest.from_json(value))
        carried = _object(value.get("prune"), "prune state")
        documents, problems = carried.get("documents"), carried.get("problems")
        if not (isinstance(documents, list) and all(isinstance(d, int) and d >= 0 for d in documents)):
            raise InvalidBackupRequest("Malformed prune state.")
        if not (isinstance(problems, list) and all(isinstance(p, str) for p in problems)):
            raise InvalidBackupRequest("Malformed prune state.")
        phase = _field(carried, "phase", str, "prune state")
        if phase not in PHASES:
            raise InvalidBackupRequest(f"Malformed prune state: no phase {phase!r}.")
        selection = carried.get("selection")
        return cls(
            PruneRequest.from_json(value.get("request")),
            _field(carried, "work", str, "prune state"),
            _field(carried, "started", str, "prune state"),
            PruneStep(phase),
            Selection.from_json(selection) if selection is not None else None,
            _optional(carried, "marker", str, "prune state"),
            _field(carried, "nextNumber", int, "prune state"),
            _field(carried, "listed", bool, "prune state"),
            list(documents),
            _field(carried, "blobs", int, "prune state"),
            _field(carried, "snapshots", int, "prune state"),
            PruneTally.from_json(carried.get("tally")),
            list(problems),
            _optional(carried, "fatal", str, "prune state"),
            _field(carried, "generation", int, "prune state"),
        )


class PrunePlan:
    """The prune counterpart of ``plan.Plan``: the same interface for the orchestrator loop."""

    def __init__(self, state: PruneState, work: str, now: str) -> None:
        self.state = state
        if not state.work:  # the first generation: where its documents go, and when it started
            state.work, state.started = work, now
        self.in_flight = 0
        self.scheduled = 0
        self.done = False

    def _phase_over(self) -> bool:
        state = self.state
        if state.phase is PruneStep.FINISH:
            return state.next_number >= 1
        if state.fatal is not None:
            return True
        if state.phase is PruneStep.SELECT:
            return state.next_number >= 1
        if state.phase is PruneStep.FIND:
            return state.listed
        assert state.selection is not None
        if state.phase is PruneStep.COLLECT:
            calls = state.selection.referencing if state.documents else 0  # no snapshots: nothing to read
        elif state.phase is PruneStep.REMOVE:
            calls = -(-state.selection.removed // RUNS_PER_REMOVAL)
        else:
            calls = len(state.documents)
        return state.next_number >= calls

    def _next_phase(self) -> None:
        state = self.state
        if state.phase is PruneStep.FINISH:
            self.done = True
            return
        state.phase = PruneStep.FINISH if state.fatal else PHASES[PHASES.index(state.phase) + 1]
        state.next_number = 0

    def next_groups(self) -> list[list[Call]]:
        state = self.state
        groups: list[list[Call]] = []
        while not self.done and self.scheduled < CALLS_PER_EXECUTION:
            if self._phase_over():
                if self.in_flight:
                    break
                self._next_phase()
                continue
            one_at_a_time = state.phase in (PruneStep.SELECT, PruneStep.FIND, PruneStep.FINISH)
            if self.in_flight >= (1 if one_at_a_time else WINDOW):
                break
            number = state.next_number
            if state.phase is PruneStep.DELETE:
                number = state.documents[number]
            marker = state.marker if state.phase is PruneStep.FIND else None
            task = PruneTask(state.request, state.work, state.started, number, marker)
            groups.append([Call(state.phase, task.to_json(), number)])
            state.next_number += 1
            self.in_flight += 1
            self.scheduled += 1
        return groups

    def record(self, call: Call, result: object = None, error: str | None = None) -> None:
        state = self.state
        self.in_flight -= 1
        step = PruneStep(call.step)
        if error is not None:
            text = short(f"{step}: {error}")
            if step in (PruneStep.SELECT, PruneStep.FIND, PruneStep.COLLECT, PruneStep.REMOVE):
                # No snapshot is deleted unless every catalog was read, and every dropped run is gone (a run
                # whose removal failed may still be restored, from the snapshots it needs).
                state.fatal = state.fatal or text
            elif step is not PruneStep.FINISH and len(state.problems) < MAX_FAILURES_KEPT:
                state.problems.append(text)  # a leftover work area is harmless: the next prune has its own
            return
        if step is PruneStep.SELECT:
            state.selection = Selection.from_json(result)
        elif step is PruneStep.FIND:
            page = SnapshotPage.from_json(result)
            if page.written:
                state.documents.append(call.unit)
            state.blobs += page.blobs
            state.snapshots += page.snapshots
            state.marker = page.marker
            state.listed = page.marker is None
        elif step in (PruneStep.REMOVE, PruneStep.DELETE):
            state.tally += PruneTally.from_json(result)

    def _finished(self) -> bool:
        """Every phase is over (also right after the last result, before the loop asks for more)."""
        state = self.state
        return self.done or (state.phase is PruneStep.FINISH and state.next_number >= 1 and not self.in_flight)

    def continues(self) -> bool:
        return not self._finished() and not self.in_flight and self.scheduled >= CALLS_PER_EXECUTION

    def continuation(self) -> dict[str, Any]:
        return replace(self.state, generation=self.state.generation + 1).to_json()

    def status(self) -> dict[str, Any]:
        state, tally, selection = self.state, self.state.tally, self.state.selection
        phases = {
            PruneStep.SELECT: "selecting runs",
            PruneStep.FIND: "listing snapshots",
            PruneStep.COLLECT: "reading catalogs",
            PruneStep.REMOVE: "removing runs",
            PruneStep.DELETE: "removing snapshots",
            PruneStep.FINISH: "finishing",
        }
        phase = (
            ("failed" if state.fatal or state.problems else "completed") if self._finished() else phases[state.phase]
        )
        return {
            "phase": phase,
            "dryRun": state.request.dry_run,
            "runsKept": selection.kept if selection else None,
            "runsRemoved": tally.runs_removed,
            "blobsListed": state.blobs,
            "snapshotsFound": state.snapshots,
            "snapshotsRemoved": tally.snapshots_removed,
            "generation": state.generation,
        }

    def output(self) -> dict[str, Any]:
        """The report: what was removed (or, dry, would be), and what stayed."""
        state, tally = self.state, self.state.tally
        if state.fatal is not None:
            raise BackupFailed(f"The prune stopped before deleting anything more: {state.fatal}")
        if not self._finished() or state.selection is None:
            raise InvalidBackupRequest("The prune cannot go on: its state holds work that can never be done.")
        if state.problems:
            raise BackupFailed(
                f"The prune could not remove everything it should ({'; '.join(state.problems)}); "
                f"it removed {tally.runs_removed} run(s) and {tally.snapshots_removed} snapshot(s). "
                "Run it again to finish."
            )
        return {
            "dryRun": state.request.dry_run,
            "rootDirectory": state.request.root,
            "retention": state.request.retention,
            "runsKept": state.selection.kept,
            **tally.to_json(),
            "removed": list(state.selection.removed_ids),
        }
