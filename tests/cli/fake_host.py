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
from urllib.parse import parse_qs, urlsplit

INSTANCE_ID = "abc123"
STATUS_PATH = f"/runtime/webhooks/durabletask/instances/{INSTANCE_ID}"
TERMINATE_PATH = f"{STATUS_PATH}/terminate"
QUERY = "taskHub=SiteBackupHub&connection=Storage"


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
    """How the fake host answers: a start error, or the status bodies to hand out one poll at a time.

    ``not_a_host`` makes it answer every request with an HTML page, like some other web server.
    ``events`` records terminations in order, for tests that interleave them with other steps.
    ``keys`` records the function key each request to the app or the status API carried.
    """

    statuses: list[dict[str, Any]] = field(default_factory=list)
    start_error: tuple[int, str] | None = None
    not_a_host: bool = False
    posted: list[Any] = field(default_factory=list)
    polls: int = 0
    terminate_queries: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)


def handler_for(scenario: Scenario) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one scenario."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            scenario.keys.append(self.headers.get("x-functions-key"))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if scenario.not_a_host:
                self._html()
                return
            if urlsplit(self.path).path == TERMINATE_PATH:
                self._terminate()
                return
            body = json.loads(raw or b"null")
            if self.path != "/orchestrators/E2_BackupSiteContent":
                self._json(404, {"error": f"No orchestrator at {self.path}"})
                return
            scenario.posted.append(body)
            if scenario.start_error:
                status, message = scenario.start_error
                self._json(status, {"error": message})
                return
            base = f"http://{self.headers['Host']}"
            location = f"{base}{STATUS_PATH}?{QUERY}"
            payload = {
                "id": INSTANCE_ID,
                "statusQueryGetUri": location,
                "terminatePostUri": f"{base}{TERMINATE_PATH}?reason={{text}}&{QUERY}",
            }
            self._json(202, payload, {"Location": location, "Retry-After": "10"})

        def _terminate(self) -> None:
            """Record the raw query (to check the reason's encoding) and end the backup as Terminated."""
            query = urlsplit(self.path).query
            scenario.terminate_queries.append(query)
            scenario.events.append("terminate")
            scenario.statuses[:] = [ended("Terminated", parse_qs(query)["reason"][0])]
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            if self.path != "/admin/host/status":  # the local "is this a host" probe, which needs no key
                scenario.keys.append(self.headers.get("x-functions-key"))
            if scenario.not_a_host:
                self._html()
            elif self.path == "/admin/host/status":
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

        def _html(self) -> None:
            data = b"<!doctype html><html><body><h1>Welcome to some other server</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
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
