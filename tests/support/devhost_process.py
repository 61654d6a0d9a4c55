"""Start and stop `python -m devhost` as a subprocess for tests (no pytest dependency).

Always uses free loopback ports; waits for /admin/host/status; never leaves a process running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from backup_cli.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


class DevhostProcess:
    """A running devhost: base_url, rpc_url, the Popen, and stop()/kill()."""

    def __init__(
        self,
        app_dir: Path | str,
        hub: Path | str | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
        rpc_port: int | None = None,
        python: str | None = None,
    ) -> None:
        self.app_dir = Path(app_dir)
        self.hub = Path(hub) if hub else Path(tempfile.mkdtemp(prefix="devhost-hub-")) / "hub.sqlite"
        self.port = port or free_port()
        self.rpc_port = rpc_port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.rpc_url = f"http://127.0.0.1:{self.rpc_port}/durabletask/"
        self.env = dict(os.environ if env is None else env)
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), self.env.get("PYTHONPATH")]))
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.python = python or sys.executable
        self._log = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - lives as long as the process
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            self.python,
            "-m",
            "devhost",
            "--app-dir",
            str(self.app_dir),
            "--port",
            str(self.port),
            "--rpc-port",
            str(self.rpc_port),
            "--hub",
            str(self.hub),
        ]

    def output(self) -> str:
        """Everything devhost printed so far (stdout and stderr interleaved)."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def start(self, timeout: float = 30.0) -> DevhostProcess:
        self.proc = subprocess.Popen(
            self.command(), cwd=str(self.app_dir), env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"devhost exited with {self.proc.returncode} before it was ready:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/admin/host/status", timeout=2) as resp:
                    if json.loads(resp.read()).get("state") == "Running":
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"devhost was not ready within {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL (a crash), for recovery tests."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stats(self) -> dict[str, float]:
        with urllib.request.urlopen(f"{self.base_url}/admin/devhost/stats", timeout=10) as resp:
            return json.loads(resp.read())


@contextlib.contextmanager
def running_devhost(
    app_dir: Path | str, hub: Path | str | None = None, env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[DevhostProcess]:
    """Context manager: a ready devhost that is always stopped afterwards."""
    host = DevhostProcess(app_dir, hub=hub, env=env)
    try:
        yield host.start(timeout)
    finally:
        host.stop()


def run_devhost_to_exit(
    app_dir: Path | str, timeout: float = 30.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run devhost expecting it to exit by itself (e.g. an indexing refusal); kills it on timeout."""
    host = DevhostProcess(app_dir, env=env)
    return subprocess.run(
        host.command(),
        cwd=str(host.app_dir),
        env=host.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
