"""The units of work of restore and verify: find the backup, page through its catalog, restore or check a part.

Restore writes below its target the way the backup reads below its root (``fsaccess``): every directory is
opened or made relative to its parent without following a symlink, every file is written to a temporary name
in its directory, its MD5 checked against the catalog, given its modification time, and only then renamed
into place. A mismatch fails that file and leaves nothing in its place. An existing file that differs is left
alone unless ``overwrite``; one that is identical is skipped. A file's bytes come from whichever version of its
blob has the MD5 the catalog recorded: the blob itself, or the newest snapshot of it with that MD5.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from .blobstore import BlobInfo, StorageRequestFailed, StorageUnavailable
from .catalog import CatalogEntry, CatalogPart, version_holding
from .concurrency import each
from .copier import BLOCK_BYTES, hash_file, in_io_thread, limits
from .errors import BackupError, InvalidBackupRequest
from .fsaccess import (
    PathGone,
    commit_temp_file,
    containing_root,
    create_temp_file,
    discard_temp_file,
    make_directory_below,
    normalised,
    open_directory,
    open_directory_below,
    open_file_at,
    relative_parts,
)
from .globs import compile_glob, matches_any
from .listing import display_path
from .messages import RunSummary
from .recovery_messages import PartsTask, PartTask, RecoveryTally, RestoreRequest, VerifyRequest
from .roots import allowed_roots
from .runs import find_run, part_names, read_part
from .storage import storage

log = logging.getLogger(__name__)

FILES_AT_ONCE = 16
PARTS_PER_PAGE = 200
_T = TypeVar("_T")


class StoredCopyMissing(BackupError):
    """No version of a blob holds the bytes the catalog recorded for it."""


def resolved_root(path: str) -> str:
    """A root or target with ``..`` and every symlink along it resolved as far as it exists, as a backup resolves
    its directory: the roots check then sees where the path really leads, existing or not, and says nothing
    about what lies outside the roots."""
    normalised(path)  # absolute, without NUL characters
    return os.path.realpath(path)


def checked_restore(value: object) -> RestoreRequest:
    """A restore request, its root and target resolved and inside the allowed roots (blocking: file system)."""
    request = RestoreRequest.from_json(value)
    roots = allowed_roots()
    root = resolved_root(request.root)
    containing_root(PurePosixPath(root), roots)
    target = resolved_root(request.target)
    containing_root(PurePosixPath(target), roots)
    if not os.path.isdir(target) and not os.path.isdir(os.path.dirname(target)):
        raise InvalidBackupRequest(f"Neither the target {target!r} nor the directory that would hold it exists.")
    return RestoreRequest(request.backup, root, target, request.include, request.exclude, request.overwrite)


def checked_verify(value: object) -> VerifyRequest:
    request = VerifyRequest.from_json(value)
    root = resolved_root(request.root)
    containing_root(PurePosixPath(root), allowed_roots())
    return VerifyRequest(request.backup, root, request.deep, request.compare)


async def find_backup(value: object) -> dict[str, Any]:
    """The sealed run a restore or verify names; for a restore, its target directory is made if missing."""
    data = value if isinstance(value, dict) else {}
    if "targetDirectory" in data:
        request: RestoreRequest | VerifyRequest = await in_io_thread(checked_restore, data)
        assert isinstance(request, RestoreRequest)
        await in_io_thread(_make_target, request.target)
    else:
        request = await in_io_thread(checked_verify, data)
    summary = await find_run(request.root, request.backup)
    return summary.to_json()


def _make_target(target: str) -> None:
    path = normalised(target)
    roots = allowed_roots()
    root = containing_root(path, roots)
    root_fd = os.open(str(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(make_directory_below(root_fd, relative_parts(path, root)))
    finally:
        os.close(root_fd)


async def list_backup_parts(value: object) -> dict[str, Any]:
    """Up to a few hundred catalog part names of a run, and the marker of the rest."""
    task = PartsTask.from_json(value)
    names: list[str] = []
    marker = task.marker
    while len(names) < PARTS_PER_PAGE:
        page, marker = await part_names(task.summary, marker)
        names.extend(page)
        if marker is None:
            break
    return {"parts": names, "marker": marker}


def _selected(entry: CatalogEntry, include: list[Any], exclude: list[Any]) -> bool:
    rel = "/".join(entry.parts)
    name = entry.parts[-1]
    directories = ["/".join(entry.parts[:i]) for i in range(1, len(entry.parts))]
    if any(matches_any(exclude, d, d.rsplit("/", 1)[-1], is_directory=True) for d in directories):
        return False
    if matches_any(exclude, rel, name):
        return False
    return not include or matches_any(include, rel, name)


async def _each(items: Iterable[_T], work: Callable[[_T], Awaitable[RecoveryTally]]) -> RecoveryTally:
    """Run ``work`` on every item, ``FILES_AT_ONCE`` at a time, and add up the tallies."""
    return sum(await each(items, work, FILES_AT_ONCE), RecoveryTally())


# ---- restore ------------------------------------------------------------------------------------------------


@dataclass
class _Restore:
    request: RestoreRequest
    part: CatalogPart
    target_fd: int

    async def entry(self, entry: CatalogEntry) -> RecoveryTally:
        where = display_path(self.request.target, entry.parts)
        try:
            return await self._entry(entry)
        except StorageUnavailable:
            raise
        except (StorageRequestFailed, StoredCopyMissing, PathGone, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            if isinstance(exc, PathGone):
                reason = "a symlink or a file is in the way of its directory; nothing was written through it"
            return RecoveryTally(files=1, failed=1).with_problem(f"{where}: {reason}")

    async def _entry(self, entry: CatalogEntry) -> RecoveryTally:
        dir_fd = await in_io_thread(make_directory_below, self.target_fd, entry.parts[:-1])
        try:
            existing = await in_io_thread(_existing, dir_fd, entry)
            if existing == "identical":
                return RecoveryTally(files=1, identical=1, bytes=entry.size)
            if existing == "directory":
                raise PathGone(entry.parts[-1])
            if existing == "different" and not self.request.overwrite:
                return RecoveryTally(files=1, kept=1)
            version = await _version_with(storage().container, self.part.prefix + entry.key, entry)
            await self._download(dir_fd, entry, version)
            return RecoveryTally(files=1, restored=1, bytes=entry.size)
        finally:
            os.close(dir_fd)

    async def _download(self, dir_fd: int, entry: CatalogEntry, version: BlobInfo) -> None:
        """Into a temporary file, checked against the catalog's MD5, then renamed into place."""
        target = storage()
        name = entry.parts[-1]
        fd = await in_io_thread(create_temp_file, dir_fd, name)
        digest = hashlib.md5(usedforsecurity=False)
        budget = limits().memory
        try:
            offset = 0
            while offset < entry.size:
                length = min(BLOCK_BYTES, entry.size - offset)
                await budget.acquire(length)
                try:
                    chunk = await target.store.get_range(
                        target.container, self.part.prefix + entry.key, offset, length, version.snapshot
                    )
                    await in_io_thread(_write_all, fd, chunk, digest)
                finally:
                    await budget.release(length)
                offset += len(chunk)
                if len(chunk) < length:
                    break
            if offset != entry.size or digest.hexdigest() != entry.md5:
                raise StoredCopyMissing(
                    f"the stored bytes do not have the size and MD5 the backup recorded ({offset} of {entry.size} "
                    "bytes); nothing was put in place"
                )
            await in_io_thread(_finish_file, fd, entry.mtime_ns)
        except BaseException:
            os.close(fd)
            await in_io_thread(discard_temp_file, dir_fd, name)
            raise
        os.close(fd)
        await in_io_thread(commit_temp_file, dir_fd, name)


