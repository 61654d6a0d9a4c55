"""How the CLI launches devhost: arguments, readiness via /admin/host/status, and a clean stop.

A stub ``devhost`` package in a temporary app directory stands in for the real one, because
these tests cover the launcher alone; devhost itself has its own tests.
"""

from __future__ import annotations

import json
import sys

from backup_cli.processes import free_port, port_open
from backup_cli.services import start_devhost

from .test_processes import processes_mentioning

STUB = """
import argparse, json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

parser = argparse.ArgumentParser()
for name in ("--port", "--app-dir", "--hub"):
    parser.add_argument(name, required=True)
args = parser.parse_args()
with open("launched.json", "w") as f:
    json.dump({"argv": sys.argv[1:], "executable": sys.executable,
               "allowed": os.environ.get("BACKUP_ALLOWED_ROOTS")}, f)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/admin/host/status" else 404)
        self.end_headers()
    def log_message(self, *a):
        pass

server = HTTPServer(("127.0.0.1", int(args.port)), Handler)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print(f"devhost: listening on http://127.0.0.1:{args.port}", flush=True)
server.serve_forever()
"""


def test_devhost_is_started_ready_and_stopped(tmp_path):
    app_dir = tmp_path / "app"
    (app_dir / "devhost").mkdir(parents=True)
    (app_dir / "devhost" / "__init__.py").write_text("")
    (app_dir / "devhost" / "__main__.py").write_text(STUB)
    port = free_port()
    hub = tmp_path / "state" / "Hub.sqlite"
    log = tmp_path / "logs" / "devhost.log"

    child = start_devhost(app_dir, port, log, hub)
    try:
        assert port_open("127.0.0.1", port)
        launched = json.loads((app_dir / "launched.json").read_text())
    finally:
        child.stop()

    assert launched["executable"] == sys.executable
    assert launched["argv"] == ["--port", str(port), "--app-dir", str(app_dir), "--hub", str(hub)]
    assert hub.parent.is_dir()
    assert "devhost: listening" in log.read_text()
    assert not child.running()
    assert processes_mentioning(str(app_dir)) == []


def test_a_host_started_for_a_backup_may_back_up_the_requested_directory(tmp_path, monkeypatch):
    app_dir = tmp_path / "app"
    (app_dir / "devhost").mkdir(parents=True)
    (app_dir / "devhost" / "__init__.py").write_text("")
    (app_dir / "devhost" / "__main__.py").write_text(STUB)
    monkeypatch.delenv("BACKUP_ALLOWED_ROOTS", raising=False)
    child = start_devhost(
        app_dir, free_port(), tmp_path / "devhost.log", tmp_path / "hub.sqlite", allow=tmp_path / "data"
    )
    child.stop()
    assert json.loads((app_dir / "launched.json").read_text())["allowed"] == str(tmp_path / "data")

    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", "/srv/explicit")
    child = start_devhost(
        app_dir, free_port(), tmp_path / "devhost.log", tmp_path / "hub.sqlite", allow=tmp_path / "data"
    )
    child.stop()
    assert json.loads((app_dir / "launched.json").read_text())["allowed"] == "/srv/explicit"
