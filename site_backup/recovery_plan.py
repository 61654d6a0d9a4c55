"""How a restore or a verify is paced: find the backup, page through its catalog, a window of parts in flight.

The same shape as the backup's plan (``plan.py``), and driven by the same orchestrator loop: pure and
deterministic, results folded in as they come, a budget of calls per execution and continue-as-new with the
state. Its output: for a restore the bytes the target holds of the backup (or a failure naming the files that
could not be restored), for a verify a report that says whether everything is as recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from .errors import BackupFailed, BackupIncomplete, InvalidBackupRequest
from .messages import RunSummary, _field, _object
from .plan import Call
from .recovery_messages import PartsTask, PartTask, RecoveryTally

WINDOW = 8
CALLS_PER_EXECUTION = 400
KINDS = ("restore", "verify")


class RecoveryStep(StrEnum):
    FIND = "find"
    COUNT = "count"
    PARTS = "parts"
    RESTORE = "restore"
    VERIFY = "verify"


@dataclass
class RecoveryState:
    """What a restore or a verify carries from one generation to the next."""

    kind: str
    request: dict[str, Any]
    summary: RunSummary | None = None
    marker: str | None = None
    parts_done: bool = False
    ready: list[str] = field(default_factory=list)
    tally: RecoveryTally = field(default_factory=RecoveryTally)
    source_files: int | None = None  # counted on the site, for a comparing verify
    counted: bool = False
    generation: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "request": self.request,
            "recovery": {
                "summary": self.summary.to_json() if self.summary else None,
                "marker": self.marker,
                "partsDone": self.parts_done,
                "ready": self.ready,
                "tally": self.tally.to_json(),
                "sourceFiles": self.source_files,
                "counted": self.counted,
                "generation": self.generation,
            },
        }

    @classmethod
    def from_input(cls, kind: str, value: object) -> RecoveryState:
        """A fresh state for a request object, or the one a generation carried."""
        if not (isinstance(value, dict) and "recovery" in value):
            if not isinstance(value, dict):
                raise InvalidBackupRequest("Send a JSON object naming the backup and the directories.")
            return cls(kind, value)
        carried = _object(value.get("recovery"), "recovery state")
        request, ready = value.get("request"), carried.get("ready")
        if not isinstance(request, dict) or not isinstance(ready, list) or not all(isinstance(r, str) for r in ready):
            raise InvalidBackupRequest("Malformed recovery state.")
        summary = carried.get("summary")
        marker = carried.get("marker")
        source = carried.get("sourceFiles")
        return cls(
            kind,
            request,
            RunSummary.from_json(summary) if summary is not None else None,
            marker if isinstance(marker, str) else None,
            _field(carried, "partsDone", bool, "recovery state"),
            list(ready),
            RecoveryTally.from_json(carried.get("tally")),
            source if isinstance(source, int) and source >= 0 else None,
            _field(carried, "counted", bool, "recovery state"),
            _field(carried, "generation", int, "recovery state"),
        )


class RecoveryPlan:
    """The restore or verify counterpart of ``plan.Plan``: the same interface for the orchestrator loop."""

    def __init__(self, state: RecoveryState) -> None:
        if state.kind not in KINDS:
            raise InvalidBackupRequest(f"Unknown recovery {state.kind!r}.")
        self.state = state
        self.finding = self.listing = self.counting = False
        self.in_flight = 0
        self.scheduled = 0
        self.fatal: str | None = None

    @property
    def compares(self) -> bool:
        return self.state.kind == "verify" and bool(self.state.request.get("compareWithSource"))

    def next_groups(self) -> list[list[Call]]:
        state = self.state
        groups: list[list[Call]] = []
        if self.fatal is not None or self.scheduled >= CALLS_PER_EXECUTION:
            return groups
        if state.summary is None:
            if not self.finding:
                self.finding = True
                groups.append([self._call(RecoveryStep.FIND, state.request)])
            return groups
        if self.compares and not state.counted and not self.counting:
            self.counting = True
            groups.append([self._call(RecoveryStep.COUNT, {"rootDirectory": state.summary.root})])
        if not state.parts_done and not self.listing and len(state.ready) < WINDOW:
            self.listing = True
            groups.append([self._call(RecoveryStep.PARTS, PartsTask(state.summary, state.marker).to_json())])
        step = RecoveryStep.RESTORE if state.kind == "restore" else RecoveryStep.VERIFY
        while state.ready and self.in_flight < WINDOW and self.scheduled < CALLS_PER_EXECUTION:
            part = state.ready.pop(0)
            self.in_flight += 1
            groups.append([self._call(step, PartTask(state.request, state.summary, part).to_json(), part)])
        return groups

    def _call(self, step: RecoveryStep, payload: Any, part: str | None = None) -> Call:
        self.scheduled += 1
        return Call(step, payload, part)

    def record(self, call: Call, result: object = None, error: str | None = None) -> None:
        state = self.state
        step = RecoveryStep(call.step)
        if step is RecoveryStep.FIND:
            self.finding = False
            if error is not None:
                self.fatal = error
            else:
                state.summary = RunSummary.from_json(result)
        elif step is RecoveryStep.COUNT:
            self.counting = False
            state.counted = True
            data: Mapping[str, Any] = result if isinstance(result, dict) else {}
            files = data.get("files")
            state.source_files = files if error is None and isinstance(files, int) else None
        elif step is RecoveryStep.PARTS:
            self.listing = False
            if error is not None:
                self.fatal = f"The backup's catalog could not be read: {error}"
                return
            data = _object(result, "parts page")
            parts, marker = data.get("parts"), data.get("marker")
            if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
                raise InvalidBackupRequest("Malformed parts page.")
            state.ready.extend(parts)
            state.marker = marker if isinstance(marker, str) else None
            state.parts_done = state.marker is None
        else:
            self.in_flight -= 1
            if error is not None:
                state.tally += RecoveryTally(failed=1).with_problem(f"catalog part {call.unit}: {error}")
            else:
                state.tally += RecoveryTally.from_json(result)

    def _idle(self) -> bool:
        return not (self.finding or self.listing or self.counting or self.in_flight)

    def _done(self) -> bool:
        state = self.state
        if self.fatal is not None:
            return self._idle()
        return (
            state.summary is not None
            and state.parts_done
            and not state.ready
            and self._idle()
            and (state.counted or not self.compares)
        )

    def continues(self) -> bool:
        return self._idle() and not self._done() and self.scheduled >= CALLS_PER_EXECUTION

    def continuation(self) -> dict[str, Any]:
        return replace(self.state, generation=self.state.generation + 1).to_json()

    def status(self) -> dict[str, Any]:
        state, tally = self.state, self.state.tally
        if self._done():
            phase = "failed" if self.fatal or (state.kind == "restore" and tally.failed) else "completed"
        elif state.summary is None:
            phase = "finding the backup"
        else:
            phase = "restoring" if state.kind == "restore" else "verifying"
        status: dict[str, Any] = {
            "phase": phase,
            "backup": state.summary.run if state.summary else None,
            "filesTotal": state.summary.files if state.summary else 0,
            "bytesTotal": state.summary.bytes if state.summary else 0,
            "filesDone": tally.files,
            "bytesDone": tally.bytes,
            "generation": state.generation,
        }
        if state.kind == "restore":
            status |= {
                "filesRestored": tally.restored,
                "filesIdentical": tally.identical,
                "filesKept": tally.kept,
                "filesFailed": tally.failed,
            }
        else:
            status |= {"filesOk": tally.ok, "filesMissing": tally.missing, "filesDamaged": tally.damaged}
        return status

    def output(self) -> Any:
        """A restore's bytes (or a failure naming what could not be restored); a verify's report."""
        state, tally = self.state, self.state.tally
        if self.fatal is not None:
            raise BackupFailed(self.fatal)
        if not self._done():
            raise InvalidBackupRequest("The recovery cannot go on: its state holds work that can never be done.")
        if state.kind == "verify":
            return self.report()
        if tally.failed:
            shown = "; ".join(tally.problems)
            raise BackupIncomplete(
                f"{tally.failed} of {tally.files} file(s) could not be restored (the other "
                f"{tally.files - tally.failed}, {tally.bytes} bytes, were): {shown}"
            )
        return tally.bytes

    def report(self) -> dict[str, Any]:
        state, tally = self.state, self.state.tally
        assert state.summary is not None
        report: dict[str, Any] = {
            "ok": tally.missing == 0 and tally.damaged == 0 and tally.failed == 0,
            "backup": state.summary.run,
            "deep": bool(state.request.get("deep")),
            "files": tally.files,
            "bytes": tally.bytes,
            "filesOk": tally.ok,
            "missing": tally.missing,
            "damaged": tally.damaged,
            "failed": tally.failed,
        }
        if self.compares:
            present = tally.files - tally.deleted
            added = max(0, state.source_files - present) if state.source_files is not None else None
            report |= {"changed": tally.changed, "deleted": tally.deleted, "added": added}
        report["problems"] = list(tally.problems)
        return report
