"""The ``backup`` command: start a backup, follow it to the end, report the result as an exit code.

Exit codes: 0 completed, 1 failed / unreachable / could not start services, 2 rejected by the
host (HTTP 4xx), 130 interrupted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
from rich.console import Console
from rich.filesize import decimal

from .autostart import local_host
from .client import HostError, HostUnreachable, Status, backup_body, new_session, poll_status, start_backup
from .output import say
from .processes import ServiceError
from .progress import progress_view
from .project import HUB_FILE

EXIT_OK, EXIT_FAILED, EXIT_REJECTED, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True)
class BackupOptions:
    """What the user asked for on the command line."""

    directory: str
    url: str
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    show_progress: bool = True
    start_services: bool = True


def run_backup(options: BackupOptions, out: Console, err: Console) -> int:
    """Run one backup end to end and return the process exit code."""
    directory = os.path.abspath(os.path.expanduser(options.directory))
    body = backup_body(directory, options.include, options.exclude)
    try:
        with (
            local_host(options.url, out, options.start_services, Path(directory)) as started,
            new_session(options.url) as session,
        ):
            status_url = start_backup(session, options.url, body)
            say(out, f"Backing up {directory}")
            try:
                final = follow(session, status_url, out, options.show_progress)
            except KeyboardInterrupt:
                say(err, interrupted_message(status_url, started), "yellow")
                return EXIT_INTERRUPTED
    except HostError as exc:
        say(err, f"Error: {exc.message} (HTTP {exc.status_code})", "red")
        return EXIT_REJECTED if 400 <= exc.status_code < 500 else EXIT_FAILED
    except HostUnreachable as exc:
        hint = "" if options.start_services else " Start the host with `make start`, or leave out --no-start."
        say(err, f"Error: {exc}{hint}", "red")
        return EXIT_FAILED
    except ServiceError as exc:
        say(err, f"Error: could not start the local services. {exc}", "red")
        return EXIT_FAILED
    return report(final, out, err)


def follow(session: requests.Session, status_url: str, out: Console, show_progress: bool) -> Status:
    """Poll until the backup ends, feeding each status to the progress view; return the last one."""
    final: Status | None = None
    with progress_view(out, show_progress) as view:
        for status in poll_status(session, status_url):
            view.show(status)
            final = status
    assert final is not None, "poll_status yields at least once"
    return final


def report(final: Status, out: Console, err: Console) -> int:
    """Print how the backup ended and map it to an exit code."""
    if final.runtime_status == "Completed":
        say(out, f"Backup completed: {describe_bytes(final.output)}{describe_files(final)}.", "green")
        return EXIT_OK
    reason = final.output if final.output not in (None, "") else "no reason given"
    verb = "failed" if final.runtime_status == "Failed" else final.runtime_status.lower()
    say(err, f"Backup {verb}: {reason}", "red")
    return EXIT_FAILED


def describe_bytes(output: object) -> str:
    """Total bytes as '12.3 MB (12,345,678 bytes)'; anything else the host returned, as it is."""
    if isinstance(output, int) and not isinstance(output, bool):
        return f"{decimal(output)} ({output:,} bytes)"
    return f"output {output!r}"


def describe_files(final: Status) -> str:
    """' in N files' when the host reported a file count."""
    total = final.custom_status.get("filesTotal")
    return f" in {total} files" if isinstance(total, int) else ""


def interrupted_message(status_url: str, started: bool) -> str:
    """What Ctrl-C did: the CLI stops watching; the backup itself goes on (or pauses with a host we started)."""
    if started:
        return (
            "Stopped following the backup. The host this command started is being stopped, so the backup "
            f"pauses; its state is kept in {HUB_FILE} and it continues when the host runs again (`make start`)."
        )
    return f"Stopped following the backup; it keeps running in the host. Status: {status_url}"
