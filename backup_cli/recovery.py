"""The ``restore``, ``verify``, ``prune`` and ``backups`` commands: start-and-follow as for a backup, own reports.

Exit codes as for ``backup``: 0 done (and, for verify, everything as recorded), 1 failed or problems found,
2 rejected by the host, 130 interrupted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

from blueprints.names import PRUNE_ORCHESTRATOR, RESTORE_ORCHESTRATOR, VERIFY_ORCHESTRATOR
from site_backup.prune_messages import PruneRequest
from site_backup.recovery_messages import RestoreRequest, VerifyRequest

from .autostart import NotAFunctionsHost, local_host
from .backup import EXIT_FAILED, EXIT_OK, EXIT_REJECTED, BackupOptions, Job, describe_bytes, report, run_job
from .client import HostError, HostUnreachable, Status, list_backups, new_session
from .output import say
from .processes import ServiceError


def absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


@dataclass(frozen=True)
class RestoreOptions:
    directory: str
    target: str
    backup: str = "latest"
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    overwrite: bool = False


def run_restore(restore: RestoreOptions, options: BackupOptions, out: Console, err: Console) -> int:
    root, target = absolute(restore.directory), absolute(restore.target)
    request = RestoreRequest(
        restore.backup, root, target, tuple(restore.include), tuple(restore.exclude), restore.overwrite
    )
    body = request.to_json()
    job = Job(RESTORE_ORCHESTRATOR, body, "restore", (Path(root), Path(target)), report=restore_report)
    return run_job(job, options, out, err)


def restore_report(final: Status, out: Console, err: Console) -> int:
    if final.runtime_status != "Completed":
        return report(final, out, err, "Restore")
    custom = final.custom_status
    say(
        out,
        f"Restore completed: {describe_bytes(final.output)} of backup {custom.get('backup')}: "
        f"{custom.get('filesRestored', 0)} restored, {custom.get('filesIdentical', 0)} already identical, "
        f"{custom.get('filesKept', 0)} kept as they were (different; pass --overwrite to replace them).",
        "green",
    )
    return EXIT_OK


def run_verify(
    directory: str, backup: str, deep: bool, compare: bool, options: BackupOptions, out: Console, err: Console
) -> int:
    root = absolute(directory)
    body = VerifyRequest(backup, root, deep, compare).to_json()
    job = Job(VERIFY_ORCHESTRATOR, body, "verify", (Path(root),), report=verify_report)
    return run_job(job, options, out, err)


def verify_report(final: Status, out: Console, err: Console) -> int:
    if final.runtime_status != "Completed" or not isinstance(final.output, dict):
        return report(final, out, err, "Verify")
    found: dict[str, Any] = final.output
    how = "by their bytes" if found.get("deep") else "by size and MD5"
    line = f"{found.get('files', 0)} file(s) of backup {found.get('backup')} checked {how}"
    if "changed" in found:
        line += (
            f"; on the site since: {found['changed']} changed, {found['deleted']} deleted, "
            f"{found['added'] if found['added'] is not None else 'unknown'} added"
        )
    if found.get("ok"):
        say(out, f"Verified: {line}; everything is as recorded.", "green")
        return EXIT_OK
    say(
        err,
        f"Verify found problems: {line}; {found.get('missing', 0)} missing, {found.get('damaged', 0)} damaged.",
        "red",
    )
    for problem in found.get("problems", []):
        say(err, f"  {problem}", "red")
    return EXIT_FAILED


def run_prune(
    directory: str, retention: str | None, dry_run: bool, options: BackupOptions, out: Console, err: Console
) -> int:
    root = absolute(directory)
    body = PruneRequest(root, retention or None, dry_run).to_json()
    job = Job(PRUNE_ORCHESTRATOR, body, "prune", (Path(root),), report=prune_report)
    return run_job(job, options, out, err)


def prune_report(final: Status, out: Console, err: Console) -> int:
    if final.runtime_status != "Completed" or not isinstance(final.output, dict):
        return report(final, out, err, "Prune")
    found: dict[str, Any] = final.output
    verb = "would remove" if found.get("dryRun") else "removed"
    say(
        out,
        f"Prune ({found.get('retention')}) kept {found.get('runsKept')} backup(s) and {verb} "
        f"{found.get('runsRemoved')}, with {found.get('snapshotsRemoved')} snapshot(s) "
        f"({decimal(int(found.get('snapshotBytesRemoved') or 0))}) and {found.get('catalogBlobsRemoved')} catalog "
        f"blob(s); {found.get('snapshotsKept')} snapshot(s) stay.",
        "green",
    )
    shown = found.get("removed", [])
    for run in shown:
        say(out, f"  {verb}: {run}")
    more = int(found.get("runsRemoved") or 0) - len(shown)
    if more > 0:
        say(out, f"  and {more} more")
    return EXIT_OK


def run_backups(directory: str, top: int, options: BackupOptions, out: Console, err: Console) -> int:
    """Print the sealed backups of a directory, newest first."""
    root = absolute(directory)
    try:
        with (
            local_host(options.url, out, options.start_services, (Path(root),)),
            new_session(options.url, options.key) as session,
        ):
            runs = list_backups(session, options.url, root, top)
    except NotAFunctionsHost as exc:
        say(err, f"Error: {exc}", "red")
        return EXIT_FAILED
    except HostError as exc:
        say(err, f"Error: {exc.message} (HTTP {exc.status_code})", "red")
        return EXIT_REJECTED if 400 <= exc.status_code < 500 else EXIT_FAILED
    except (HostUnreachable, ServiceError) as exc:
        say(err, f"Error: {exc}", "red")
        return EXIT_FAILED
    if not runs:
        say(out, f"No backups of {root} yet.")
        return EXIT_OK
    columns = ("id", "finished", "outcome", "files", "size", "uploaded", "unchanged", "failed")
    rows = [
        (
            str(run.get("id")),
            str(run.get("finished")),
            str(run.get("outcome")),
            str(run.get("files")),
            decimal(int(run.get("bytes") or 0)),
            str(run.get("uploaded")),
            str(run.get("unchanged")),
            str(run.get("failed")),
        )
        for run in runs
    ]
    if not out.is_terminal:
        # Piped output is for scripts: tab-separated, nothing folded or cut (ids are copied into commands).
        for row in (columns, *rows):  # written as they are: rich would expand the tabs
            out.file.write("\t".join(row) + "\n")
        out.file.flush()
        return EXIT_OK
    table = Table(title=f"Backups of {root}, newest first")
    for column in columns:
        table.add_column(column, justify="right" if column in ("files", "size", "uploaded", "unchanged") else "left")
    for row in rows:
        table.add_row(*row)
    out.print(table)
    return EXIT_OK
