"""A small HTTP server that answers like the app's starter and the durable status API.

It stands in for the host because the CLI tests cover the client alone; the real app runs
end to end in its own tests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INSTANCE_ID = "abc123"
STATUS_PATH = f"/runtime/webhooks/durabletask/instances/{INSTANCE_ID}"


def running(phase: str, total: int | None, done: int, size: int) -> dict[str, Any]:
    """A status body for a backup still in progress."""
    custom: dict[str, Any] = {"phase": phase, "filesDone": done, "bytesDone": size}
    if total is not None:
        custom["filesTotal"] = total
    return {
        "name": "E2_BackupSiteContent",
        "instanceId": INSTANCE_ID,
        "runtimeStatus": "Running",
        "customStatus": custom,
        "output": None,
    }


def ended(runtime_status: str, output: Any, total: int = 3) -> dict[str, Any]:
    """A status body for a backup that has ended."""
    custom = {"phase": "completed", "filesTotal": total, "filesDone": total, "bytesDone": 0}
    return {
        "name": "E2_BackupSiteContent",
        "instanceId": INSTANCE_ID,
        "runtimeStatus": runtime_status,
        "customStatus": custom,
        "output": output,
    }


@dataclass
class Scenario:
    """How the fake host answers: a start error, or the status bodies to hand out one poll at a time."""

    statuses: list[dict[str, Any]] = field(default_factory=list)
    start_error: tuple[int, str] | None = None
    posted: list[Any] = field(default_factory=list)
    polls: int = 0


def handler_for(scenario: Scenario) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one scenario."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            if self.path != "/orchestrators/E2_BackupSiteContent":
                self._json(404, {"error": f"No orchestrator at {self.path}"})
                return
            scenario.posted.append(body)
            if scenario.start_error:
                status, message = scenario.start_error
                self._json(status, {"error": message})
                return
            location = f"http://{self.headers['Host']}{STATUS_PATH}?taskHub=SiteBackupHub&connection=Storage"
            self._json(
                202, {"id": INSTANCE_ID, "statusQueryGetUri": location}, {"Location": location, "Retry-After": "10"}
            )

        def do_GET(self) -> None:
            if self.path == "/admin/host/status":
                self._json(200, {"state": "Running"})
            elif self.path.split("?")[0] == STATUS_PATH and scenario.statuses:
                scenario.polls += 1
                body = scenario.statuses.pop(0) if len(scenario.statuses) > 1 else scenario.statuses[0]
                if body["runtimeStatus"] in ("Running", "Pending"):
                    self._json(202, body, {"Location": self.path, "Retry-After": "5"})
                else:
                    self._json(200, body)
            else:
                self._json(404, {"error": "not found"})

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    return Handler


@contextmanager
def fake_host(scenario: Scenario) -> Iterator[str]:
    """Serve the scenario on a free loopback port; yield the base URL; shut down on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(scenario))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
