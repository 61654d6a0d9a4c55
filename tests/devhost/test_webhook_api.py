"""§13 conformance of devhost's webhook API and app HTTP routes, over real HTTP, on the patterns app."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
from http_client import call, wait_for_status

from tests.support.devhost_process import running_devhost

APP = Path(__file__).parent / "apps" / "patterns"
CHECK_STATUS_KEYS = [
    "id",
    "statusQueryGetUri",
    "sendEventPostUri",
    "terminatePostUri",
    "purgeHistoryDeleteUri",
    "restartPostUri",
    "suspendPostUri",
    "resumePostUri",
]
STATUS_KEYS = [
    "name",
    "instanceId",
    "runtimeStatus",
    "input",
    "customStatus",
    "output",
    "createdTime",
    "lastUpdatedTime",
]
EVENT_RAISED = 15  # §4.2
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    hub = tmp_path_factory.mktemp("hub") / "hub.sqlite"
    with running_devhost(APP, hub=hub) as process:
        yield process


@pytest.fixture(scope="module")
def wh(host):
    return f"{host.base_url}/runtime/webhooks/durabletask"


def start(wh: str, name: str, body=None, instance_id: str | None = None):
    url = f"{wh}/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
    return call("POST", url, body)


# ---- app HTTP routes -------------------------------------------------------------------------------------


def test_http_trigger_returns_the_function_response_unchanged(host):
    reply = call("GET", f"{host.base_url}/api/plain/bob?q=1")
    assert reply.status == 203
    assert reply.headers["X-Pattern"] == "plain"
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json() == {"name": "bob", "q": "1", "greeting": "hi from local.settings"}


def test_http_trigger_wrong_method_and_unknown_route_are_404(host):
    assert call("POST", f"{host.base_url}/api/plain/bob", {}).status == 404
    assert call("GET", f"{host.base_url}/api/nowhere").status == 404


def test_exception_in_function_is_500_with_empty_body_and_logged(host):
    reply = call("GET", f"{host.base_url}/api/explode")
    assert reply.status == 500 and reply.body == b""
    assert "secret detail that must not reach the client" in host.output()


def test_host_status_is_running(host):
    reply = call("GET", f"{host.base_url}/admin/host/status")
    assert reply.status == 200 and reply.json()["state"] == "Running"


def test_starter_uses_python_check_status_and_completes(host):
    reply = call("POST", f"{host.base_url}/api/orchestrators/chaining")
    assert reply.status == 202
    body = reply.json()
    assert "rewindPostUri" in body  # the SDK's payload, not the extension's
    assert reply.headers["Location"] == body["statusQueryGetUri"]
    assert reply.headers["Retry-After"] == "10"
    status = wait_for_status(host.base_url, body["id"])
    assert status["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_wait_for_completion_returns_200_with_output(host):
    reply = call("POST", f"{host.base_url}/api/wait/fan_out", {"n": 4})
    assert reply.status == 200
    assert reply.json() == 24


# ---- start -------------------------------------------------------------------------------------------------


def test_start_returns_extension_check_status(host, wh):
    reply = start(wh, "custom_status_orch", instance_id="a%20b")
    assert reply.status == 202
    body = reply.json()
    assert list(body) == CHECK_STATUS_KEYS
    assert body["id"] == "a b"
    assert body["statusQueryGetUri"] == f"{wh}/instances/a%20b?taskHub=PatternsHub&connection=Storage"
    assert reply.headers["Location"] == body["statusQueryGetUri"]
    assert reply.headers["Retry-After"] == "10"
    status = wait_for_status(host.base_url, "a%20b")
    assert status["customStatus"] == {"stage": "done", "greeting": "Hello status!"}


def test_start_and_wait_with_timeout_returns_output(wh):
    reply = call("POST", f"{wh}/orchestrators/chaining?timeout=20&pollingInterval=0.1")
    assert reply.status == 200
    assert reply.json() == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_start_unknown_function_is_400(wh):
    reply = start(wh, "nope")
    assert reply.status == 400
    body = reply.json()
    assert body["ExceptionType"] == "System.ArgumentException"
    assert body["ExceptionMessage"].startswith(
        "The function 'nope' doesn't exist, is disabled, or is not an orchestrator function."
    )
    assert "'chaining'" in body["ExceptionMessage"]


@pytest.mark.parametrize("bad_id", ["@entity", "x" * 257, "has%23hash", "back%5Cslash", "ctl%01x"])
def test_bad_instance_ids_are_400(wh, bad_id):
    reply = start(wh, "chaining", instance_id=bad_id)
    assert reply.status == 400
    assert reply.json()["ExceptionType"] == "System.ArgumentException"


@pytest.mark.parametrize("body", [b"{not json", b'"\xff\xfe"', b"[" * 65 + b"]" * 65, b"[" * 100_000])
def test_invalid_json_body_is_400(wh, body):
    """Not JSON, not UTF-8, or nested deeper than Json.NET's 64 levels: the extension's "Invalid JSON content"."""
    reply = call("POST", f"{wh}/orchestrators/chaining", raw=body)
    assert reply.status == 400
    assert "Invalid JSON content" in json.dumps(reply.json())


def test_start_on_live_id_is_500_and_on_finished_id_restarts(host, wh):
    assert start(wh, "long_wait", instance_id="live-1").status == 202
    reply = start(wh, "long_wait", instance_id="live-1")
    assert reply.status == 500
    assert "already exists" in reply.json()["ExceptionMessage"]
    assert call("POST", f"{wh}/instances/live-1/terminate?reason=done").status == 202
    wait_for_status(host.base_url, "live-1", ("Terminated",))
    assert start(wh, "chaining", instance_id="live-1").status == 202
    assert wait_for_status(host.base_url, "live-1")["name"] == "chaining"


def test_get_on_orchestrators_route_is_404(wh):
    assert call("GET", f"{wh}/orchestrators/chaining").status == 404


# ---- status --------------------------------------------------------------------------------------------------


def test_unknown_instance_is_404_with_empty_body(wh):
    reply = call("GET", f"{wh}/instances/does-not-exist")
    assert reply.status == 404 and reply.body == b""


def test_running_instance_is_202_with_retry_after_5_and_location(host, wh):
    assert start(wh, "long_wait", {"k": 1}, instance_id="running-1").status == 202
    wait_for_status(host.base_url, "running-1", ("Running",))
    url = f"{wh}/instances/running-1?showInput=true"
    reply = call("GET", url)
    assert reply.status == 202
    assert reply.headers["Retry-After"] == "5"
    assert reply.headers["Location"] == url
    body = reply.json()
    assert list(body) == STATUS_KEYS
    assert body["input"] == {"k": 1} and body["output"] is None
    assert TIME.match(body["createdTime"]) and TIME.match(body["lastUpdatedTime"])
    call("POST", f"{wh}/instances/running-1/terminate")


def test_completed_is_200_and_history_is_shaped(host, wh):
    instance_id = start(wh, "chaining").json()["id"]
    wait_for_status(host.base_url, instance_id)
    reply = call("GET", f"{wh}/instances/{instance_id}?showHistory=true&showHistoryOutput=true")
    assert reply.status == 200
    events = reply.json()["historyEvents"]
    kinds = [e["EventType"] for e in events]
    assert kinds == ["ExecutionStarted", "TaskCompleted", "TaskCompleted", "TaskCompleted", "ExecutionCompleted"]
    assert events[0]["FunctionName"] == "chaining" and "OrchestrationInstance" not in events[0]
    assert events[1]["FunctionName"] == "hello" and events[1]["Result"] == "Hello Tokyo!"
    assert events[1]["Input"] == json.dumps(['"Tokyo"'])
    assert "TaskScheduledId" not in events[1] and "ScheduledTime" in events[1]
    assert events[-1]["OrchestrationStatus"] == "Completed"
    plain = call("GET", f"{wh}/instances/{instance_id}?showHistory=true&showInput=false").json()
    assert all("Result" not in e and "Input" not in e for e in plain["historyEvents"])


def test_failed_is_200_or_500_with_flag(host, wh):
    instance_id = start(wh, "failing_orch").json()["id"]
    status = wait_for_status(host.base_url, instance_id)
    assert status["runtimeStatus"] == "Failed"
    assert status["output"].startswith(
        "Orchestrator function 'failing_orch' failed: Activity function 'boom' failed: ValueError: boom"
    )
    assert call("GET", f"{wh}/instances/{instance_id}").status == 200
    assert call("GET", f"{wh}/instances/{instance_id}?returnInternalServerErrorOnFailure=TRUE").status == 500


def test_unknown_activity_fails_instead_of_hanging(host, wh):
    instance_id = start(wh, "unknown_activity_orch").json()["id"]
    status = wait_for_status(host.base_url, instance_id)
    assert status["runtimeStatus"] == "Failed"
    assert "The function 'no_such_activity' doesn't exist" in status["output"]


# ---- lifecycle -------------------------------------------------------------------------------------------------


def test_terminate_running_then_410_when_finished(host, wh):
    instance_id = start(wh, "long_wait").json()["id"]
    assert call("POST", f"{wh}/instances/{instance_id}/terminate?reason=stop+now").status == 202
    status = wait_for_status(host.base_url, instance_id, ("Terminated",))
    assert status["output"] == "stop now"
    assert call("POST", f"{wh}/instances/{instance_id}/terminate").status == 410
    assert call("POST", f"{wh}/instances/unknown-x/terminate").status == 404


def test_raise_event_codes(host, wh):
    instance_id = start(wh, "long_wait").json()["id"]
    url = f"{wh}/instances/{instance_id}/raiseEvent/Finish"
    reply = call("POST", url, raw=b'"x"', content_type="text/plain")
    assert reply.status == 400
    assert reply.json() == {"Message": "Only application/json request content is supported"}
    assert call("POST", url, raw=b"{bad").status == 400
    assert call("POST", f"{wh}/instances/nobody/raiseEvent/Finish", {"a": 1}).status == 404
    assert call("POST", url, {"by": "bob"}).status == 202
    assert wait_for_status(host.base_url, instance_id)["output"] == {"by": "bob"}
    assert call("POST", url, {"by": "bob"}).status == 410


def test_suspend_holds_events_until_resume(host, wh):
    instance_id = start(wh, "long_wait").json()["id"]
    wait_for_status(host.base_url, instance_id, ("Running",))
    assert call("POST", f"{wh}/instances/{instance_id}/suspend?reason=pause").status == 202
    wait_for_status(host.base_url, instance_id, ("Suspended",))
    assert call("POST", f"{wh}/instances/{instance_id}/raiseEvent/Finish", 7).status == 202
    reply = call("GET", f"{wh}/instances/{instance_id}")
    assert reply.status == 202 and reply.json()["runtimeStatus"] == "Suspended"
    assert call("POST", f"{wh}/instances/{instance_id}/resume?reason=go").status == 202
    status = wait_for_status(host.base_url, instance_id)
    assert status["runtimeStatus"] == "Completed" and status["output"] == 7


def test_timer_and_event_patterns(host, wh):
    timed = start(wh, "event_or_timer", {"seconds": 1}).json()["id"]
    raised = start(wh, "event_or_timer", {"seconds": 60}).json()["id"]
    wait_for_status(host.base_url, raised, ("Running",))
    assert call("POST", f"{wh}/instances/{raised}/raiseEvent/Approved", {"by": "bob"}).status == 202
    done = wait_for_status(host.base_url, raised)
    assert done["output"] == {"approved": {"by": "bob"}}
    assert done["customStatus"] == {"stage": "approved"}
    assert wait_for_status(host.base_url, timed)["output"] == "timed out"


def test_retries_succeed_and_exhaust(host, wh, tmp_path):
    ok_dir, bad_dir = tmp_path / "ok", tmp_path / "bad"
    ok_dir.mkdir()
    bad_dir.mkdir()
    ok = start(wh, "retry_orch", {"dir": str(ok_dir), "fail_times": 1, "max_attempts": 3}).json()["id"]
    bad = start(wh, "retry_orch", {"dir": str(bad_dir), "fail_times": 5, "max_attempts": 2}).json()["id"]
    assert wait_for_status(host.base_url, ok)["output"] == "ok on attempt 2"
    failed = wait_for_status(host.base_url, bad)
    assert failed["runtimeStatus"] == "Failed"
    assert "RuntimeError: nope 2" in failed["output"]
    assert (bad_dir / "flaky.count").read_text() == "2"
    events = call("GET", f"{wh}/instances/{bad}?showHistory=true").json()["historyEvents"]
    kinds = [e["EventType"] for e in events]
    assert kinds.count("TimerCreated") == 2 and kinds.count("TimerFired") == 2 and kinds.count("TaskFailed") == 2


def test_sub_orchestrations_and_continue_as_new(host, wh):
    parent = start(wh, "parent_orch").json()["id"]
    status = wait_for_status(host.base_url, parent)
    assert status["output"] == {"first": ["Hello Tokyo!", "Hello Seattle!", "Hello London!"], "second": 12}
    child = call("GET", f"{wh}/instances/child-of-{parent}").json()
    assert child["runtimeStatus"] == "Completed" and child["output"] == 12
    can = start(wh, "counter_can").json()["id"]
    assert wait_for_status(host.base_url, can)["output"] == 3
    # Like the real host: a webhook body that is a bare number fails in get_input() (§6).
    bare = start(wh, "counter_can", 0).json()["id"]
    assert wait_for_status(host.base_url, bare)["runtimeStatus"] == "Failed"


def test_restart_with_new_and_same_id(host, wh):
    original = start(wh, "chaining").json()["id"]
    wait_for_status(host.base_url, original)
    reply = call("POST", f"{wh}/instances/{original}/restart")
    assert reply.status == 202 and reply.json()["id"] != original
    wait_for_status(host.base_url, reply.json()["id"])
    same = call("POST", f"{wh}/instances/{original}/restart?restartWithNewInstanceId=false")
    assert same.status == 202 and same.json()["id"] == original
    reply = call("POST", f"{wh}/instances/never-was/restart")
    assert reply.status == 400
    assert reply.json()["ExceptionMessage"] == "InstanceId does not match a valid orchestration instance."


# ---- list and purge ----------------------------------------------------------------------------------------


def test_list_with_top_and_continuation(host, wh):
    for i in range(3):
        start(wh, "chaining", instance_id=f"listme-{i}")
    for i in range(3):
        wait_for_status(host.base_url, f"listme-{i}")
    seen, token, pages = [], None, 0
    while True:
        reply = call(
            "GET",
            f"{wh}/instances/?instanceIdPrefix=listme-&top=2",
            headers={"x-ms-continuation-token": token} if token else None,
        )
        assert reply.status == 200
        seen += [s["instanceId"] for s in reply.json()]
        pages += 1
        token = reply.headers.get("x-ms-continuation-token")
        if not token or token == "null":
            break
    assert sorted(seen) == ["listme-0", "listme-1", "listme-2"] and pages == 2
    running = call("GET", f"{wh}/instances/?runtimeStatus=Completed&instanceIdPrefix=listme-").json()
    assert len(running) == 3 and all(s["input"] is None for s in running)


def test_purge_one_and_by_filter(host, wh):
    start(wh, "chaining", instance_id="purge-me")
    wait_for_status(host.base_url, "purge-me")
    failed = start(wh, "failing_orch").json()["id"]  # one for the filter below, whatever ran before
    assert wait_for_status(host.base_url, failed)["runtimeStatus"] == "Failed"
    reply = call("DELETE", f"{wh}/instances/purge-me")
    assert reply.status == 200 and reply.json() == {"instancesDeleted": 1}
    assert call("GET", f"{wh}/instances/purge-me").status == 404
    assert call("DELETE", f"{wh}/instances/purge-me").status == 404
    reply = call("DELETE", f"{wh}/instances/")
    assert reply.status == 400
    assert reply.json() == "Please provide value for 'createdTimeFrom' parameter."
    reply = call("DELETE", f"{wh}/instances/?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Failed")
    assert reply.status == 200 and reply.json()["instancesDeleted"] >= 1
    assert call("GET", f"{wh}/instances/{failed}").status == 404
    assert call("DELETE", f"{wh}/instances/?createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Failed").status == 404


def test_entity_routes_are_clearly_unsupported(wh):
    reply = call("GET", f"{wh}/entities/counter/k1")
    assert reply.status == 501
    assert "not supported by devhost" in reply.json()["Message"]


def test_rpc_port_serves_the_same_api(host):
    reply = call("GET", f"{host.rpc_url}instances/does-not-exist")
    assert reply.status == 404
    reply = call("POST", f"{host.rpc_url}orchestrators/chaining")
    assert reply.status == 202


def test_sub_orchestration_with_retry(host, wh, tmp_path):
    instance_id = start(wh, "parent_retry_orch", {"dir": str(tmp_path), "fail_times": 1}).json()["id"]
    status = wait_for_status(host.base_url, instance_id)
    assert status["output"] == "ok on attempt 2"
    events = call("GET", f"{wh}/instances/{instance_id}?showHistory=true").json()["historyEvents"]
    kinds = [e["EventType"] for e in events]
    assert kinds.count("SubOrchestrationInstanceFailed") == 1
    assert kinds.count("SubOrchestrationInstanceCompleted") == 1
    assert kinds.count("TimerFired") == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "unknown_sub_orch",
            "The function 'no_such_orchestrator' doesn't exist, is disabled, or is not an orchestrator function.",
        ),
        ("entity_orch", "Durable entities are not supported by devhost"),
    ],
)
def test_unsupported_or_unknown_calls_fail_clearly(host, wh, name, message):
    instance_id = start(wh, name).json()["id"]
    status = wait_for_status(host.base_url, instance_id)
    assert status["runtimeStatus"] == "Failed"
    assert message in status["output"]


def test_stats_endpoint_counts_work(host, wh):
    instance_id = start(wh, "chaining").json()["id"]  # some work to count, whatever ran before
    assert wait_for_status(host.base_url, instance_id)["runtimeStatus"] == "Completed"
    stats = call("GET", f"{host.base_url}/admin/devhost/stats").json()
    assert stats["episodes"] > 0 and stats["activities_run"] > 0
    assert stats["sqlite_transactions"] > 0 and stats["replay_seconds"] > 0


# ---- review regressions ----------------------------------------------------------------------------------------


def _queued_event_types(hub: Path, instance_id: str) -> list[int]:
    """EventTypes of the instance's unconsumed messages in the hub, oldest first."""
    conn = sqlite3.connect(f"file:{hub}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT event FROM messages WHERE instance_id = ? ORDER BY id", (instance_id,))
        return [json.loads(r[0])["EventType"] for r in rows]
    finally:
        conn.close()


