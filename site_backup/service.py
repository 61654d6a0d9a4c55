"""The two units of work the orchestration fans out, as plain functions.

Both re-check the allowed roots: the orchestration can be started without the HTTP starter
(the Durable webhook API), so the activities never trust their input.
"""

from __future__ import annotations

import logging
import os

from .errors import InvalidBackupRequest
from .listing import list_files
from .request import BackupRequest, parse_backup_request, parse_listing_input
from .roots import allowed_roots, resolve_backup_directory
from .storage import backup_container
from .upload import backup_file
from .wire import from_wire, to_wire

log = logging.getLogger(__name__)


def checked_request(value: object) -> BackupRequest:
    """Parse a request and resolve its directory against the allowed roots."""
    request = parse_backup_request(value)
    root = resolve_backup_directory(request.root_directory, allowed_roots())
    return request.with_root(str(root))


def list_backup_files(value: object) -> list[str]:
    """The files to back up for a request (a directory string or a request object).

    An object with ``after`` (and ``limit``) returns the next page of a big tree.
    """
    request, after, limit = parse_listing_input(value)
    root = resolve_backup_directory(request.root_directory, allowed_roots())
    cursor = from_wire(after) if after is not None else None
    files = list_files(root, request.include, request.exclude, after=cursor, limit=limit)
    log.info("Found %d file(s) under %s%s.", len(files), root, f" after {after}" if after else "")
    return [to_wire(path) for path in files]


def copy_file_to_blob(wire_path: object) -> int:
    """Back up one file; returns the bytes the backup holds for it (0 if it vanished)."""
    path = from_wire(wire_path) if isinstance(wire_path, str) else wire_path
    if not isinstance(path, str) or not os.path.isabs(path) or "\x00" in path:
        raise InvalidBackupRequest(f"Expected an absolute file path, got {wire_path!r}.")
    result = backup_file(backup_container(), path, allowed_roots())
    log.info("%s '%s' -> '%s' (%d bytes).", result.outcome.capitalize(), path, result.blob_name, result.size)
    return result.size
