"""The ``backup`` command: start a backup, follow it to the end, report the result as an exit code.

Exit codes: 0 completed, 1 failed / unreachable / could not start services, 2 rejected by the
host (HTTP 4xx), 130 interrupted.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.filesize import decimal

from blueprints.names import BACKUP_ORCHESTRATOR

from .autostart import NotAFunctionsHost, local_host
from .client import (
    HostError,
    HostUnreachable,
    StartedBackup,
    Status,
    backup_body,
    is_loopback,
    new_session,
    poll_status,
    start_backup,
    terminate_backup,
)
from .output import say
from .processes import ServiceError
from .progress import progress_view

EXIT_OK, EXIT_FAILED, EXIT_REJECTED, EXIT_INTERRUPTED = 0, 1, 2, 130
TERMINATE_REASON = "Stopped from the command line"
# How long Ctrl-C waits for the host to record the termination before stopping a host the CLI started.
TERMINATE_WAIT_SECONDS = 10.0
RESUMES_LATER = "It may continue the next time a host starts on this task hub."
STOPPED_MESSAGE = (
    "Backup stopped. Files copied so far stay backed up; run the same command again to continue "
    "(unchanged files are skipped)."
)


@dataclass(frozen=True)
class BackupOptions:
    """What the user asked for on the command line."""

    directory: str
    url: str
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    show_progress: bool = True
    start_services: bool = True
    key: str | None = None


@dataclass(frozen=True)
class Job:
    """One orchestration the CLI starts and follows: what to post, and how to tell its end."""

    orchestrator: str
    body: str | dict[str, Any]
    noun: str  # "backup", "restore", "verify"
    directories: tuple[Path, ...]  # a host started for it may use these
    check_locally: tuple[str, ...] = ()  # directories that must exist, checked before any service starts
    report: Callable[[Status, Console, Console], int] | None = None


def run_backup(options: BackupOptions, out: Console, err: Console) -> int:
    """Run one backup end to end and return the process exit code."""
    directory = os.path.abspath(os.path.expanduser(options.directory))
    body = backup_body(directory, options.include, options.exclude)
    job = Job(BACKUP_ORCHESTRATOR, body, "backup", (Path(directory),), (directory,))
    return run_job(job, options, out, err)


def run_job(job: Job, options: BackupOptions, out: Console, err: Console) -> int:
    """Start the job on the host (started here if needed), follow it with progress, return the exit code."""
    if is_loopback(options.url):
        for directory in job.check_locally:
            problem = local_directory_problem(directory)
            if problem:
                say(err, f"Error: {problem}", "red")
                return EXIT_REJECTED
    try:
        with (
            local_host(options.url, out, options.start_services, job.directories) as started,
            new_session(options.url, options.key) as session,
        ):
            backup = start_backup(session, options.url, job.body, job.orchestrator)
            say(out, _starting(job))
            try:
                final = follow(session, backup.status_url, out, options.show_progress)
            except KeyboardInterrupt:
                if started:
                    say(err, stop_backup(session, backup, job.noun), "yellow")
                else:
                    say(
                        err,
                        f"Stopped following the {job.noun}; it keeps running in the host. Status: {backup.status_url}",
                        "yellow",
                    )
                return EXIT_INTERRUPTED
    except NotAFunctionsHost as exc:
        say(err, f"Error: {exc}", "red")
        return EXIT_FAILED
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
    return (job.report or report)(final, out, err)


def _starting(job: Job) -> str:
    if job.noun == "backup":
        return f"Backing up {job.directories[0]}"
    if job.noun == "restore":
        return f"Restoring into {job.directories[-1]}"
    return f"Verifying the backup of {job.directories[0]}"


def local_directory_problem(directory: str) -> str | None:
    """Why directory cannot be backed up, judged on this machine; None when it looks usable.

    Only for a loopback host, which sees the same file system: it saves waiting for services to start
    just to hear that a path is wrong. The host still checks everything itself.
    """
    if not os.path.exists(directory):
        return f"The directory '{directory}' does not exist."
    if not os.path.isdir(directory):
        return f"'{directory}' is not a directory; give the directory that holds the files."
    return None


def stop_backup(session: requests.Session, backup: StartedBackup, noun: str = "backup") -> str:
    """Terminate the backup (restore, verify) on a host this CLI is about to stop, and say what that means.

    Without this, the host's task hub would keep the backup half-done and resume it, unseen, every
    time a host starts on the same hub. Files already copied stay in storage either way.
    """
    if backup.terminate_url is None:
        return "Could not stop the backup: the host sent no terminate URL. " + RESUMES_LATER
    try:
        terminate_backup(session, backup.terminate_url, TERMINATE_REASON)
        wait_until_ended(session, backup.status_url)
    except HostError as exc:
        if exc.status_code == 410:  # Gone: the orchestration had already ended.
            return f"The {noun} had already ended; run the same command again to see how."
        return f"Could not stop the {noun}: {exc.message} (HTTP {exc.status_code}). " + RESUMES_LATER
    except HostUnreachable as exc:
        return f"Could not stop the {noun}: {exc} " + RESUMES_LATER
    if noun == "backup":
        return STOPPED_MESSAGE
    return f"{noun.capitalize()} stopped; run the same command again to continue."


def wait_until_ended(session: requests.Session, status_url: str) -> None:
    """Give the host a moment to act on the accepted termination before it is stopped.

    Best effort: the request is already stored in the task hub, so a status error changes nothing.
    """
    deadline = time.monotonic() + TERMINATE_WAIT_SECONDS
    with contextlib.suppress(HostError, HostUnreachable):
        for status in poll_status(session, status_url):
            if status.finished or time.monotonic() > deadline:
                return


def follow(session: requests.Session, status_url: str, out: Console, show_progress: bool) -> Status:
    """Poll until the backup ends, feeding each status to the progress view; return the last one."""
    final: Status | None = None
    with progress_view(out, show_progress) as view:
        for status in poll_status(session, status_url):
            view.show(status)
            final = status
    assert final is not None, "poll_status yields at least once"
    return final


def report(final: Status, out: Console, err: Console, noun: str = "Backup") -> int:
    """Print how the backup (or the restore or verify, named by ``noun``) ended and map it to an exit code."""
    if final.runtime_status == "Completed":
        say(out, f"{noun} completed: {describe_bytes(final.output)}{describe_files(final)}.", "green")
        return EXIT_OK
    reason = final.output if final.output not in (None, "") else "no reason given"
    verb = "failed" if final.runtime_status == "Failed" else final.runtime_status.lower()
    say(err, f"{noun} {verb}: {reason}", "red")
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