def test_rejected_start_and_restart_keep_events_held_while_suspended(host, wh):
    """A 500 for a live id (start, or restart with the same id) must not drop what the suspended instance holds."""
    instance_id = "held-1"
    assert start(wh, "long_wait", instance_id=instance_id).status == 202
    wait_for_status(host.base_url, instance_id, ("Running",))
    assert call("POST", f"{wh}/instances/{instance_id}/suspend?reason=pause").status == 202
    wait_for_status(host.base_url, instance_id, ("Suspended",))
    assert call("POST", f"{wh}/instances/{instance_id}/raiseEvent/Finish", "done").status == 202
    # A second suspend is consumed (ignored) only after the event before it was looked at, i.e. is held.
    assert call("POST", f"{wh}/instances/{instance_id}/suspend?reason=again").status == 202
    deadline = time.monotonic() + 30
    while _queued_event_types(host.hub, instance_id) != [EVENT_RAISED]:
        assert time.monotonic() < deadline, _queued_event_types(host.hub, instance_id)
        time.sleep(0.02)

    reply = start(wh, "long_wait", instance_id=instance_id)
    assert reply.status == 500 and "already exists" in reply.json()["ExceptionMessage"]
    reply = call("POST", f"{wh}/instances/{instance_id}/restart?restartWithNewInstanceId=false")
    assert reply.status == 500 and "already exists" in reply.json()["ExceptionMessage"]
    assert call("GET", f"{wh}/instances/{instance_id}").json()["runtimeStatus"] == "Suspended"

    assert call("POST", f"{wh}/instances/{instance_id}/resume?reason=go").status == 202
    status = wait_for_status(host.base_url, instance_id, timeout=20)
    assert status["runtimeStatus"] == "Completed" and status["output"] == "done"


