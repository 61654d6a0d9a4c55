"""The units of work the orchestration fans out, as plain async functions from JSON to JSON.

Every one re-checks what it touches against the allowed roots: an orchestration can be started without the
HTTP starter (through the Durable webhook API), so no activity trusts its input. Each is idempotent: it may
run twice (a retried listing page rewrites the same manifests, a copy overwrites with the same bytes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import replace
from functools import partial
from typing import Any

from .blobstore import StorageRequestFailed, StorageUnavailable
from .catalog import CatalogEntry, CatalogPart, id_name, part_name, stamp, summary_name
from .concurrency import each
from .copier import Copier, Source, Stored, in_io_thread, stored_copy_matches
from .errors import BackupError, DirectoryNotAllowed, InvalidBackupRequest
from .fsaccess import FileIdentity, OpenFile, PathGone, normalised, open_directory, open_file_below, open_regular_file
from .listing import count_files, display_path, list_files, list_page
from .manifest import Manifest, work_prefix
from .messages import CopyResult, FinishTask, PageRequest, SegmentTask, Tuning, WorkUnit
from .naming import blob_name_for
from .request import BackupRequest, parse_backup_request
from .roots import allowed_roots, resolve_backup_directory
from .storage import storage
from .wire import from_wire, to_wire

log = logging.getLogger(__name__)

DELETES_IN_FLIGHT = 16


class CopyFailed(BackupError):
    """A file given by path could not be backed up; the message says why."""


class ManifestGone(BackupError):
    """A work unit's manifest is no longer in storage: its files cannot be known, so they are not backed up."""


def checked_request(value: object) -> BackupRequest:
    """Parse a request and resolve its directory against the allowed roots (blocking: file system)."""
    request = parse_backup_request(value)
    root = resolve_backup_directory(request.root_directory, allowed_roots())
    return request.with_root(str(root))


async def get_file_list(value: object) -> Any:
    """A page of a run's listing (a PageRequest), or, for a directory or request, the seed's whole list."""
    if isinstance(value, dict) and "run" in value:
        page = PageRequest.from_json(value)
        result = await list_page(page)
        log.info(
            "Listed %d file(s) under %s: %d unit(s) to copy, %d already backed up%s.",
            result.listed.files,
            page.request.root_directory,
            len(result.units),
            result.unchanged.files,
            "" if result.cursor is None else ", more to come",
        )
        return result.to_json()
    request = parse_backup_request(value)
    files = await in_io_thread(list_files, request)
    log.info("Found %d file(s) under %s.", len(files), request.root_directory)
    return [to_wire(path) for path in files]


async def count_selected_files(value: object) -> dict[str, Any]:
    """The files and bytes a request selects, for the progress totals."""
    request = parse_backup_request(value)
    totals = await in_io_thread(count_files, request)
    return replace(totals, tuning=Tuning.from_settings()).to_json()


async def copy_file_to_blob(value: object) -> Any:
    """Back up a work unit (its manifest's files) or, given one path as in the seed, that file (its bytes)."""
    if isinstance(value, str):
        return await copy_path(from_wire(value))
    unit = WorkUnit.from_json(value)
    result = await copy_unit(unit)
    log.info(
        "Unit %d: %d file(s), %d uploaded, %d unchanged, %d vanished, %d failed (%d bytes).",
        unit.number,
        result.files,
        result.uploaded,
        result.unchanged,
        result.vanished,
        result.failed,
        result.bytes,
    )
    return result.to_json()


async def copy_unit(unit: WorkUnit) -> CopyResult:
    target = storage()
    manifest = await _manifest(unit)
    root_fd = await in_io_thread(_open_listed_root, manifest)
    if root_fd is None:
        problem = _not_here(manifest.root)
        return CopyResult(files=len(manifest.entries), failed=len(manifest.entries), failures=(problem,))
    try:
        sources = (
            Source(
                blob=manifest.prefix + entry.key,
                display=display_path(manifest.root, entry.parts),
                open=partial(open_file_below, root_fd, entry.open_parts),
                known_md5=entry.known_md5,
                stat_matches=entry.stat_matches,
                listed_size=entry.size,
                stored=entry.stored,
                parts=entry.parts,
            )
            for entry in manifest.entries
        )
        result, stored = await Copier(target).copy_all(sources, priority=unit.number)
    finally:
        os.close(root_fd)
    await _write_part(manifest, unit.number, stored)
    return result


async def _write_part(manifest: Manifest, number: int, stored: list[tuple[Source, Stored]]) -> None:
    """The unit's part of the run's catalog: the files it backed up, as stored (a retry rewrites it)."""
    entries = sorted(
        (CatalogEntry(source.parts, copy.size, copy.mtime_ns, copy.md5) for source, copy in stored),
        key=lambda e: e.key,
    )
    part = CatalogPart(manifest.root, manifest.prefix, tuple(entries))
    body = part.to_bytes()
    target = storage()
    name = part_name(manifest.root, manifest.run, number)
    await target.store.put_blob(target.catalog_container, name, body, md5_of(body), "application/json", {})


