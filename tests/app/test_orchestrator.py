"""E2_BackupSiteContent through the SDK's real replay: a first episode pinned event by event, then whole
backups under a simulated host (``tests/support/sim_host.py``) with many host-shaped orderings of
completions, failures and retries, across generations, with activities that back up an imaginary tree.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from site_backup.blobstore import StorageUnavailable
from site_backup.messages import (
    CopyResult,
    Counts,
    ListingCursor,
    PageRequest,
    PageResult,
    SegmentTask,
    Tuning,
    WorkUnit,
)
from site_backup.plan import PLAN_KEY
from tests.support import sim_host
from tests.support.histories import History, atoms
from tests.support.sim_host import PAYLOAD_LIMIT, SimHost
from tests.support.worker import call_orchestrator

ORCH = "E2_BackupSiteContent"
ROOT = "/data/site"
REQUEST = {"rootDirectory": ROOT, "include": [], "exclude": []}
RETRY = {"firstRetryIntervalInMilliseconds": 5000, "maxNumberOfAttempts": 3}


@dataclass
class FakeTree:
    """Activities over an imaginary tree of ``sizes``; ``fates`` fails files, units or pages on purpose.

    The tree remembers each unit's file range by its manifest name, so the copies know what they hold.
    Fates: ``"bad"`` (the file is reported failed), ``"gone"`` (vanished), ``"flaky"`` (its unit's activity
    fails once, then works), ``"broken"`` (its unit's activity always fails). ``pages_fail_at`` fails the
    listing page starting at that file, for good.
    """

    sizes: list[int]
    tuning: Tuning = field(default_factory=lambda: Tuning(batch_files=4, window=3, group_size=2, page_units=3))
    fates: dict[int, str] = field(default_factory=dict)
    large: set[int] = field(default_factory=set)
    pages_fail_at: int | None = None
    storage_down: Callable[[], bool] = lambda: False
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)

    def _unit(self, number: int, first: int, last: int, segments: int = 0) -> WorkUnit:
        name = f"work/fake/{number:08d}.json"
        self.ranges[name] = (first, last)
        size = sum(self.sizes[first : last + 1])
        return WorkUnit(number, name, last - first + 1, size, segments)

    def __call__(self, name: str, value: Any, attempt: int) -> Any:
        if name != "E2_CountFiles" and self.storage_down():
            raise StorageUnavailable("Storage could not be reached for PUT backups/x: Connection refused")
        if name == "E2_CountFiles":
            counts = {"files": len(self.sizes), "bytes": sum(self.sizes), "complete": True}
            return {**counts, "tuning": self.tuning.to_json()}
        if name == "E2_GetFileList":
            return self.page(PageRequest.from_json(value)).to_json()
        if name == "E2_CopyFileToBlob":
            return self.copy(WorkUnit.from_json(value), attempt).to_json()
        if name == "E2_StageFileSegment":
            task = SegmentTask.from_json(value)
            assert task.index is not None
            return {"bytes": self._segment_bytes(task.unit, task.index)}
        if name == "E2_CommitFileSegments":
            unit = SegmentTask.from_json(value).unit
            return CopyResult(files=1, bytes=unit.bytes, uploaded=1).to_json()
        if name == "E2_FinishBackup":
            return {"deleted": 0}
        raise AssertionError(f"unexpected activity {name}")

    def page(self, page: PageRequest) -> PageResult:
        start = int(page.cursor.after) + 1 if page.cursor.after is not None else 0
        if self.pages_fail_at is not None and start >= self.pages_fail_at:
            raise PermissionError(f"Cannot list directory '{ROOT}/d{start}': Permission denied.")
        tuning = page.tuning or self.tuning
        units, index, number = [], start, page.cursor.next_unit
        while index < len(self.sizes) and len(units) < tuning.page_units:
            if index in self.large:
                units.append(self._unit(number, index, index, segments=3))
                index += 1
            else:
                end = index
                while end < len(self.sizes) and end - index < tuning.batch_files and end not in self.large:
                    end += 1
                units.append(self._unit(number, index, end - 1))
                index = end
            number += 1
        listed = sum(u.files for u in units)
        cursor = ListingCursor(f"{index - 1:07d}", None, number) if index < len(self.sizes) else None
        return PageResult(tuple(units), cursor, _counts(listed, sum(u.bytes for u in units)), _counts(0, 0), tuning)

    def copy(self, unit: WorkUnit, attempt: int) -> CopyResult:
        first, last = self.ranges[unit.manifest]
        fates = {self.fates.get(i) for i in range(first, last + 1)}
        if "broken" in fates or ("flaky" in fates and attempt == 1):
            raise ConnectionError("storage unreachable")
        result = CopyResult()
        for i in range(first, last + 1):
            fate = self.fates.get(i)
            if fate == "bad":
                result += CopyResult(files=1, failed=1, failures=(f"{ROOT}/f{i}: PermissionError: denied",))
            elif fate == "gone":
                result += CopyResult(files=1, vanished=1)
            else:
                result += CopyResult(files=1, bytes=self.sizes[i], uploaded=1)
        return result

    def _segment_bytes(self, unit: WorkUnit, index: int) -> int:
        share = unit.bytes // unit.segments
        return unit.bytes - share * (unit.segments - 1) if index == unit.segments - 1 else share

    def expected_bytes(self) -> int:
        broken_units = self._broken_files()
        return sum(
            size
            for i, size in enumerate(self.sizes)
            if self.fates.get(i) not in ("bad", "gone") and i not in broken_units
        )

    def _broken_files(self) -> set[int]:
        broken: set[int] = set()
        index = 0
        while index < len(self.sizes):
            end = index + 1 if index in self.large else index
            if index not in self.large:
                while end < len(self.sizes) and end - index < self.tuning.batch_files and end not in self.large:
                    end += 1
            unit = set(range(index, end))
            if any(self.fates.get(i) == "broken" for i in unit):
                broken |= unit
            index = end
        return broken


def _counts(files: int, size: int) -> Counts:
    return Counts(files, size)


def run(tree: FakeTree, seed: int = 0, request: Any = ROOT, max_batch: int | None = None) -> Any:
    return SimHost(ORCH, tree, seed, max_batch).run(request)


def test_the_first_episode_counts_and_lists_the_first_page():
    outcome, state = call_orchestrator(ORCH, History(ORCH, REQUEST).context())
    assert outcome == "state" and state["isDone"] is False
    count, page = atoms(state["actions"][0])
    assert (count["actionType"], count["functionName"], count["retryOptions"]) == (1, "E2_CountFiles", RETRY)
    assert json.loads(count["input"]) == REQUEST
    assert page["functionName"] == "E2_GetFileList"
    assert json.loads(page["input"]) == {
        "request": REQUEST,
        "run": "abc123",
        "cursor": {"after": None, "marker": None, "nextUnit": 0},
        "tuning": None,
    }
    assert state["customStatus"]["phase"] == "listing"


def test_a_page_is_copied_through_the_window_in_task_all_groups():
    tree = FakeTree([10] * 40)
    history = History(ORCH, REQUEST)
    history.task_scheduled(0, "E2_CountFiles", json.dumps(REQUEST))
    page_input = json.dumps({"request": REQUEST, "run": "abc123", "cursor": ListingCursor().to_json(), "tuning": None})
    history.task_scheduled(1, "E2_GetFileList", page_input)
    history.episode().task_completed(1, tree.page(PageRequest.from_json(json.loads(page_input))).to_json())
    outcome, state = call_orchestrator(ORCH, history.context())
    assert outcome == "state"
    first_wait, second_wait = state["actions"][0]
    assert first_wait["actionType"] == 11  # task_any over the count and the page
    # Window 3 with groups of 2: a task_all of two copies and a single copy, waited for with one task_any
    # (a with-retry call always sits in a one-child WhenAll of the SDK's own).
    assert second_wait["actionType"] == 11
    groups = second_wait["compoundActions"]
    assert [len(atoms([g])) for g in groups] == [2, 1]
    assert [len(g["compoundActions"]) for g in groups] == [2, 1]
    assert [json.loads(a["input"])["number"] for a in atoms(groups)] == [0, 1, 2]
    assert state["customStatus"]["filesTotal"] == 12  # what the page listed; the count is still running


@dataclass
class CopyWindow:
    """What each episode asked for, seen from outside the orchestrator: its ``task_all`` groups of copies, and
    how many copies were in flight at its end (scheduled so far, less those the history reports completed).

    It wraps the call into the real orchestrator that the simulated host makes, and only reads what goes in and
    out; the expectations are then computed from the test's own tuning, not from the plan.
    """

    groups: list[tuple[int, ...]] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)

    def observe(self, call: Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]]) -> Callable[..., Any]:
        def observed(name: str, context: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            outcome, state = call(name, context)
            if outcome == "state":
                self._episode(context, state["actions"][0])
            return outcome, state

        return observed

    def _episode(self, context: dict[str, Any], actions: list[dict[str, Any]]) -> None:
        copies = {e["EventId"] for e in context["history"] if e["EventType"] == 4 and e["Name"] == COPY}
        completed = sum(1 for e in context["history"] if e["EventType"] == 5 and e["TaskScheduledId"] in copies)
        scheduled = 0
        for wait in (a for a in actions if a["actionType"] == 11):  # each task_any and what it waits for
            for child in wait["compoundActions"]:
                numbers = tuple(json.loads(a["input"])["number"] for a in atoms([child]) if a["functionName"] == COPY)
                scheduled += len(numbers)
                if numbers and numbers not in self.groups:
                    self.groups.append(numbers)
        self.in_flight.append(scheduled - completed)


COPY = "E2_CopyFileToBlob"


@pytest.mark.parametrize("seed", range(40))
def test_any_ordering_of_completions_adds_up(seed, monkeypatch):
    tree = FakeTree([seed % 7 + i for i in range(37)])
    window = CopyWindow()
    monkeypatch.setattr(sim_host, "call_orchestrator", window.observe(sim_host.call_orchestrator))
    result = run(tree, seed)
    assert (result.outcome, result.output) == ("completed", sum(tree.sizes))
    final = result.executions[-1].custom_statuses[-1]
    assert final["phase"] == "completed"
    assert (final["filesDone"], final["bytesDone"], final["filesUploaded"]) == (37, sum(tree.sizes), 37)
    copied = sorted(v["manifest"] for n, v in result.calls if n == "E2_CopyFileToBlob")
    assert len(copied) == len(set(copied)) == 10  # every unit exactly once (no failures here)
    # Expected from the input alone: 37 files in units of batch_files=4 (the last one holds one file)...
    assert {tree.ranges[m] for m in copied} == {(first, min(first + 3, 36)) for first in range(0, 37, 4)}
    # ... fanned out in task_all groups of at most group_size=2, each unit in exactly one group, in order ...
    assert all(1 <= len(group) <= 2 for group in window.groups)
    assert [n for group in window.groups for n in group] == list(range(10))
    # ... with never more than window=3 in flight, and the window filled: 3 at once once the first page is in.
    assert max(window.in_flight) == 3


@pytest.mark.parametrize("seed", range(60))
def test_failures_and_retries_in_any_ordering_end_with_the_right_report(seed):
    import random

    rnd = random.Random(seed)
    count = rnd.randint(3, 30)
    fates = {i: rnd.choice(["bad", "gone", "flaky", "broken"]) for i in rnd.sample(range(count), rnd.randint(0, 4))}
    tree = FakeTree([rnd.randint(1, 100) for _ in range(count)], fates=fates)
    result = run(tree, seed, max_batch=rnd.choice([1, 2, 3, None]))
    broken = tree._broken_files()
    failed = len(broken) + sum(1 for i, f in fates.items() if f == "bad" and i not in broken)
    if failed:
        assert result.outcome == "failed", result.output
        assert result.error.startswith(f"{failed} of {count} file(s) could not be backed up"), result.error
        assert f"{tree.expected_bytes()} bytes, were)" in result.error
        if broken:
            assert "storage unreachable" in result.error
    else:
        assert (result.outcome, result.output) == ("completed", tree.expected_bytes())
    final = result.executions[-1].custom_statuses[-1]
    assert final["filesVanished"] == sum(1 for i, f in fates.items() if f == "gone" and i not in broken)


@pytest.mark.parametrize("seed", range(8))
def test_generations_carry_everything_and_stay_small(seed):
    """A budget of 5 calls per execution: many generations, each continuing from the carried plan."""
    tuning = Tuning(batch_files=3, window=4, group_size=3, page_units=4, units_per_execution=5)
    tree = FakeTree([100 + i for i in range(61)], tuning=tuning, fates={7: "gone", 30: "bad"}, large={12, 40})
    result = run(tree, seed)
    assert result.outcome == "failed"
    assert result.error.startswith("1 of 61 file(s) could not be backed up (the other 59,")
    assert f"{tree.expected_bytes()} bytes, were): {ROOT}/f30: PermissionError: denied" in result.error
    assert len(result.executions) > 5
    statuses = [s for e in result.executions for s in e.custom_statuses]
    assert [s["filesDone"] for s in statuses] == sorted(s["filesDone"] for s in statuses)  # never goes back
    assert statuses[-1]["generation"] == len(result.executions)
    for execution in result.executions:
        assert execution.largest_payload < PAYLOAD_LIMIT
        assert execution.actions <= 5 + 2  # the budget, plus a finish or a continue-as-new


def test_a_large_file_is_staged_in_segments_then_committed_once():
    tree = FakeTree([5, 3000, 7], large={1})
    result = run(tree)
    assert (result.outcome, result.output) == ("completed", 3012)
    names = [n for n, _ in result.calls]
    assert names.count("E2_StageFileSegment") == 3 and names.count("E2_CommitFileSegments") == 1
    assert names.index("E2_CommitFileSegments") > max(i for i, n in enumerate(names) if n == "E2_StageFileSegment")
    staged = [s["bytesDone"] for e in result.executions for s in e.custom_statuses]
    assert staged == sorted(staged) and staged[-1] == 3012


def test_a_listing_that_fails_for_good_fails_with_its_own_message_after_the_copies_in_flight():
    tree = FakeTree([1] * 30, pages_fail_at=12)
    result = run(tree)
    assert result.outcome == "failed"
    assert "Cannot list directory '/data/site/d12': Permission denied." in result.error
    assert "Activity function" not in result.error and "$type" not in result.error
    assert [n for n, _ in result.calls].count("E2_CopyFileToBlob") == 3
    assert result.calls[-1][0] == "E2_FinishBackup"


def test_a_hundred_thousand_files_keep_every_history_and_payload_small():
    tree = FakeTree([2048] * 100_000, tuning=Tuning())
    result = run(tree, max_batch=4)
    assert (result.outcome, result.output) == ("completed", 2048 * 100_000)
    for execution in result.executions:
        assert execution.events <= 10_000 and execution.actions <= 10_000
        assert execution.largest_payload < PAYLOAD_LIMIT


@pytest.mark.parametrize(
    ("orchestration_input", "message"),
    [
        (None, "A directory to back up is required"),
        ({"rootDirectory": ROOT, "recursive": True}, "Unknown option(s) 'recursive'"),
        ({"request": REQUEST, PLAN_KEY: {"done": {"files": -5}}}, "Malformed"),
    ],
)
def test_invalid_input_fails_before_scheduling_anything(orchestration_input, message):
    outcome, state = call_orchestrator(ORCH, History(ORCH, orchestration_input).context())
    assert outcome == "failed"
    assert message in state["error"]
    assert atoms(state["actions"][0]) == []


def test_a_forged_plan_cannot_report_more_than_it_listed():
    forged = {
        "request": REQUEST,
        PLAN_KEY: {
            "tuning": None,
            "cursor": {"after": None, "marker": None, "nextUnit": 0},
            "listingDone": True,
            "ready": [],
            "large": [],
            "done": CopyResult(files=1, bytes=10**15, uploaded=1).to_json(),
            "listed": {"files": 0, "bytes": 0},
            "totals": None,
            "counted": True,
            "generation": 2,
        },
    }
    outcome, state = call_orchestrator(ORCH, History(ORCH, forged).context())
    assert outcome == "failed" and "more files done than listed" in state["error"]


def test_a_bare_string_posted_to_the_webhook_api_is_accepted():
    """The webhook stores the body parsed once: the context input is the path itself, not JSON text."""
    context = History(ORCH, ROOT).context()
    context["input"] = ROOT
    context["history"][1]["Input"] = json.dumps(ROOT)
    outcome, state = call_orchestrator(ORCH, context)
    assert outcome == "state"
    assert json.loads(atoms(state["actions"][0])[0]["input"]) == {"rootDirectory": ROOT, "include": [], "exclude": []}


def test_an_outage_is_waited_out_on_durable_timers_and_the_backup_completes():
    tuning = Tuning(batch_files=4, window=3, group_size=2, page_units=3, outage_seconds=600)
    tree = FakeTree([5] * 30, tuning=tuning)
    host = SimHost(ORCH, tree, seed=3)
    down_until = [None]

    def storage_down() -> bool:  # down from the 4th call on, for the next two timers
        if down_until[0] is None and len(host.calls) > 4:
            down_until[0] = host.clock + 2
        return down_until[0] is not None and host.clock < down_until[0]

    tree.storage_down = storage_down
    result = host.run(ROOT)
    assert (result.outcome, result.output) == ("completed", 150)
    statuses = [s for e in result.executions for s in e.custom_statuses]
    waiting = [s for s in statuses if s["phase"] == "waiting for storage"]
    assert waiting and "Connection refused" in waiting[0]["storageError"]
    assert sum(e.timers for e in result.executions) >= 2
    assert "storageError" not in statuses[-1]
    copied = {tree.ranges[v["manifest"]] for n, v in result.calls if n == "E2_CopyFileToBlob"}
    assert copied == {(i, min(i + 3, 29)) for i in range(0, 30, 4)}


def test_an_outage_longer_than_its_budget_fails_with_a_clear_message():
    tuning = Tuning(batch_files=4, window=3, group_size=2, page_units=3, outage_seconds=60)
    tree = FakeTree([5] * 30, tuning=tuning, storage_down=lambda: True)
    result = run(tree)
    assert result.outcome == "failed"
    assert result.error.startswith("Storage has been unavailable for over 60 s (last error: Storage could not be")
    assert "start the backup again once storage answers" in result.error