def test_sync_and_async_activities_share_the_concurrency_limit(host, wh):
    """maxConcurrentActivityFunctions (4 in the patterns app) bounds sync and async activities together."""
    instance_id = start(wh, "mixed_fan_out", {"n": 4}).json()["id"]
    status = wait_for_status(host.base_url, instance_id)
    assert status["runtimeStatus"] == "Completed"
    assert 1 <= status["output"] <= 4


def test_sub_orchestration_history_rows_have_only_the_extensions_keys(host, wh):
    """§13.5: a merged sub-orchestration completion gains ScheduledTime, FunctionName and Input, nothing else."""
    parent = start(wh, "parent_orch").json()["id"]
    wait_for_status(host.base_url, parent)
    events = call("GET", f"{wh}/instances/{parent}?showHistory=true&showHistoryOutput=true").json()["historyEvents"]
    done = [e for e in events if e["EventType"] == "SubOrchestrationInstanceCompleted"]
    assert len(done) == 2
    for row in done:
        assert list(row) == ["EventType", "Timestamp", "Result", "ScheduledTime", "FunctionName", "Input"]
    assert [row["FunctionName"] for row in done] == ["chaining", "fan_out"]
    plain = call("GET", f"{wh}/instances/{parent}?showHistory=true&showInput=false").json()["historyEvents"]
    done = [e for e in plain if e["EventType"] == "SubOrchestrationInstanceCompleted"]
    assert all(list(row) == ["EventType", "Timestamp", "ScheduledTime", "FunctionName"] for row in done)


def test_a_created_time_that_is_not_a_date_is_ignored_like_the_extension(wh):
    """The extension reads these with TryGetDateTimeQueryParameterValue: a bad value counts as absent."""
    everything = call("GET", f"{wh}/instances/?top=1000").json()
    filtered = call("GET", f"{wh}/instances/?top=1000&createdTimeFrom=yesterday&createdTimeTo=2024-13-45")
    assert filtered.status == 200
    assert {i["instanceId"] for i in filtered.json()} == {i["instanceId"] for i in everything}
    purge = call("DELETE", f"{wh}/instances/?createdTimeFrom=yesterday")
    assert purge.status == 400
    assert purge.json() == "Please provide value for 'createdTimeFrom' parameter."
