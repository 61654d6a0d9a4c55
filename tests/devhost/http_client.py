"""Tiny urllib helpers for talking to devhost in tests."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    method: str,
    url: str,
    body: Any = None,
    raw: bytes | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Reply:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": content_type, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return Reply(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers.items()), exc.read())


def wait_for_status(
    base_url: str,
    instance_id: str,
    statuses: tuple[str, ...] = ("Completed", "Failed", "Terminated"),
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Poll the webhook status until runtimeStatus is one of `statuses` (bounded; raises with the last one)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        reply = call("GET", f"{base_url}/runtime/webhooks/durabletask/instances/{instance_id}")
        if reply.status in (200, 202, 500):
            last = reply.json()
            if last["runtimeStatus"] in statuses:
                return last
        time.sleep(0.05)
    raise AssertionError(f"instance {instance_id} did not reach {statuses}; last status: {last}")
