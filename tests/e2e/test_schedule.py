"""Scheduled backups under devhost: the timer fires on its NCRONTAB schedule, one run per root at a time, each
followed by a prune; a missed tick fires once; the admin API runs the timer by hand; no schedule, no harm."""

import itertools
import json
import os
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from site_backup.catalog import root_key
from site_backup.copier import RACY_SECONDS
from tests.support.devhost_process import DevhostProcess, running_devhost
from tests.support.local_run import restore_locally

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WEBHOOK = "/runtime/webhooks/durabletask"


@pytest.fixture
def sites(tmp_path) -> tuple[Path, Path]:
    big, small = tmp_path / "big site", tmp_path / "small"
    for i in range(1500):
        path = big / f"d{i % 30}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (i % 700))
    (small / "docs").mkdir(parents=True)
    (small / "docs" / "a.md").write_text("hello")
    time.sleep(RACY_SECONDS + 0.2)
    return big, small


@pytest.fixture
def schedule_env(azurite, tmp_path, sites, monkeypatch) -> dict[str, str]:
    container = f"sch{uuid.uuid4().hex[:16]}"
    settings = {
        "AzureWebJobsStorage": azurite.connection_string,
        "BACKUP_STORAGE": azurite.connection_string,
        "BACKUP_CONTAINER": container,
        "BACKUP_CATALOG_CONTAINER": f"{container}-catalog",
        "BACKUP_ALLOWED_ROOTS": str(tmp_path),
        "BACKUP_TUNING": json.dumps({"pruneMarginSeconds": 1, "batchFiles": 100}),
        "BACKUP_SCHEDULE": "*/2 * * * * *",
        "BACKUP_SCHEDULE_ROOTS": os.pathsep.join(str(s) for s in sites),
        "BACKUP_RETENTION": "last=2",
        "AzureWebJobs.E2_ScheduledBackup.Disabled": "false",
    }
    for key, value in settings.items():  # the in-process restores below read the same settings
        monkeypatch.setenv(key, value)
    return {**os.environ, **settings}


@pytest.fixture
def hub(tmp_path) -> Path:
    return tmp_path / "hub.sqlite"


def instances(host: DevhostProcess) -> list[dict]:
    response = requests.get(f"{host.base_url}{WEBHOOK}/instances", timeout=30)
    response.raise_for_status()
    return response.json()


def history_span(host: DevhostProcess, instance: str) -> tuple[datetime, datetime]:
    url = f"{host.base_url}{WEBHOOK}/instances/{instance}?showHistory=true"
    events = requests.get(url, timeout=30).json()["historyEvents"]
    stamps = [datetime.fromisoformat(e["Timestamp"][:26] + "+00:00") for e in events]
    return min(stamps), max(stamps)


def backups_of(found: list[dict], root: Path, status: str = "Completed") -> list[dict]:
    prefix = f"scheduled-{root_key(str(root))}-"
    return [
        i
        for i in found
        if i["name"] == "E2_BackupSiteContent" and i["instanceId"].startswith(prefix) and i["runtimeStatus"] == status
    ]


def prunes_of(found: list[dict], root: Path) -> list[dict]:
    prefix = f"scheduled-{root_key(str(root))}-"
    return [
        i
        for i in found
        if i["name"] == "E2_PruneBackups" and i["instanceId"].startswith(prefix) and i["runtimeStatus"] == "Completed"
    ]


def wait_until(condition, limit: float, what: str):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_ticks_back_up_each_root_one_run_at_a_time_and_prune_after_each(schedule_env, sites, hub, tmp_path):
    big = sites[0]
    with running_devhost(PROJECT_ROOT, hub=hub, env=schedule_env) as host:
        wait_until(
            lambda: all(len(prunes_of(instances(host), s)) >= 3 for s in sites),
            180,
            "three pruned backups of each root",
        )
        found = instances(host)
        log = host.output()
        for root in sites:
            spans = sorted(history_span(host, i["instanceId"]) for i in backups_of(found, root))
            for (_, ended), (began, _) in itertools.pairwise(spans):
                assert began >= ended, f"two backups of {root} overlapped"
        prunes = [i for i in found if i["name"] == "E2_PruneBackups" and i["runtimeStatus"] == "Completed"]
        assert len(prunes) >= 6 and all(p["output"]["retention"] == "last=2" for p in prunes)
        assert any(p["output"]["runsRemoved"] >= 1 for p in prunes)
    assert f"Skipped the scheduled backup of {big}" in log  # a tick came while its last run was going
    assert "Executing 'Functions.E2_ScheduledBackup' (Reason='Timer fired at" in log
    assert "The next 5 occurrences of the 'E2_ScheduledBackup' schedule (Cron: '*/2 * * * * *') will be:" in log
    for root in sites:  # what the prunes kept (at most the 2 of the last prune, and a run sealed after it)
        completed = [i["instanceId"] for i in backups_of(found, root)]
        first = min(completed, key=lambda run: run.rsplit("-", 1)[-1])
        target = tmp_path / f"restored-{first}"
        gone = restore_locally({"backup": first, "rootDirectory": str(root), "targetDirectory": str(target)})
        assert gone.error is not None and "There is no backup" in gone.error
        latest = restore_locally({"rootDirectory": str(root), "targetDirectory": str(tmp_path / f"latest-{root.name}")})
        assert latest.error is None, latest.error
        restored = tmp_path / f"latest-{root.name}"
        assert {p.relative_to(restored): p.read_bytes() for p in restored.rglob("*") if p.is_file()} == {
            p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()
        }