def _write_all(fd: int, data: bytes, digest: Any) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    digest.update(data)


def _finish_file(fd: int, mtime_ns: int) -> None:
    os.fsync(fd)
    os.utime(fd, ns=(mtime_ns, mtime_ns))


def _existing(dir_fd: int, entry: CatalogEntry) -> str:
    """What is at the file's place in the target: ``none``, ``identical``, ``different`` or ``directory``."""
    try:
        st = os.stat(entry.parts[-1], dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return "none"
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
        return "different"
    opened = open_file_at(dir_fd, entry.parts[-1])
    try:
        md5, _ = hash_file(opened.fd)
    finally:
        opened.close()
    return "identical" if md5.hex() == entry.md5 else "different"


async def _version_with(container: str, blob: str, entry: CatalogEntry) -> BlobInfo:
    """The blob itself when it still holds the recorded bytes, else the newest snapshot of it that does."""
    versions = await storage().store.versions(container, blob)
    found = version_holding(versions, entry.size, entry.md5)
    if found is not None:
        return found
    if not versions:
        raise StoredCopyMissing("it is not in storage any more (deleted, or pruned)")
    raise StoredCopyMissing("no stored version has the MD5 the backup recorded (damaged, or pruned)")


async def restore_part(value: object) -> dict[str, Any]:
    """Restore the files of one catalog part that the request selects."""
    task = PartTask.from_json(value)
    request = await in_io_thread(checked_restore, task.request)
    part = await read_part(task.part)
    include = [compile_glob(p) for p in request.include]
    exclude = [compile_glob(p) for p in request.exclude]
    entries = [e for e in part.entries if _selected(e, include, exclude)]
    target_fd = await in_io_thread(open_directory, normalised(request.target), allowed_roots())
    try:
        tally = await _each(entries, _Restore(request, part, target_fd).entry)
    finally:
        os.close(target_fd)
    log.info(
        "Restored %d, identical %d, kept %d, failed %d of %s.",
        tally.restored,
        tally.identical,
        tally.kept,
        tally.failed,
        task.part,
    )
    return tally.to_json()


# ---- verify ---------------------------------------------------------------------------------------------------


@dataclass
class _Verify:
    request: VerifyRequest
    summary: RunSummary
    part: CatalogPart
    source_fd: int | None

    async def entry(self, entry: CatalogEntry) -> RecoveryTally:
        where = display_path(self.summary.root, entry.parts)
        blob = self.part.prefix + entry.key
        tally = RecoveryTally(files=1)
        try:
            version = await _version_with(storage().container, blob, entry)
            if self.request.deep and not await _bytes_match(blob, version, entry):
                tally = RecoveryTally(files=1, damaged=1).with_problem(f"{where}: its stored bytes are damaged")
            else:
                tally = RecoveryTally(files=1, ok=1, bytes=entry.size)
        except StoredCopyMissing as exc:
            missing = "not in storage" in str(exc)
            tally = RecoveryTally(files=1, missing=int(missing), damaged=int(not missing)).with_problem(
                f"{where}: {exc}"
            )
        if self.source_fd is not None:
            tally += await in_io_thread(_compare, self.source_fd, entry, where)
        return tally


async def _bytes_match(blob: str, version: BlobInfo, entry: CatalogEntry) -> bool:
    target = storage()
    digest = hashlib.md5(usedforsecurity=False)
    offset = 0
    while offset < entry.size:
        length = min(BLOCK_BYTES, entry.size - offset)
        chunk = await target.store.get_range(target.container, blob, offset, length, version.snapshot)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    return offset == entry.size and digest.hexdigest() == entry.md5


def _compare(source_fd: int, entry: CatalogEntry, where: str) -> RecoveryTally:
    """How the file on the site differs from the backup's record of it (by size and modification time)."""
    try:
        dir_fd = open_directory_below(source_fd, entry.parts[:-1])
    except OSError:
        return RecoveryTally(deleted=1).with_problem(f"{where}: deleted from the site since")
    try:
        st = os.stat(entry.parts[-1], dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return RecoveryTally(deleted=1).with_problem(f"{where}: deleted from the site since")
    finally:
        os.close(dir_fd)
    if stat.S_ISREG(st.st_mode) and st.st_size == entry.size and st.st_mtime_ns == entry.mtime_ns:
        return RecoveryTally()
    return RecoveryTally(changed=1).with_problem(f"{where}: changed on the site since")


async def verify_part(value: object) -> dict[str, Any]:
    """Check one catalog part against storage (and the site)."""
    task = PartTask.from_json(value)
    request = await in_io_thread(checked_verify, task.request)
    part = await read_part(task.part)
    source_fd = None
    if request.compare and Path(request.root).is_dir():
        source_fd = await in_io_thread(open_directory, normalised(request.root), allowed_roots())
    try:
        tally = await _each(part.entries, _Verify(request, task.summary, part, source_fd).entry)
    finally:
        if source_fd is not None:
            os.close(source_fd)
    return tally.to_json()
