"""Showing a running backup: a live rich progress bar on a terminal, plain lines elsewhere.

Both views take the orchestration's ``customStatus`` (phase, filesTotal, bytesTotal, filesDone, bytesDone).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .client import Status

PHASE_LABELS = {
    "listing": "Listing files",
    "copying": "Copying",
    "completed": "Finishing",
    "failing": "Finishing",
    "waiting for storage": "Waiting for storage",
    "finding the backup": "Finding backup",
    "restoring": "Restoring",
    "verifying": "Verifying",
}


class ProgressView(Protocol):
    """What the backup command needs from a view: enter, show each status, exit."""

    def __enter__(self) -> ProgressView: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def show(self, status: Status) -> None:
        """Render one polled status."""


@dataclass(frozen=True)
class Counts:
    """What a status says about progress; totals are None until the backup knows them."""

    label: str
    files_total: int | None
    files_done: int
    bytes_total: int | None
    bytes_done: int

    def files(self) -> str:
        return f"{self.files_done}/{self.files_total}" if self.files_total is not None else str(self.files_done)

    def size(self) -> str:
        of_total = f" of {decimal(self.bytes_total)}" if self.bytes_total else ""
        return f"{decimal(self.bytes_done)}{of_total}"


def counts(custom: dict[str, Any]) -> Counts:
    """The progress counts in a customStatus document."""
    phase = str(custom.get("phase") or "starting")

    def number(key: str) -> int | None:
        value = custom.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return Counts(
        PHASE_LABELS.get(phase, phase.capitalize()),
        number("filesTotal"),
        number("filesDone") or 0,
        number("bytesTotal"),
        number("bytesDone") or 0,
    )


class BarView:
    """A live bar of bytes backed up (files and bytes done of total, elapsed and remaining time).

    The final state stays on screen.
    """

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description:<13}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[files]} files"),
            TextColumn("{task.fields[size]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> BarView:
        self._progress.start()
        self._task = self._progress.add_task("Starting", total=None, files="0", size=decimal(0))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def show(self, status: Status) -> None:
        """Move the bar to the latest counts."""
        if self._task is None:
            return
        now = counts(status.custom_status)
        self._progress.update(
            self._task,
            description=now.label,
            total=now.bytes_total or None,
            completed=now.bytes_done,
            files=now.files(),
            size=now.size(),
        )


class LineView:
    """One plain line whenever the phase or the file count changes, for logs and pipes."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._last: tuple[str, int | None, int] | None = None

    def __enter__(self) -> LineView:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def show(self, status: Status) -> None:
        """Print a line unless nothing visible changed since the last one."""
        now = counts(status.custom_status)
        key = (now.label, now.files_total, now.files_done)
        if key == self._last:
            return
        self._last = key
        self._console.print(f"{now.label}: {now.files()} files, {now.size()}", markup=False, highlight=False)


class QuietView(LineView):
    """No progress output at all (--no-progress); only the result is printed."""

    def show(self, status: Status) -> None:
        """Ignore the status."""


def progress_view(console: Console, enabled: bool = True) -> ProgressView:
    """The right view for this console: a bar on a terminal, lines otherwise, nothing if disabled."""
    if not enabled:
        return QuietView(console)
    return BarView(console) if console.is_terminal else LineView(console)
