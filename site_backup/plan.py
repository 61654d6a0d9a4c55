"""How a backup is paced: what to schedule next, what each result means, and what the progress is.

The orchestrator is a thin loop around ``Plan``: it schedules the groups of calls the plan asks for, waits for
any of them, and hands each result back. Everything here is pure and deterministic, so it replays.

- **Listing in pages.** The tree is listed one page at a time from a cursor (``E2_GetFileList``); a page
  writes its files to storage as manifests of work units and returns only their names and counts.
- **A sliding window.** Up to ``window`` units are in flight; as soon as one finishes the next starts, so no
  worker waits for the slowest file of a page. Units are fanned out in small ``task_all`` groups, and the
  next page is listed while the current one is being copied.
- **Large files** are staged by several activities, one segment each, then committed by one.
- **Generations.** After ``units_per_execution`` calls an execution stops scheduling, lets its work finish
  and continues as new with its state (``PlanState``), so no history grows past about 400 events.
- **Failures.** A file that cannot be copied never stops the others; the backup fails at the end, naming
  the files. A listing that fails for good fails the backup with its message.
- **Storage outages.** A call that fails because storage is unreachable (``StorageUnavailable``, after the
  request and host retries) is put back, nothing new starts, and the backup waits on a durable timer (30 s,
  doubling to 5 minutes), with ``phase: waiting for storage``. When storage answers again it goes on; once it
  has waited ``outage_seconds`` in a row it fails with a message that says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .errors import BackupFailed, BackupIncomplete, InvalidBackupRequest
from .messages import (
    CopyResult,
    Counts,
    FinishTask,
    ListingCursor,
    PageRequest,
    PageResult,
    RunSummary,
    SegmentTask,
    Totals,
    Tuning,
    WorkUnit,
    _field,
    _object,
    short,
)
from .request import BackupRequest, parse_backup_request

PLAN_KEY = "plan"
DEFAULT_BUDGET = Tuning().units_per_execution
STORAGE_UNAVAILABLE = "StorageUnavailable"  # the exception type activities fail with when storage is down
FIRST_WAIT_SECONDS, MAX_WAIT_SECONDS = 30, 300


class Step(StrEnum):
    """The kinds of calls a backup makes; the Functions layer maps each to its activity."""

    COUNT = "count"
    LIST = "list"
    COPY = "copy"
    STAGE = "stage"
    COMMIT = "commit"
    FINISH = "finish"
    WAIT = "wait"  # a durable timer, not an activity: input is the seconds to wait


@dataclass(frozen=True)
class Call:
    """One activity call a plan wants made: its step, its JSON input, and the unit of work it concerns."""

    step: StrEnum
    input: Any
    unit: Any = None  # a WorkUnit of a backup, a catalog part's name of a restore or verify


@dataclass
class LargeFile:
    """A large file being staged segment by segment; committed once every segment is staged."""

    unit: WorkUnit
    scheduled: int = 0
    staged: int = 0
    staged_bytes: int = 0
    failure: str | None = None
    committing: bool = False
    again: list[int] = field(default_factory=list)  # segments to stage again (storage was unavailable)

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit.to_json(),
            "scheduled": self.scheduled,
            "staged": self.staged,
            "stagedBytes": self.staged_bytes,
            "failure": self.failure,
            "again": self.again,
        }

    @classmethod
    def from_json(cls, value: object) -> LargeFile:
        data = _object(value, "large file")
        unit = WorkUnit.from_json(data.get("unit"))
        again = data.get("again", [])
        if not isinstance(again, list) or not all(isinstance(i, int) and 0 <= i < unit.segments for i in again):
            raise InvalidBackupRequest("Malformed plan: a large file's segments to stage again are not indexes.")
        large = cls(
            unit,
            _field(data, "scheduled", int, "large file"),
            _field(data, "staged", int, "large file"),
            _field(data, "stagedBytes", int, "large file"),
            data.get("failure") if isinstance(data.get("failure"), str) else None,
            again=list(again),
        )
        if not unit.is_large or large.staged > large.scheduled or large.scheduled > unit.segments:
            raise InvalidBackupRequest("Malformed plan: a large file's segment counts are inconsistent.")
        return large


@dataclass
class Outage:
    """Storage unavailable: how long the backup has waited for it in a row, the waits made, the last error."""

    error: str
    waited: int = 0
    waits: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "waited": self.waited, "waits": self.waits}

    @classmethod
    def from_json(cls, value: object) -> Outage:
        data = _object(value, "outage")
        return cls(
            _field(data, "error", str, "outage"),
            _field(data, "waited", int, "outage"),
            _field(data, "waits", int, "outage"),
        )

    def next_wait(self) -> int:
        return min(FIRST_WAIT_SECONDS << self.waits, MAX_WAIT_SECONDS)


@dataclass
class PlanState:
    """Everything a backup carries from one generation to the next (the continue-as-new input)."""

    request: BackupRequest
    tuning: Tuning | None = None
    cursor: ListingCursor = field(default_factory=ListingCursor)
    listing_done: bool = False
    ready: list[WorkUnit] = field(default_factory=list)
    large: list[LargeFile] = field(default_factory=list)
    done: CopyResult = field(default_factory=CopyResult)
    listed: Counts = field(default_factory=Counts)
    totals: Totals | None = None
    counted: bool = False
    generation: int = 1
    outage: Outage | None = None
    started: str | None = None  # when the run began (ISO 8601, UTC), for its summary in the catalog

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request.to_json(),
            PLAN_KEY: {
                "tuning": self.tuning.to_json() if self.tuning else None,
                "cursor": self.cursor.to_json(),
                "listingDone": self.listing_done,
                "ready": [u.to_json() for u in self.ready],
                "large": [f.to_json() for f in self.large],
                "done": self.done.to_json(),
                "listed": self.listed.to_json(),
                "totals": self.totals.to_json() if self.totals else None,
                "counted": self.counted,
                "generation": self.generation,
                "outage": self.outage.to_json() if self.outage else None,
                "started": self.started,
            },
        }

    @classmethod
    def from_input(cls, value: object) -> PlanState:
        """A fresh state for a request (a directory string or object), or the state a generation carried."""
        if not (isinstance(value, dict) and PLAN_KEY in value):
            return cls(parse_backup_request(value))
        carried = _object(value.get(PLAN_KEY), "plan")
        tuning = carried.get("tuning")
        totals = carried.get("totals")
        ready, large = carried.get("ready"), carried.get("large")
        if not isinstance(ready, list) or not isinstance(large, list):
            raise InvalidBackupRequest("Malformed plan: 'ready' and 'large' must be lists.")
        state = cls(
            parse_backup_request(value.get("request")),
            Tuning.from_json(tuning) if tuning is not None else None,
            ListingCursor.from_json(carried.get("cursor")),
            _field(carried, "listingDone", bool, "plan"),
            [WorkUnit.from_json(u) for u in ready],
            [LargeFile.from_json(f) for f in large],
            CopyResult.from_json(carried.get("done")),
            Counts.from_json(carried.get("listed"), "plan"),
            Totals.from_json(totals) if totals is not None else None,
            _field(carried, "counted", bool, "plan"),
            _field(carried, "generation", int, "plan"),
            Outage.from_json(carried["outage"]) if carried.get("outage") is not None else None,
            carried["started"] if isinstance(carried.get("started"), str) else None,
        )
        if state.done.files > state.listed.files or state.done.failed > state.done.files:
            raise InvalidBackupRequest("Malformed plan: more files done than listed.")
        return state


class Plan:
    """Decides the next calls of one execution and folds their results into the state."""

    def __init__(self, state: PlanState, run: str, clock: Callable[[], datetime] | None = None) -> None:
        """``clock`` is the orchestration's deterministic time (``context.current_utc_datetime``)."""
        self.state = state
        self.run = run
        self.clock = clock or (lambda: datetime(1970, 1, 1, tzinfo=UTC))
        state.started = state.started or iso(self.clock())
        self.listing_in_flight = False
        self.counting = False
        self.work_in_flight = 0
        self.scheduled = 0  # calls scheduled by this execution
        self.fatal: str | None = None
        self.finishing = False
        self.finished = False
        self.waiting = False  # a timer is running until storage is tried again
        self.probing = state.outage is not None  # after a wait: one call tries whether storage answers
        self._segments_in_flight: dict[int, int] = {}

    # ---- what to schedule -----------------------------------------------------------------------------

    def next_groups(self) -> list[list[Call]]:
        """The calls to schedule now, in groups (a group of copies is fanned out with one ``task_all``)."""
        groups: list[list[Call]] = []
        state = self.state
        if self.fatal is None and state.outage is not None and not (self.waiting or self.probing):
            groups.extend(self._wait_for_storage())
        if self.fatal is None and (state.outage is None or self.probing) and not self._budget_spent():
            if not state.counted and not self.counting and state.generation == 1:
                self.counting = True
                groups.append([self._call(Step.COUNT, state.request.to_json())])
            if self._wants_page():
                self.listing_in_flight = True
                page = PageRequest(state.request, self.run, state.cursor, state.tuning)
                groups.append([self._call(Step.LIST, page.to_json())])
            # Without a tuning yet nothing has been listed, unless a carried state says otherwise.
            tuning = state.tuning or (Tuning() if state.ready or state.large else None)
            window = tuning.window if tuning else 0
            if state.outage is not None:  # probing: a single call at a time until one gets through
                window = 0 if self.listing_in_flight else 1
            group_size = tuning.group_size if tuning else 1
            while self.work_in_flight < window and not self._budget_spent():
                size = min(group_size, window - self.work_in_flight)
                group = [call for _ in range(size) if (call := self._next_work()) is not None]
                if not group:
                    break
                groups.append(group)
        if self._all_done() and not self.finishing:
            self.finishing = True
            groups.append([Call(Step.FINISH, FinishTask(self.summary()).to_json())])
        return groups

    def summary(self) -> RunSummary:
        """How the run ended, for the catalog: ``completed``, ``incomplete`` (some files could not be backed up,
        every other one is in the catalog) or ``failed`` (the backup could not go on)."""
        state, done = self.state, self.state.done
        if self.fatal is not None:
            outcome, reason = "failed", self.fatal
        elif done.failed:
            outcome, reason = "incomplete", failure_report(done)
        else:
            outcome, reason = "completed", None
        return RunSummary(
            self.run,
            state.request.root_directory,
            state.started or iso(self.clock()),
            iso(self.clock()),
            outcome,
            done.files - done.failed - done.vanished,
            done.bytes,
            done.uploaded,
            done.unchanged,
            done.vanished,
            done.failed,
            short(reason, 2000) if reason else None,
            state.generation,
        )

    def _wait_for_storage(self) -> list[list[Call]]:
        """A timer before storage is tried again, or, once the outage outlasts its budget, the end."""
        outage = self.state.outage
        assert outage is not None
        budget = (self.state.tuning or Tuning()).outage_seconds
        if outage.waited >= budget:
            self.fatal = (
                f"Storage has been unavailable for over {budget} s (last error: {outage.error}). What was copied "
                "so far stays backed up; start the backup again once storage answers."
            )
            return []
        self.waiting = True
        return [[self._call(Step.WAIT, outage.next_wait())]]

    def _wants_page(self) -> bool:
        state = self.state
        if state.listing_done or self.listing_in_flight:
            return False
        window = state.tuning.window if state.tuning else 1
        return len(state.ready) < window

    def _budget_spent(self) -> bool:
        budget = self.state.tuning.units_per_execution if self.state.tuning else DEFAULT_BUDGET
        return self.scheduled >= budget

    def _call(self, step: Step, payload: Any, unit: WorkUnit | None = None) -> Call:
        self.scheduled += 1
        return Call(step, payload, unit)

    def _next_work(self) -> Call | None:
        """The next unit of copying: a commit that is due, a segment of a large file, or the next unit."""
        state = self.state
        for large in state.large:
            if large.failure is None and not large.committing and large.staged == large.unit.segments:
                large.committing = True
                return self._work(Step.COMMIT, SegmentTask(large.unit).to_json(), large.unit)
        for large in state.large:
            if large.failure is None and (large.again or large.scheduled < large.unit.segments):
                return self._segment(large)
        if not state.ready:
            return None
        unit = state.ready.pop(0)
        if unit.is_large:
            large = LargeFile(unit)
            state.large.append(large)
            return self._segment(large)
        return self._work(Step.COPY, unit.to_json(), unit)

    def _segment(self, large: LargeFile) -> Call:
        if large.again:
            index = large.again.pop(0)
        else:
            index = large.scheduled
            large.scheduled += 1
        number = large.unit.number
        self._segments_in_flight[number] = self._segments_in_flight.get(number, 0) + 1
        return self._work(Step.STAGE, SegmentTask(large.unit, index).to_json(), large.unit)

    def _work(self, step: Step, payload: Any, unit: WorkUnit) -> Call:
        self.work_in_flight += 1
        return self._call(step, payload, unit)

    # ---- results ----------------------------------------------------------------------------------------

    def record(self, call: Call, result: object = None, error: str | None = None) -> None:
        """Fold one call's result (its JSON output) or its error into the state."""
        state = self.state
        if call.step is Step.FINISH:
            self.finished = True  # the work area is only tidied: a failure changes nothing
            return
        if call.step is Step.WAIT:
            self.waiting = False
            if state.outage is not None:  # else a call in flight found storage back meanwhile
                state.outage.waited += int(call.input)
                state.outage.waits += 1
                self.probing = True
            return
        if error is not None and error.startswith(f"{STORAGE_UNAVAILABLE}: "):
            self._put_back(call, error)
            return
        if call.step in (Step.LIST, Step.COPY, Step.STAGE, Step.COMMIT) and error is None:
            state.outage = None  # storage answered
            self.probing = False
        if call.step is Step.COUNT:
            self.counting = False
            state.counted = True
            state.totals = Totals.from_json(result) if error is None else None
            if state.totals is not None and state.totals.tuning is not None:
                state.tuning = state.tuning or state.totals.tuning
        elif call.step is Step.LIST:
            self.listing_in_flight = False
            if error is not None:
                self.fatal = error
            else:
                self._page(PageResult.from_json(result))
        else:
            self.work_in_flight -= 1
            assert call.unit is not None
            if call.step is Step.COPY:
                state.done += CopyResult.from_json(result) if error is None else _failed(call.unit, error)
            elif call.step is Step.STAGE:
                self._staged(call.unit, result, error)
            else:
                self._committed(call.unit, result, error)

    def _put_back(self, call: Call, error: str) -> None:
        """A call that failed only because storage is unavailable: it is made again once storage answers."""
        state = self.state
        reason = error.removeprefix(f"{STORAGE_UNAVAILABLE}: ")
        state.outage = state.outage or Outage(reason)
        state.outage.error = reason
        self.probing = False
        if call.step is Step.LIST:
            self.listing_in_flight = False
        elif call.step is Step.COUNT:
            self.counting = False
        else:
            self.work_in_flight -= 1
            assert call.unit is not None
            if call.step is Step.COPY:
                state.ready.insert(0, call.unit)
            elif call.step is Step.STAGE:
                self._segments_in_flight[call.unit.number] -= 1
                self._large(call.unit).again.append(int(call.input["index"]))
            else:
                self._large(call.unit).committing = False

    def _page(self, page: PageResult) -> None:
        state = self.state
        state.tuning = state.tuning or page.tuning
        if page.root is not None and page.root != state.request.root_directory:
            state.request = state.request.with_root(page.root)  # as resolved, which names it in the catalog
        state.ready.extend(page.units)
        state.cursor = page.cursor or state.cursor
        state.listing_done = page.cursor is None
        state.listed += page.listed
        failures = tuple(short(f) for f in page.failures)
        state.done += CopyResult(
            files=page.unchanged.files + page.failed,
            bytes=page.unchanged.bytes,
            unchanged=page.unchanged.files,
            failed=page.failed,
            failures=failures,
        )

    def _large(self, unit: WorkUnit) -> LargeFile:
        return next(f for f in self.state.large if f.unit.number == unit.number)

    def _staged(self, unit: WorkUnit, result: object, error: str | None) -> None:
        large = self._large(unit)
        self._segments_in_flight[unit.number] -= 1
        if error is not None:
            large.failure = large.failure or error
        else:
            data = _object(result, "segment result")
            large.staged += 1
            large.staged_bytes += _field(data, "bytes", int, "segment result")
        if large.failure is not None and not self._segments_in_flight[unit.number]:
            self.state.large.remove(large)
            self.state.done += _failed(unit, large.failure)

    def _committed(self, unit: WorkUnit, result: object, error: str | None) -> None:
        self.state.large.remove(self._large(unit))
        self.state.done += CopyResult.from_json(result) if error is None else _failed(unit, error)

    # ---- where the backup stands -----------------------------------------------------------------------

    def _all_done(self) -> bool:
        state = self.state
        if self.fatal is not None:
            return not (self.listing_in_flight or self.counting or self.work_in_flight or self.waiting)
        return (
            state.listing_done
            and state.counted
            and not state.ready
            and not state.large
            and state.outage is None
            and not (self.listing_in_flight or self.counting or self.work_in_flight or self.waiting)
        )

    def continues(self) -> bool:
        """Whether this execution stopped at its budget with work left: continue as new with ``continuation``."""
        idle = not (self.listing_in_flight or self.counting or self.work_in_flight or self.finishing or self.waiting)
        return idle and self.fatal is None and not self._all_done() and self._budget_spent()

    def continuation(self) -> dict[str, Any]:
        """The next generation's input; large files' in-flight bookkeeping is empty once the work drained."""
        state = replace(self.state, generation=self.state.generation + 1)
        for large in state.large:
            large.committing = False
        return state.to_json()

    def status(self) -> dict[str, Any]:
        """The customStatus document; it moves on with every result."""
        state = self.state
        done = state.done
        totals = state.totals.counts if state.totals else Counts()
        total = (
            state.listed
            if state.listing_done
            else Counts(max(totals.files, state.listed.files), max(totals.bytes, state.listed.bytes))
        )
        staged = sum(f.staged_bytes for f in state.large)
        if self.finished:
            phase = "failed" if self.fatal is not None or done.failed else "completed"
        elif self.fatal is not None:
            phase = "failing"
        elif state.outage is not None:
            phase = "waiting for storage"
        elif state.tuning is None:
            phase = "listing"
        else:
            phase = "copying"
        return {
            "phase": phase,
            "filesTotal": total.files,
            "bytesTotal": total.bytes,
            "filesDone": done.files,
            "bytesDone": done.bytes + staged,
            "filesUploaded": done.uploaded,
            "filesUnchanged": done.unchanged,
            "filesVanished": done.vanished,
            "filesFailed": done.failed,
            "generation": state.generation,
        } | ({"storageError": short(state.outage.error, 300)} if state.outage is not None else {})

    def output(self) -> int:
        """The backup's output, the total bytes it holds; raises when it could not back up everything."""
        if self.fatal is not None:
            raise BackupFailed(self.fatal)
        if not self.finished:  # only a state no run of the plan produces (e.g. one forged for the webhook API)
            raise InvalidBackupRequest(
                "The backup cannot go on: its state holds work that can never be scheduled. Start a new backup."
            )
        done = self.state.done
        if done.failed:
            raise BackupIncomplete(failure_report(done))
        return done.bytes


def iso(moment: datetime) -> str:
    """An aware UTC time as ISO 8601 with microseconds and a Z, the catalog's time format."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _failed(unit: WorkUnit, error: str) -> CopyResult:
    """A unit whose activity failed for good: every file in it counts as not backed up."""
    what = f"{unit.files} file(s) of work unit {unit.number}" if unit.files != 1 else f"work unit {unit.number}"
    return CopyResult(files=unit.files, failed=unit.files, failures=(short(f"{what}: {error}"),))


def failure_report(done: CopyResult) -> str:
    """The error a backup ends with when some files could not be backed up."""
    shown = "; ".join(done.failures)
    more = f"; and {done.failed - len(done.failures)} more" if done.failed > len(done.failures) else ""
    backed_up = done.files - done.failed - done.vanished
    return (
        f"{done.failed} of {done.files} file(s) could not be backed up "
        f"(the other {backed_up}, {done.bytes} bytes, were): {shown}{more}"
    )
