"""The retention policy (restic's ``forget --keep-*`` rule): dates of runs in, runs kept out; and the prune's
plan when a step fails."""

from datetime import UTC, datetime

import pytest

from site_backup.errors import BackupFailed, InvalidBackupRequest
from site_backup.prune import kept_runs
from site_backup.prune_messages import PruneRequest
from site_backup.prune_plan import PrunePlan, PruneState, PruneStep
from site_backup.retention import RetentionPolicy
from site_backup.runs import IndexEntry


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Runs named by their start time; each case: policy, runs, the runs kept.
CASES = [
    (
        "last=3",
        ["2026-01-01 10:00", "2026-01-02 10:00", "2026-01-03 10:00", "2026-01-04 10:00"],
        ["2026-01-02 10:00", "2026-01-03 10:00", "2026-01-04 10:00"],
    ),
    # the newest run of each of the last 2 days that have runs
    (
        "daily=2",
        ["2026-01-01 08:00", "2026-01-01 12:00", "2026-01-01 20:00", "2026-01-03 09:00", "2026-01-03 23:59"],
        ["2026-01-01 20:00", "2026-01-03 23:59"],
    ),
    ("daily=5", ["2026-01-01 08:00", "2026-01-01 12:00"], ["2026-01-01 12:00"]),
    (
        "hourly=2",
        ["2026-01-01 08:05", "2026-01-01 08:55", "2026-01-01 09:10", "2026-01-01 07:00"],
        ["2026-01-01 08:55", "2026-01-01 09:10"],
    ),
    # ISO weeks: 2026-01-04 is a Sunday (week 1), 2026-01-05 a Monday (week 2)
    (
        "weekly=2",
        ["2025-12-28 10:00", "2026-01-01 10:00", "2026-01-04 10:00", "2026-01-05 10:00"],
        ["2026-01-04 10:00", "2026-01-05 10:00"],
    ),
    (
        "monthly=2",
        ["2026-01-31 23:00", "2026-02-01 01:00", "2026-02-27 01:00", "2026-03-15 00:00"],
        ["2026-02-27 01:00", "2026-03-15 00:00"],
    ),
    ("yearly=1", ["2025-06-01 00:00", "2026-01-01 00:00", "2026-05-01 00:00"], ["2026-05-01 00:00"]),
    # rules add up: the last run, and the newest of each of the last 3 days
    (
        "last=1,daily=3",
        ["2026-01-01 08:00", "2026-01-02 08:00", "2026-01-02 09:00", "2026-01-03 08:00", "2026-01-04 08:00"],
        ["2026-01-02 09:00", "2026-01-03 08:00", "2026-01-04 08:00"],
    ),
    (
        "last=2,monthly=12",
        ["2025-11-10 00:00", "2025-12-10 00:00", "2025-12-20 00:00", "2026-01-05 00:00", "2026-01-06 00:00"],
        ["2025-11-10 00:00", "2025-12-20 00:00", "2026-01-05 00:00", "2026-01-06 00:00"],
    ),
    ("last=7,daily=30,weekly=12,monthly=24", [], []),
]


@pytest.mark.parametrize(("policy", "runs", "kept"), CASES)
def test_the_policy_keeps_exactly_what_it_says(policy, runs, kept):
    named = [(run, at(run)) for run in runs]
    assert RetentionPolicy.parse(policy).keep(named) == set(kept)


def test_removing_what_a_policy_drops_never_changes_what_it_keeps():
    """A prune interrupted half-way and run again decides the same (a dropped run counts for no rule)."""
    runs = [(f"r{day}-{hour}", at(f"2026-01-{day:02d} {hour:02d}:00")) for day in range(1, 29) for hour in (3, 15)]
    policy = RetentionPolicy.parse("last=3,daily=7,weekly=3,monthly=1")
    kept = policy.keep(runs)
    for dropped in [r for r in runs if r[0] not in kept][::3]:
        runs.remove(dropped)
        assert policy.keep(runs) == kept


def entry(run: str, started: str, outcome: str = "completed") -> IndexEntry:
    stamp = at(started).strftime("%Y%m%dT%H%M%S%fZ")
    return IndexEntry(f"index/k/{stamp}-{run}.json", run, outcome, stamp, stamp)


def test_failed_runs_count_for_no_rule_and_stay_only_while_nothing_newer_succeeded():
    entries = [
        entry("old-ok", "2026-01-01 10:00"),
        entry("old-failed", "2026-01-02 10:00", "failed"),
        entry("partial", "2026-01-03 10:00", "incomplete"),
        entry("new-failed", "2026-01-04 10:00", "failed"),
    ]
    assert kept_runs(entries, RetentionPolicy.parse("last=1")) == {"partial", "new-failed"}
    assert kept_runs(entries, RetentionPolicy.parse("last=2")) == {"old-ok", "partial", "new-failed"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "keeps nothing"),
        ("last=0", "keeps nothing"),
        ("forever=1", "is not a retention rule"),
        ("last=two", "is not a retention rule"),
        ("last=2,last=3", "given twice"),
    ],
)
def test_a_bad_policy_is_refused_with_the_form_to_use(text, says):
    with pytest.raises(InvalidBackupRequest, match=says) as raised:
        RetentionPolicy.parse(text)
    assert "last=7,daily=30" in str(raised.value) or "twice" in says


def test_a_policy_is_written_back_in_its_canonical_form():
    assert str(RetentionPolicy.parse(" monthly = 24, last=7 ,daily=30")) == "last=7,daily=30,monthly=24"


def test_a_failed_removal_stops_the_prune_before_any_snapshot_is_deleted():
    """The plan alone (it is pure): a run whose catalog could not be removed may still be restored, so the
    snapshots it needs must stay; the prune goes straight to clearing its work area and fails."""
    request = PruneRequest("/site", "last=1")
    plan = PrunePlan(PruneState(request), "work/p/prune/", "2026-12-01T00:00:00.000000Z")
    results = {
        PruneStep.SELECT: {"kept": 1, "removed": 1, "referencing": 1, "removedIds": ["old"]},
        PruneStep.FIND: {"written": True, "marker": None, "blobs": 2, "snapshots": 1},
        PruneStep.COLLECT: {"versions": 1},
    }
    steps = []
    while groups := plan.next_groups():
        for [call] in groups:
            steps.append(call.step)
            if call.step is PruneStep.REMOVE:
                plan.record(call, error="Storage answered 403 AuthorizationFailure")
            else:
                plan.record(call, results.get(call.step))
    assert steps == [PruneStep.SELECT, PruneStep.FIND, PruneStep.COLLECT, PruneStep.REMOVE, PruneStep.FINISH]
    assert plan.status()["phase"] == "failed"
    with pytest.raises(BackupFailed, match="403"):
        plan.output()
