"""Suspension at the edges: an instance suspended before its first episode, and a catch-all for API errors."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from aiohttp.test_utils import make_mocked_request
from http_client import call, wait_for_status

from devhost import history as h
from devhost.instances import new_instance
from devhost.model import MessageRow
from devhost.store import Store
from devhost.webhooks import WebhookApi
from tests.support.devhost_process import running_devhost

APP = Path(__file__).parent / "apps" / "patterns"


def _queue_start_and_suspend(hub: Path, instance_id: str) -> None:
    """A hub as a stopped host leaves it when a start and a suspend were both still queued for one instance."""
    store = Store(hub)
    try:
        now = h.utcnow()
        stamp = h.format_timestamp(now)
        row = new_instance(instance_id, "long_wait", "e1", None, now)
        started = h.execution_started(stamp, "long_wait", None, instance_id, "e1")
        store.create_instance(row, MessageRow(1, instance_id, "e1", 0.0, started))
        store.add_messages([MessageRow(2, instance_id, "e1", 0.0, h.execution_suspended(stamp, "early"))])
    finally:
        store.close()


def _stored_event_types(hub: Path, instance_id: str) -> list[int]:
    conn = sqlite3.connect(f"file:{hub}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT event FROM history WHERE instance_id = ? ORDER BY position", (instance_id,))
        return [json.loads(r[0])["EventType"] for r in rows]
    finally:
        conn.close()


def test_start_queued_with_suspend_waits_for_resume_and_episode_1_starts_with_execution_started(tmp_path):
    hub = tmp_path / "hub.sqlite"
    _queue_start_and_suspend(hub, "early")
    with running_devhost(APP, hub=hub) as host:
        wh = f"{host.base_url}/runtime/webhooks/durabletask"
        wait_for_status(host.base_url, "early", ("Suspended",), timeout=30)
        # Suspended before it ever ran: the orchestrator has not been called.
        assert host.stats()["episodes"] == 0
        assert _stored_event_types(hub, "early") == []
        assert call("POST", f"{wh}/instances/early/resume?reason=go").status == 202
        wait_for_status(host.base_url, "early", ("Running",), timeout=30)
        assert call("POST", f"{wh}/instances/early/raiseEvent/Finish", "v").status == 202
        status = wait_for_status(host.base_url, "early", timeout=30)
        assert status["runtimeStatus"] == "Completed" and status["output"] == "v"
    kinds = _stored_event_types(hub, "early")
    # §4.3 rule 1: [OrchestratorStarted, ExecutionStarted, ...]; the control event follows the start.
    assert kinds[:3] == [h.EventType.OrchestratorStarted, h.EventType.ExecutionStarted, h.EventType.ExecutionResumed]


class _BrokenEngine:
    async def get_instance(self, instance_id: str) -> None:
        raise RuntimeError("the hub went away")


def test_unexpected_error_in_the_api_is_a_json_500():
    """§13.1: any other exception is a 500 with the extension's JSON body, never aiohttp's text/plain page."""
    api = WebhookApi(_BrokenEngine(), "Hub")  # type: ignore[arg-type]
    request = make_mocked_request("GET", "/durabletask/instances/x")
    reply = asyncio.run(api.handle(request, "instances/x"))
    assert reply.status == 500
    assert reply.content_type == "application/json"
    body = json.loads(reply.text)
    assert body["Message"] == "Something went wrong while processing your request"
    assert "the hub went away" in body["ExceptionMessage"]
