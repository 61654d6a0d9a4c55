"""How the CLI launches devhost: arguments, readiness via /admin/host/status, and a clean stop.

A stub ``devhost`` package in a temporary app directory stands in for the real one, because
these tests cover the launcher alone; devhost itself has its own tests.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

from backup_cli.processes import free_port, port_open
from backup_cli.services import default_allowed_roots, start_devhost

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


def stub_app(tmp_path: Path) -> Path:
    """An app directory whose ``devhost`` is the stub above."""
    app_dir = tmp_path / "app"
    (app_dir / "devhost").mkdir(parents=True)
    (app_dir / "devhost" / "__init__.py").write_text("")
    (app_dir / "devhost" / "__main__.py").write_text(STUB)
    return app_dir


def launched_roots(app_dir: Path, tmp_path: Path, allow: Path) -> list[str]:
    """Start and stop the stub with ``allow``; the allowed roots it saw, split on os.pathsep."""
    child = start_devhost(app_dir, free_port(), tmp_path / "devhost.log", tmp_path / "hub.sqlite", allow=[allow])
    child.stop()
    return json.loads((app_dir / "launched.json").read_text())["allowed"].split(os.pathsep)


def test_a_host_started_for_a_backup_adds_the_directory_to_the_usual_roots(tmp_path, monkeypatch):
    """The directory is added; the app's defaults, local.settings.json or the environment still count."""
    app_dir = stub_app(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "data"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("BACKUP_ALLOWED_ROOTS", raising=False)
    assert launched_roots(app_dir, tmp_path, data) == [
        os.path.realpath(home),
        os.path.realpath(tempfile.gettempdir()),
        str(data),
    ]

    settings = {"Values": {"BACKUP_ALLOWED_ROOTS": os.pathsep.join(["/srv/a", "/srv/b"])}}
    (app_dir / "local.settings.json").write_text(json.dumps(settings))
    assert launched_roots(app_dir, tmp_path, data) == ["/srv/a", "/srv/b", str(data)]

    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", "/srv/explicit")
    assert launched_roots(app_dir, tmp_path, data) == ["/srv/explicit", str(data)]


def test_without_a_directory_the_allowed_roots_are_left_alone(tmp_path, monkeypatch):
    """`make start` passes no directory, so the host reads its settings as usual."""
    app_dir = stub_app(tmp_path)
    monkeypatch.delenv("BACKUP_ALLOWED_ROOTS", raising=False)
    child = start_devhost(app_dir, free_port(), tmp_path / "devhost.log", tmp_path / "hub.sqlite")
    child.stop()
    assert json.loads((app_dir / "launched.json").read_text())["allowed"] is None


@pytest.mark.parametrize(
    ("env", "settings", "expected"),
    [
        ({}, None, ["HOME"]),
        ({}, '{"Values": {"BACKUP_ALLOWED_ROOTS": ""}}', ["HOME"]),
        ({}, '{"Values": {"BACKUP_ALLOWED_ROOTS": "  "}}', ["HOME"]),
        ({}, '{"Values": {}}', ["HOME"]),
        ({}, "not json", ["HOME"]),
        ({}, '{"Values": {"BACKUP_ALLOWED_ROOTS": " /srv/a "}}', ["/srv/a"]),
        ({"BACKUP_ALLOWED_ROOTS": "/srv/env"}, '{"Values": {"BACKUP_ALLOWED_ROOTS": "/srv/a"}}', ["/srv/env"]),
        # devhost never overrides a setting the environment has, even a blank one; blank means the defaults.
        ({"BACKUP_ALLOWED_ROOTS": ""}, '{"Values": {"BACKUP_ALLOWED_ROOTS": "/srv/a"}}', ["HOME"]),
    ],
)
def test_default_allowed_roots_match_what_the_app_would_use(tmp_path, monkeypatch, env, settings, expected):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    if settings is not None:
        (tmp_path / "local.settings.json").write_text(settings)
    roots = default_allowed_roots(tmp_path, env)
    defaults = [os.path.realpath(home), os.path.realpath(tempfile.gettempdir())]
    assert roots == (defaults if expected == ["HOME"] else expected)


def test_a_home_at_the_file_system_root_is_not_a_default_root(tmp_path, monkeypatch):
    """As in the app: / is only allowed when set explicitly."""
    monkeypatch.setenv("HOME", "/")
    assert default_allowed_roots(tmp_path, {}) == [os.path.realpath(tempfile.gettempdir())]
