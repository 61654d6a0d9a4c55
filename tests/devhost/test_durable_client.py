"""Every DurableOrchestrationClient method of the real SDK, pointed at devhost's RPC port (§11, §12)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
import pytest
from azure.durable_functions.models.utils import http_utils

from devhost.http_triggers import client_binding
from tests.support.devhost_process import running_devhost

APP = Path(__file__).parent / "apps" / "patterns"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    with running_devhost(APP, hub=tmp_path_factory.mktemp("hub") / "hub.sqlite") as process:
        yield process


@pytest.fixture(scope="module")
def run():
    """One long-lived loop: the SDK's aiohttp session is global and bound to the first loop."""
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.run_until_complete(http_utils._close_session())
    loop.close()


@pytest.fixture(scope="module")
def client(host):
    return df.DurableOrchestrationClient(json.dumps(client_binding(host.port, host.rpc_port, "PatternsHub")))


async def _until(client, instance_id, statuses, timeout=30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await client.get_status(instance_id)
        if status and status.runtime_status and status.runtime_status.value in statuses:
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{instance_id} never reached {statuses}: {status.to_json() if status else None}")
        await asyncio.sleep(0.05)


def test_start_new_and_get_status_flags(run, client):
    async def scenario():
        instance_id = await client.start_new("fan_out", None, {"n": 3})
        assert len(instance_id) == 32
        status = await _until(client, instance_id, ("Completed",))
        assert status.output == 12
        assert status.input_ == json.dumps({"n": 3})  # a string holding JSON (double encoding)
        full = await client.get_status(instance_id, show_history=True, show_history_output=True)
        assert full.history is None and full.historyEvents[0]["EventType"] == "ExecutionStarted"
        assert any(e.get("Result") == 0 for e in full.historyEvents if e["EventType"] == "TaskCompleted")
        missing = await client.get_status("no-such-instance")
        assert not missing

    run(scenario())


def test_explicit_id_raise_event_and_python_encoding(run, client):
    async def scenario():
        instance_id = await client.start_new("event_or_timer", "client-event", {"seconds": 60})
        assert instance_id == "client-event"
        await _until(client, instance_id, ("Running",))
        await client.raise_event(instance_id, "Approved", {"by": "bob"})
        status = await _until(client, instance_id, ("Completed",))
        assert status.output == {"approved": json.dumps({"by": "bob"})}  # #295: arrives as a str
        assert status.custom_status == {"stage": "approved"}
        with pytest.raises(Exception, match="gone") as raised:
            await client.raise_event(instance_id, "Approved", 1)
        assert type(raised.value) is Exception  # the SDK raises a bare Exception with the host's message

    run(scenario())


def test_terminate_suspend_resume(run, client):
    async def scenario():
        first = await client.start_new("long_wait")
        await _until(client, first, ("Running",))
        await client.suspend(first, "pause")
        await _until(client, first, ("Suspended",))
        await client.resume(first, "go")
        await _until(client, first, ("Running",))
        await client.terminate(first, "enough")
        status = await _until(client, first, ("Terminated",))
        assert status.output == "enough"
        assert await client.terminate(first, "again") is None  # 410: already terminated, no error
        with pytest.raises(Exception, match="No instance with ID 'nobody' found") as raised:
            await client.terminate("nobody", "x")
        assert type(raised.value) is Exception

    run(scenario())


def test_status_queries_restart_and_purges(run, client):
    async def scenario():
        before = datetime.now(UTC) - timedelta(minutes=1)
        done = await client.start_new("chaining", "query-me")
        await _until(client, done, ("Completed",))
        everything = await client.get_status_all()
        assert "query-me" in {s.instance_id for s in everything}
        by = await client.get_status_by(
            before, datetime.now(UTC) + timedelta(minutes=1), [df.OrchestrationRuntimeStatus.Completed]
        )
        assert "query-me" in {s.instance_id for s in by}
        assert all(s.runtime_status == df.OrchestrationRuntimeStatus.Completed for s in by)
        restarted = await client.restart(done)
        assert isinstance(restarted, dict) and restarted["id"] != done
        await _until(client, restarted["id"], ("Completed",))
        same = await client.restart(done, restart_with_new_instance_id=False)
        assert same["id"] == done
        await _until(client, done, ("Completed",))
        purged = await client.purge_instance_history(done)
        assert purged.instances_deleted == 1
        assert (await client.purge_instance_history(done)).instances_deleted == 0
        result = await client.purge_instance_history_by(before, None, [df.OrchestrationRuntimeStatus.Completed])
        assert result.instances_deleted >= 1
        assert not [s for s in await client.get_status_all() if s.runtime_status.value == "Completed"]

    run(scenario())


def test_check_status_responses(run, client, host):
    async def scenario():
        req = func.HttpRequest("POST", "https://myapp.example.net:8443/api/x", body=b"")
        response = client.create_check_status_response(req, "abc/def?x")
        assert response.status_code == 202 and response.headers["Retry-After"] == "10"
        payload = json.loads(response.get_body())
        assert "rewindPostUri" in payload
        assert payload["statusQueryGetUri"].startswith(
            "https://myapp.example.net:8443/runtime/webhooks/durabletask/instances/abc/def?x?taskHub="
        )
        req = func.HttpRequest("POST", f"{host.base_url}/api/x", body=b"")
        instance_id = await client.start_new("chaining")
        done = await client.wait_for_completion_or_create_check_status_response(req, instance_id, 20000, 100)
        assert done.status_code == 200
        assert json.loads(done.get_body()) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
        waiting = await client.start_new("long_wait")
        pending = await client.wait_for_completion_or_create_check_status_response(req, waiting, 300, 100)
        assert pending.status_code == 202
        await client.terminate(waiting, "cleanup")
        failing = await client.start_new("failing_orch")
        failed = await client.wait_for_completion_or_create_check_status_response(req, failing, 20000, 100)
        assert failed.status_code == 500

    run(scenario())


def test_start_new_unknown_orchestrator_raises(run, client):
    async def scenario():
        with pytest.raises(Exception, match="doesn't exist, is disabled, or is not an orchestrator function") as raised:
            await client.start_new("nope")
        assert type(raised.value) is Exception

    run(scenario())
