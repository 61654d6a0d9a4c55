"""Log lines shaped like `func start` output, so people recognise what they see."""

from __future__ import annotations

import logging
import sys
import threading
from datetime import UTC, datetime

_lock = threading.Lock()


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def line(text: str) -> None:
    """Print one host log line on stdout."""
    with _lock:
        sys.stdout.write(f"[{_stamp()}] {text}\n")
        sys.stdout.flush()


def executed(name: str, invocation_id: str, seconds: float, error: str | None = None) -> None:
    """The host's per-execution line: `Executed 'Functions.X' (Succeeded, Id=..., Duration=12ms)`."""
    ms = round(seconds * 1000)
    if error is None:
        line(f"Executed 'Functions.{name}' (Succeeded, Id={invocation_id}, Duration={ms}ms)")
    else:
        line(f"Executed 'Functions.{name}' (Failed, Id={invocation_id}, Duration={ms}ms) Reason: {error}")


def warn(text: str) -> None:
    """A host warning on stderr."""
    with _lock:
        sys.stderr.write(f"[{_stamp()}] devhost: warning: {text}\n")
        sys.stderr.flush()


def error(text: str) -> None:
    """A host error (tracebacks included) on stderr; never sent to clients."""
    with _lock:
        sys.stderr.write(f"[{_stamp()}] devhost: error: {text}\n")
        sys.stderr.flush()


class _HostFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"[{_stamp()}] {text}"


def configure_app_logging() -> None:
    """Show the functions' `logging` output at INFO on stderr, as the worker forwards it to the host."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_HostFormatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("aiohttp.access", "aiohttp.server", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