async def stage_file_segment(value: object) -> dict[str, Any]:
    """Stage one segment of a large file; returns the bytes staged."""
    task = SegmentTask.from_json(value)
    assert task.index is not None
    source, listed, root_fd = await _large_file(task)
    try:
        staged = await Copier(storage()).stage_segment(source, listed, task.unit.segments, task.index)
    finally:
        os.close(root_fd)
    return {"bytes": staged}


async def commit_file_segments(value: object) -> dict[str, Any]:
    """Commit a large file whose segments are all staged."""
    task = SegmentTask.from_json(value)
    source, listed, root_fd = await _large_file(task)
    try:
        outcome = await Copier(storage()).commit_segments(source, listed)
    finally:
        os.close(root_fd)
    assert outcome.stored is not None
    await _write_part(await _manifest(task.unit), task.unit.number, [(source, outcome.stored)])
    log.info("Committed %s (%d bytes in %d segments).", source.display, listed.size, task.unit.segments)
    return outcome.result.to_json()


async def finish_backup(value: object) -> dict[str, Any]:
    """Seal the run (its summary into the catalog's index), then delete its manifests from the work area."""
    task = FinishTask.from_json(value)
    summary = task.summary
    target = storage()
    body = json.dumps(summary.to_json(), separators=(",", ":")).encode()
    name = summary_name(summary.root, summary.run, summary.started)
    tags = {"outcome": summary.outcome, "finished": stamp(summary.finished)}
    for blob in (id_name(summary.run), name):  # the index entry last: it is what seals the run
        await target.store.put_blob(target.catalog_container, blob, body, md5_of(body), "application/json", tags)
    names = [b.name for b in await target.store.list_all(target.catalog_container, work_prefix(summary.run))]

    async def delete(name: str) -> None:
        await target.store.delete_blob(target.catalog_container, name)

    await each(names, delete, DELETES_IN_FLIGHT)
    log.info("Sealed run %s of %s (%s) as %s.", summary.run, summary.root, summary.outcome, name)
    return {"sealed": name, "deleted": len(names)}


async def copy_path(path: str) -> int:
    """Back up the file at ``path`` (the seed's contract); returns its bytes, 0 if it vanished."""
    if not os.path.isabs(path) or "\x00" in path:
        raise InvalidBackupRequest(f"Expected an absolute file path, got {path!r}.")
    roots = allowed_roots()
    blob = blob_name_for(path)
    try:
        opened = await in_io_thread(open_regular_file, path, roots)
    except PathGone:
        log.warning("Skipping %s: it was deleted or replaced after the file list was made.", path)
        return 0
    try:
        identity = opened.identity
    finally:
        opened.close()
    target = storage()
    stored = await target.store.properties(target.container, blob)
    if stored is not None and stored_copy_matches(stored, identity):
        return identity.size
    known = stored.content_md5.hex() if stored and stored.content_md5 and stored.size == identity.size else None
    display = display_path(path, ())
    source = Source(blob, display, partial(open_regular_file, path, roots), known_md5=known, stored=stored is not None)
    result = (await Copier(target).copy(source)).result
    if result.failed:
        raise CopyFailed(result.failures[0])
    return result.bytes


async def _manifest(unit: WorkUnit) -> Manifest:
    target = storage()
    try:
        return Manifest.from_bytes(await target.store.get_blob(target.catalog_container, unit.manifest))
    except StorageRequestFailed as exc:
        if exc.status != 404 or isinstance(exc, StorageUnavailable):
            raise
        raise ManifestGone(
            f"The list of files of work unit {unit.number} ({unit.manifest}) is gone from the "
            f"{target.catalog_container!r} container (deleted, or lost by storage); run the backup again."
        ) from None


def md5_of(body: bytes) -> bytes:
    return hashlib.md5(body, usedforsecurity=False).digest()


def _open_listed_root(manifest: Manifest) -> int | None:
    """The root the manifest was listed from, opened again; None when this instance has another one there."""
    root = normalised(manifest.root)
    try:
        fd = open_directory(root, allowed_roots())
    except (PathGone, FileNotFoundError):
        return None
    except DirectoryNotAllowed:
        raise
    if os.fstat(fd).st_ino != manifest.root_ino:
        os.close(fd)
        return None
    return fd


def _not_here(root: str) -> str:
    return (
        f"{root}: the directory found there is not the one that was listed. Either it was replaced during the "
        "backup, or this instance does not share the listing instance's storage: back up only directories on "
        "storage every instance mounts (in Azure, under /home)."
    )


async def _large_file(task: SegmentTask) -> tuple[Source, FileIdentity, int]:
    """The large file of a segment task, its identity as listed, and its root's descriptor (caller closes)."""
    manifest = await _manifest(task.unit)
    if len(manifest.entries) != 1:
        raise InvalidBackupRequest(f"Malformed manifest {task.unit.manifest!r}: a large file's holds one entry.")
    entry = manifest.entries[0]
    root_fd = await in_io_thread(_open_listed_root, manifest)
    if root_fd is None:
        raise CopyFailed(_not_here(manifest.root))
    display = display_path(manifest.root, entry.parts)

    def open_it() -> OpenFile:
        return open_file_below(root_fd, entry.open_parts)

    listed = FileIdentity(0, entry.ino, entry.size, entry.mtime_ns, entry.ctime_ns)
    source = Source(manifest.prefix + entry.key, display, open_it, stored=entry.stored, parts=entry.parts)
    return source, listed, root_fd
