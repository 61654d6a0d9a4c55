"""Showing a running backup: a live rich progress bar on a terminal, plain lines elsewhere.

Both views take the orchestration's ``customStatus`` (phase, filesTotal, filesDone, bytesDone).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from .client import Status

PHASE_LABELS = {"listing": "Listing files", "copying": "Copying", "completed": "Finishing"}


class ProgressView(Protocol):
    """What the backup command needs from a view: enter, show each status, exit."""

    def __enter__(self) -> ProgressView: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def show(self, status: Status) -> None:
        """Render one polled status."""


def counts(custom: dict[str, Any]) -> tuple[str, int | None, int, int]:
    """Phase label, files total (None until known), files done and bytes done from customStatus."""
    phase = str(custom.get("phase") or "starting")
    total = custom.get("filesTotal")
    return (
        PHASE_LABELS.get(phase, phase.capitalize()),
        int(total) if isinstance(total, int) else None,
        int(custom.get("filesDone") or 0),
        int(custom.get("bytesDone") or 0),
    )


class BarView:
    """A live bar: files done of total, bytes copied, elapsed time; the final state stays on screen."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description:<13}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files"),
            TextColumn("{task.fields[size]:>10}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> BarView:
        self._progress.start()
        self._task = self._progress.add_task("Starting", total=None, size=decimal(0))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def show(self, status: Status) -> None:
        """Move the bar to the latest counts."""
        if self._task is None:
            return
        label, total, done, size = counts(status.custom_status)
        self._progress.update(self._task, description=label, total=total, completed=done, size=decimal(size))


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
        label, total, done, size = counts(status.custom_status)
        key = (label, total, done)
        if key == self._last:
            return
        self._last = key
        of_total = f"/{total}" if total is not None else ""
        self._console.print(f"{label}: {done}{of_total} files, {decimal(size)}", markup=False, highlight=False)


class QuietView(LineView):
    """No progress output at all (--no-progress); only the result is printed."""

    def show(self, status: Status) -> None:
        """Ignore the status."""


def progress_view(console: Console, enabled: bool = True) -> ProgressView:
    """The right view for this console: a bar on a terminal, lines otherwise, nothing if disabled."""
    if not enabled:
        return QuietView(console)
    return BarView(console) if console.is_terminal else LineView(console)