@pytest.mark.parametrize("changed", [False, True], ids=["same schedule", "schedule changed since"])
def test_a_tick_missed_while_the_host_was_down_fires_once(schedule_env, sites, hub, changed):
    env = {**schedule_env, "BACKUP_SCHEDULE": "0 0 * * * *", "BACKUP_SCHEDULE_ROOTS": str(sites[1])}  # hourly
    with running_devhost(PROJECT_ROOT, hub=hub, env=env) as host:
        wait_until(lambda: "The next 5 occurrences" in host.output(), 30, "the schedule")
    with sqlite3.connect(hub) as db:  # the host was down over the last three occurrences
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        last = hour - timedelta(hours=3)
        # A status another schedule wrote (its next occurrence half past): the host takes this schedule's next
        # occurrence after Last, two hours ago, as the one missed.
        upcoming = last + timedelta(minutes=30 if changed else 60)
        status = {"Last": last.isoformat(), "Next": upcoming.isoformat()}
        db.execute("UPDATE timers SET status = ? WHERE name = 'E2_ScheduledBackup'", (json.dumps(status),))
    with running_devhost(PROJECT_ROOT, hub=hub, env=env) as host:
        wait_until(lambda: backups_of(instances(host), sites[1]), 60, "the missed run")
        time.sleep(2)
        log = host.output()
        assert log.count("Trigger Details: UnscheduledInvocationReason: IsPastDue") == 1
        assert log.count("Executing 'Functions.E2_ScheduledBackup'") == 1
        assert "The backup schedule is past due" in log
        assert len(backups_of(instances(host), sites[1])) == 1


def test_the_admin_api_runs_the_timer_once_by_hand(schedule_env, sites, hub):
    env = {**schedule_env, "BACKUP_SCHEDULE": "0 0 0 1 1 *", "BACKUP_SCHEDULE_ROOTS": str(sites[1])}  # yearly
    with running_devhost(PROJECT_ROOT, hub=hub, env=env) as host:
        ran = requests.post(f"{host.base_url}/admin/functions/E2_ScheduledBackup", json={"input": ""}, timeout=30)
        assert ran.status_code == 202
        wait_until(lambda: backups_of(instances(host), sites[1]), 60, "the run started by hand")
        unknown = requests.post(f"{host.base_url}/admin/functions/Nope", json={"input": ""}, timeout=30)
        assert unknown.status_code == 404
        assert "programmatically called via the host APIs" in host.output()


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"AzureWebJobs.E2_ScheduledBackup.Disabled": "true"}, "Function 'E2_ScheduledBackup' is disabled"),
        ({"BACKUP_SCHEDULE": ""}, "The 'E2_ScheduledBackup' function is in error"),
    ],
)
def test_without_a_schedule_the_timer_never_fires_and_everything_else_works(schedule_env, sites, hub, settings, says):
    env = {**schedule_env, **settings}
    with running_devhost(PROJECT_ROOT, hub=hub, env=env) as host:
        started = requests.post(
            f"{host.base_url}/orchestrators/E2_BackupSiteContent", data=json.dumps(str(sites[1])), timeout=30
        )
        assert started.status_code == 202
        status = wait_until(
            lambda: (
                (s := requests.get(started.json()["statusQueryGetUri"], timeout=30).json())["runtimeStatus"]
                in ("Completed", "Failed")
                and s
            ),
            60,
            "the backup",
        )
        assert status["runtimeStatus"] == "Completed"
        time.sleep(2.5)  # more than one tick of the schedule that would have been
        log = host.output()
        assert says in log
        assert "Executing 'Functions.E2_ScheduledBackup'" not in log
