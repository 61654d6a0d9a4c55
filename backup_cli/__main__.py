"""Command line: ``python -m backup_cli backup|restore|verify|prune|backups DIR`` and ``python -m backup_cli start``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from .backup import EXIT_INTERRUPTED, BackupOptions, run_backup
from .client import KEY_SETTING
from .output import consoles, say
from .recovery import RestoreOptions, run_backups, run_prune, run_restore, run_verify
from .start import run_start

DEFAULT_URL = "http://127.0.0.1:7071"
DEFAULT_PORT = 7071


def parser() -> argparse.ArgumentParser:
    """The subcommands and their options."""
    root = argparse.ArgumentParser(prog="backup_cli", description="Back up a directory through the site-backup app.")
    commands = root.add_subparsers(dest="command", required=True)

    backup = commands.add_parser(
        "backup",
        help="back up DIR and follow the progress",
        description="Start a backup of DIR and follow it. If nothing listens at a local --url, Azurite and "
        "devhost are started for the duration (logs in .azurite/ and .devhost/).",
    )
    backup.add_argument("directory", metavar="DIR", help="directory to back up (made absolute)")
    _patterns(backup)
    _common(backup)

    restore = commands.add_parser(
        "restore",
        help="restore a backup of DIR into a target directory",
        description="Restore one backup of DIR (the latest, an id from `backups`, or the last one sealed at or "
        "before an ISO time) into --target. Existing files that differ are kept unless --overwrite.",
    )
    restore.add_argument("directory", metavar="DIR", help="the directory that was backed up")
    restore.add_argument("--target", required=True, metavar="TARGET", help="where to restore (made if missing)")
    restore.add_argument("--backup", default="latest", help="latest (default), a backup id, or an ISO time")
    restore.add_argument("--overwrite", action="store_true", help="replace existing files that differ")
    _patterns(restore)
    _common(restore)

    verify = commands.add_parser("verify", help="check a backup of DIR in storage")
    verify.add_argument("directory", metavar="DIR", help="the directory that was backed up")
    verify.add_argument("--backup", default="latest", help="latest (default), a backup id, or an ISO time")
    verify.add_argument("--deep", action="store_true", help="download and hash every file's bytes")
    verify.add_argument("--compare", action="store_true", help="also say what changed on the site since")
    _common(verify)

    prune = commands.add_parser(
        "prune",
        help="remove the backups of DIR a retention policy does not keep",
        description="Apply a retention policy (--keep, else the app's BACKUP_RETENTION setting) to the backups "
        "of DIR: remove the runs it does not keep and every snapshot no remaining run needs.",
    )
    prune.add_argument("directory", metavar="DIR", help="the directory that was backed up")
    prune.add_argument("--keep", metavar="POLICY", help="e.g. last=7,daily=30,weekly=12,monthly=24")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    _common(prune)

    listing = commands.add_parser("backups", help="list the backups of DIR, newest first")
    listing.add_argument("directory", metavar="DIR", help="the directory that was backed up")
    listing.add_argument("--top", type=int, default=50, help="at most this many (default 50)")
    _common(listing)

    start = commands.add_parser("start", help="run Azurite and the host in the foreground until Ctrl-C")
    start.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"host port (default {DEFAULT_PORT})")
    return root


def _patterns(command: argparse.ArgumentParser) -> None:
    command.add_argument("--include", action="append", default=[], metavar="GLOB", help="only files matching GLOB")
    command.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip files matching GLOB")


def _common(command: argparse.ArgumentParser) -> None:
    command.add_argument("--url", default=DEFAULT_URL, help=f"base URL of the host (default {DEFAULT_URL})")
    command.add_argument(
        "--key",
        default=os.environ.get(KEY_SETTING),
        help=f"function key of an app in Azure (default: the {KEY_SETTING} environment variable)",
    )
    command.add_argument("--no-progress", action="store_true", help="print only the result")
    command.add_argument("--no-start", action="store_true", help="never start local services; fail instead")


def _terminate_as_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM takes the Ctrl-C path, so child services are stopped either way."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the command, return its exit code."""
    args = parser().parse_args(argv)
    out, err = consoles()
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        if args.command == "start":
            return run_start(args.port, out, err)
        options = BackupOptions(
            directory=args.directory,
            url=args.url,
            include=getattr(args, "include", []),
            exclude=getattr(args, "exclude", []),
            show_progress=not args.no_progress,
            start_services=not args.no_start,
            key=args.key,
        )
        if args.command == "restore":
            restore = RestoreOptions(
                args.directory, args.target, args.backup, args.include, args.exclude, args.overwrite
            )
            return run_restore(restore, options, out, err)
        if args.command == "verify":
            return run_verify(args.directory, args.backup, args.deep, args.compare, options, out, err)
        if args.command == "prune":
            return run_prune(args.directory, args.keep, args.dry_run, options, out, err)
        if args.command == "backups":
            return run_backups(args.directory, args.top, options, out, err)
        return run_backup(options, out, err)
    except KeyboardInterrupt:
        say(err, "Interrupted.", "yellow")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
