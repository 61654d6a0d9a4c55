"""Child processes the CLI starts: spawn with a log file, wait until ready, always stop.

Each child runs in its own session so a Ctrl-C reaches only the CLI, which then stops
the children in order, and so stopping a child also stops anything it spawned itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 0.2
TAIL_LINES = 20


class ServiceError(RuntimeError):
    """A child could not be started or did not become ready; the message says what to look at."""


@dataclass
class Child:
    """A running child process and where its output goes (None: the terminal)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None

    def running(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.poll() is None

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines of the log, to explain a failure without sending the user digging."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def describe_failure(self, what: str) -> str:
        """An error message: what went wrong, the log tail and where the full log is."""
        message = f"{self.name} {what}."
        tail = self.tail()
        if tail:
            message += f"\nLast lines of its output:\n{tail}"
        if self.log_path is not None:
            message += f"\nFull log: {self.log_path}"
        return message

    def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM the child's process group, then SIGKILL it if it does not exit in time."""
        if self.running():
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait()
        # Helpers the child started may outlive it; the group id still reaches them.
        _signal_group(self.process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the whole session the child leads; it may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def spawn(
    name: str, argv: Sequence[str], cwd: Path, log_path: Path | None = None, env: Mapping[str, str] | None = None
) -> Child:
    """Start argv in its own session, output to log_path (truncated) or, if None, to the terminal."""
    if log_path is None:
        process = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        return Child(name, process, None)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, process, log_path)


def wait_until_ready(child: Child, ready: Callable[[], bool], timeout: float) -> None:
    """Return once ready() holds; raise ServiceError if the child exits or time runs out first."""
    deadline = time.monotonic() + timeout
    while True:
        if not child.running():
            code = child.process.returncode
            raise ServiceError(child.describe_failure(f"exited with code {code} before it was ready"))
        if ready():
            return
        if time.monotonic() > deadline:
            raise ServiceError(child.describe_failure(f"was not ready after {timeout:.0f} s"))
        time.sleep(POLL_SECONDS)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it), for tests and ad-hoc services."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
