"""Command line: ``python -m backup_cli backup DIR`` and ``python -m backup_cli start``."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from .backup import EXIT_INTERRUPTED, BackupOptions, run_backup
from .output import consoles, say
from .start import run_start

DEFAULT_URL = "http://127.0.0.1:7071"
DEFAULT_PORT = 7071


def parser() -> argparse.ArgumentParser:
    """Both subcommands and their options."""
    root = argparse.ArgumentParser(prog="backup_cli", description="Back up a directory through the site-backup app.")
    commands = root.add_subparsers(dest="command", required=True)

    backup = commands.add_parser(
        "backup",
        help="back up DIR and follow the progress",
        description="Start a backup of DIR and follow it. If nothing listens at a local --url, Azurite and "
        "devhost are started for the duration (logs in .azurite/ and .devhost/).",
    )
    backup.add_argument("directory", metavar="DIR", help="directory to back up (made absolute)")
    backup.add_argument("--url", default=DEFAULT_URL, help=f"base URL of the host (default {DEFAULT_URL})")
    backup.add_argument("--include", action="append", default=[], metavar="GLOB", help="only files matching GLOB")
    backup.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip files matching GLOB")
    backup.add_argument("--no-progress", action="store_true", help="print only the result")
    backup.add_argument("--no-start", action="store_true", help="never start local services; fail instead")

    start = commands.add_parser("start", help="run Azurite and the host in the foreground until Ctrl-C")
    start.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"host port (default {DEFAULT_PORT})")
    return root


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
            include=args.include,
            exclude=args.exclude,
            show_progress=not args.no_progress,
            start_services=not args.no_start,
        )
        return run_backup(options, out, err)
    except KeyboardInterrupt:
        say(err, "Interrupted.", "yellow")
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
