"""Child process handling: Azurite from node_modules on free ports, failures, and clean stops.

Every test checks that nothing it started is left running.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from backup_cli.processes import ServiceError, free_port, port_open, spawn, wait_until_ready
from backup_cli.project import AZURITE_BIN, PROJECT_ROOT
from backup_cli.services import AzuritePorts, start_azurite


def processes_mentioning(marker: str, wait_seconds: float = 10.0) -> list[int]:
    """Pids whose command line contains marker, after giving just-killed ones time to disappear."""
    deadline = time.monotonic() + wait_seconds
    while True:
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in text:
                found.append(int(cmdline.parent.name))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.mark.skipif(not AZURITE_BIN.exists(), reason="node_modules not installed (npm ci)")
def test_azurite_starts_on_free_ports_and_stops(tmp_path):
    ports = AzuritePorts(free_port(), free_port(), free_port())
    location = tmp_path / "azurite-data"
    child = start_azurite(location, tmp_path / "azurite.log", ports)
    try:
        assert all(port_open("127.0.0.1", port) for port in ports.all())
        assert processes_mentioning(str(location), wait_seconds=0)
    finally:
        child.stop()
    assert not child.running()
    assert not any(port_open("127.0.0.1", port) for port in ports.all())
    assert processes_mentioning(str(location)) == []


def test_child_that_dies_early_is_reported_with_its_output(tmp_path):
    log = tmp_path / "child.log"
    code = "import sys; print('boom: missing setting', flush=True); sys.exit(3)"
    child = spawn("demo", [sys.executable, "-c", code], cwd=tmp_path, log_path=log)
    try:
        with pytest.raises(ServiceError) as failure:
            wait_until_ready(child, lambda: False, timeout=60)
    finally:
        child.stop()
    message = str(failure.value)
    assert "demo exited with code 3 before it was ready" in message
    assert "boom: missing setting" in message
    assert str(log) in message


def test_stop_kills_a_child_that_ignores_sigterm_and_its_children(tmp_path):
    marker = f"marker-{tmp_path.name}"
    log = tmp_path / "child.log"
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}])\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    child = spawn("stubborn", [sys.executable, "-c", code, marker], cwd=tmp_path, log_path=log)
    try:
        wait_until_ready(child, lambda: "ready" in log.read_text(), timeout=60)
        assert len(processes_mentioning(marker, wait_seconds=0)) == 2
    finally:
        child.stop(grace_seconds=0.5)
    assert child.process.returncode == -9
    assert processes_mentioning(marker) == []


def test_free_port_is_free():
    assert not port_open("127.0.0.1", free_port())


def test_project_root_holds_the_app():
    assert (PROJECT_ROOT / "function_app.py").is_file()
