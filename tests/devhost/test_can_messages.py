"""Messages sent while a continue-as-new episode runs reach the new execution; an async activity raising
CancelledError fails its task; a rejected child start fails in the episode's own transaction."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from http_client import call, wait_for_status

from devhost import history as h
from devhost.instances import new_instance
from devhost.model import MessageRow, RuntimeStatus
from devhost.store import EpisodeWrite, Store
from tests.support.devhost_process import DevhostProcess, running_devhost

APP = Path(__file__).parent / "apps" / "can_events"
WH = "/runtime/webhooks/durabletask"


def _wait_file(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def _start(base: str, instance_id: str, body: dict) -> None:
    assert call("POST", f"{base}{WH}/orchestrators/gated_can/{instance_id}", body).status == 202
    wait_for_status(base, instance_id, ("Running",), timeout=30)


def _raise(base: str, instance_id: str, value: int) -> None:
    assert call("POST", f"{base}{WH}/instances/{instance_id}/raiseEvent/E", value).status == 202


def test_event_raised_during_continue_as_new_episode_reaches_the_new_execution(tmp_path):
    with running_devhost(APP, hub=tmp_path / "hub.sqlite") as host:
        base = host.base_url
        (tmp_path / "can-1.go").write_text("1")
        _start(base, "c1", {"dir": str(tmp_path), "total": 0, "until": 3})
        _raise(base, "c1", 1)
        _wait_file(tmp_path / "can-0.entered")  # the episode that continues as new is running
        _raise(base, "c1", 2)
        (tmp_path / "can-0.go").write_text("1")
        status = wait_for_status(base, "c1", timeout=30)
        assert status["runtimeStatus"] == "Completed" and status["output"] == 3


def test_event_raised_during_continue_as_new_survives_a_crash_before_the_next_episode_commits(tmp_path):
    hub = tmp_path / "hub.sqlite"
    first = DevhostProcess(APP, hub=hub).start()
    try:
        _start(first.base_url, "c1", {"dir": str(tmp_path), "total": 0, "until": 3})
        _raise(first.base_url, "c1", 1)
        _wait_file(tmp_path / "can-0.entered")
        _raise(first.base_url, "c1", 2)
        (tmp_path / "can-0.go").write_text("1")
        # The continue-as-new is committed and the new execution's episode (holding the event) is running.
        _wait_file(tmp_path / "can-1.entered")
        first.kill()
    finally:
        first.stop()
    (tmp_path / "can-1.go").write_text("1")
    with running_devhost(APP, hub=hub) as second:
        status = wait_for_status(second.base_url, "c1", timeout=30)
        assert status["runtimeStatus"] == "Completed" and status["output"] == 3


def test_terminate_during_continue_as_new_episode_terminates_the_new_execution(tmp_path):
    with running_devhost(APP, hub=tmp_path / "hub.sqlite") as host:
        base = host.base_url
        _start(base, "t1", {"dir": str(tmp_path), "total": 0, "until": 3})
        _raise(base, "t1", 1)
        _wait_file(tmp_path / "can-0.entered")
        assert call("POST", f"{base}{WH}/instances/t1/terminate?reason=stop").status == 202
        (tmp_path / "can-0.go").write_text("1")
        status = wait_for_status(base, "t1", timeout=30)
        assert status["runtimeStatus"] == "Terminated" and status["output"] == "stop"


def test_events_delivered_to_the_execution_that_continues_as_new_but_not_consumed_are_dropped(tmp_path):
    """preserveUnprocessedEvents: false applies to events the old execution received, not later ones."""
    with running_devhost(APP, hub=tmp_path / "hub.sqlite") as host:
        base = host.base_url
        (tmp_path / "can-1.go").write_text("1")
        _start(base, "d1", {"dir": str(tmp_path), "total": 0, "until": 4})
        assert call("POST", f"{base}{WH}/instances/d1/suspend?reason=hold").status == 202
        wait_for_status(base, "d1", ("Suspended",), timeout=30)
        _raise(base, "d1", 1)
        _raise(base, "d1", 2)  # both are delivered in the resumed episode; only the first is consumed
        assert call("POST", f"{base}{WH}/instances/d1/resume?reason=go").status == 202
        _wait_file(tmp_path / "can-0.entered")
        (tmp_path / "can-0.go").write_text("1")
        _raise(base, "d1", 5)
        status = wait_for_status(base, "d1", timeout=30)
        # Dropped: 1 + 5. Carried over, the 2 would have made it 1 + 2 + 5.
        assert status["runtimeStatus"] == "Completed" and status["output"] == 6


def test_async_activity_raising_cancelled_error_fails_its_task(tmp_path):
    with running_devhost(APP, hub=tmp_path / "hub.sqlite") as host:
        base = host.base_url
        assert call("POST", f"{base}{WH}/orchestrators/call_cancels/x1", {"xs": [-1, 2, -1, 3]}).status == 202
        status = wait_for_status(base, "x1", timeout=30)
        assert status["runtimeStatus"] == "Completed"
        failed, two, failed_again, three = status["output"]
        assert (two, three) == (2, 3)
        assert failed == failed_again
        assert "Activity function 'cancels' failed" in failed and "CancelledError" in failed
        assert host.stats()["activities_run"] == 4


def test_rejected_child_start_fails_in_the_episode_transaction(tmp_path):
    store = Store(tmp_path / "hub.sqlite")
    try:
        now = h.utcnow()
        stamp = h.format_timestamp(now)
        child = new_instance("kid", "orch", "k1", None, now)
        store.create_instance(
            child, MessageRow(1, "kid", "k1", 0.0, h.execution_started(stamp, "orch", None, "kid", "k1"))
        )
        parent = new_instance("mom", "orch", "m1", None, now)
        store.create_instance(
            parent, MessageRow(2, "mom", "m1", 0.0, h.execution_started(stamp, "orch", None, "mom", "m1"))
        )
        ref = {"Name": "orch", "Version": "", "OrchestrationInstance": {"InstanceId": "mom", "ExecutionId": "m1"}}
        again = MessageRow(
            3, "kid", "k2", 0.0, h.execution_started(stamp, "orch", None, "kid", "k2", {**ref, "TaskScheduleId": 7})
        )
        failure = MessageRow(4, "mom", "m1", 0.0, h.sub_orchestration_failed(stamp, 7, "exists", "details"))
        write = EpisodeWrite(
            instance_id="mom",
            row=replace(parent, status=RuntimeStatus.RUNNING),
            consumed_message_ids=[2],
            children=[(new_instance("kid", "orch", "k2", None, now), again)],
            reject_child=lambda start: failure,
        )
        assert store.commit_episode(write) == [again]
        assert write.messages == [failure]
        queued = store.load_messages("mom")
        assert [m.id for m in queued] == [4]
        assert queued[0].event["EventType"] == h.EventType.SubOrchestrationInstanceFailed
        kid = store.get_instance("kid")
        assert kid is not None and kid.execution_id == "k1"
    finally:
        store.close()
