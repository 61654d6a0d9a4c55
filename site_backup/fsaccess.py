"""Open files and directories below an allowed root without ever following a symlink on the way.

A path is checked once and opened later, and in between anyone who can write inside the root may swap a
directory for a symlink to ``/etc``. So nothing here opens a path string: the allowed root is opened (it is
the administrator's own setting), every component below it is opened relative to its parent's descriptor
with ``O_NOFOLLOW``, and a file is then only read through its own descriptor. A symlink anywhere below the
root makes the open fail instead of leading out. Files are opened with ``O_NONBLOCK`` and must turn out to
be regular files, so a FIFO swapped in for a file cannot block a read.

The one symlink the backup does honour, a link to a file inside the backup root, is resolved by hand:
its target is read, joined and normalised as text, checked against the root, and then opened component
by component like any other path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import BackupError, DirectoryNotAllowed

DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# Errors that mean "the path no longer leads to a file below the root": deleted, replaced by a file,
# or a symlink put somewhere along it.
GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


class PathGone(BackupError):
    """The path no longer leads to a regular file below its root (deleted, replaced, or through a symlink)."""


@dataclass(frozen=True)
class FileIdentity:
    """What "the same file, unchanged" means: same inode, size, modification and change times.

    The change time (ctime) cannot be set by a user, so a rewrite that restores the size and mtime is
    still seen as a change.
    """

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def within(path: PurePosixPath, root: PurePosixPath) -> bool:
    """Whether the normalised ``path`` is ``root`` or below it, as text (no file-system access)."""
    return path == root or root in path.parents


def relative_parts(path: PurePosixPath, root: PurePosixPath) -> tuple[str, ...]:
    """The components of ``path`` below ``root``; both normalised and ``path`` within ``root``."""
    return path.parts[len(root.parts) :]


def normalised(path: str) -> PurePosixPath:
    """An absolute path with ``.``/``..`` and repeated slashes resolved as text."""
    if not os.path.isabs(path) or "\x00" in path:
        raise ValueError(f"Expected an absolute path without NUL characters, got {path!r}.")
    return PurePosixPath(os.path.normpath(path))


def containing_root(path: PurePosixPath, roots: Sequence[Path]) -> PurePosixPath:
    """The allowed root that holds ``path``, or DirectoryNotAllowed."""
    for root in roots:
        candidate = PurePosixPath(str(root))
        if within(path, candidate):
            return candidate
    shown = ", ".join(str(r) for r in roots) or "none"
    raise DirectoryNotAllowed(
        f"{str(path)!r} is outside the allowed roots ({shown}). Back up a directory under one of them, "
        "or add its root to the BACKUP_ALLOWED_ROOTS app setting."
    )


def open_directory_at(parent_fd: int, name: str) -> int:
    """Open the directory ``name`` in ``parent_fd``; a symlink in its place fails with ELOOP/ENOTDIR."""
    return os.open(name, DIRECTORY_FLAGS, dir_fd=parent_fd)


def open_directory_below(root_fd: int, parts: Sequence[str]) -> int:
    """Open the directory at ``parts`` below ``root_fd``, never following a symlink; the caller closes it."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            child = open_directory_at(fd, part)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_directory(path: PurePosixPath, roots: Sequence[Path]) -> int:
    """A descriptor of the directory ``path``, reached from its allowed root without following symlinks.

    The caller closes it. A path that no longer leads to a directory below the root is PathGone.
    """
    root = containing_root(path, roots)
    root_fd = os.open(str(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return open_directory_below(root_fd, relative_parts(path, root))
    except OSError as exc:
        if exc.errno in GONE_ERRNOS:
            raise PathGone(str(path)) from exc
        raise
    finally:
        os.close(root_fd)


@dataclass
class OpenFile:
    """A regular file opened for reading, with the stat taken through its descriptor."""

    fd: int
    stat: os.stat_result

    @property
    def identity(self) -> FileIdentity:
        return FileIdentity.of(self.stat)

    def close(self) -> None:
        os.close(self.fd)


def open_file_at(dir_fd: int, name: str) -> OpenFile:
    """Open the regular file ``name`` in ``dir_fd``; PathGone for a symlink, a special file or nothing."""
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in GONE_ERRNOS or exc.errno == errno.ENXIO:
            raise PathGone(name) from exc
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise PathGone(name)
    return OpenFile(fd, st)


def open_file_below(root_fd: int, parts: Sequence[str]) -> OpenFile:
    """Open the regular file at ``parts`` below ``root_fd`` without following any symlink."""
    if not parts:
        raise PathGone("")
    try:
        dir_fd = open_directory_below(root_fd, parts[:-1])
    except OSError as exc:
        if exc.errno in GONE_ERRNOS:
            raise PathGone("/".join(parts)) from exc
        raise
    try:
        return open_file_at(dir_fd, parts[-1])
    finally:
        os.close(dir_fd)


def symlink_target(dir_fd: int, name: str, directory: PurePosixPath) -> PurePosixPath | None:
    """The normalised target of the symlink ``name`` in ``directory`` (open as ``dir_fd``), or None."""
    try:
        target = os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return None
    if "\x00" in target:
        return None
    return PurePosixPath(os.path.normpath(os.path.join(str(directory), target)))


def open_regular_file(path: str, roots: Sequence[Path]) -> OpenFile:
    """Open the file at the absolute ``path`` if it lies below an allowed root, without following symlinks.

    When the file itself is a symlink whose target is below the same root, the target is opened (again
    without following anything), so a listed link to a file is backed up as before.
    """
    target = normalised(path)
    root = containing_root(target, roots)
    parts = relative_parts(target, root)
    root_fd = os.open(str(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            return open_file_below(root_fd, parts)
        except PathGone:
            linked = _link_target(root_fd, parts, target.parent)
            if linked is None or not within(linked, root):
                raise
            return open_file_below(root_fd, relative_parts(linked, root))
    finally:
        os.close(root_fd)


def _link_target(root_fd: int, parts: Sequence[str], directory: PurePosixPath) -> PurePosixPath | None:
    try:
        dir_fd = open_directory_below(root_fd, parts[:-1])
    except OSError:
        return None
    try:
        st = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            return None
        return symlink_target(dir_fd, parts[-1], directory)
    except OSError:
        return None
    finally:
        os.close(dir_fd)


def read_up_to(fd: int, limit: int) -> bytes:
    """Read at most ``limit`` bytes from the current position (fewer only at the end of the file)."""
    chunks = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 8 * 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# ---- writing below a root (restores) ------------------------------------------------------------------------

TEMP_SUFFIX = ".site-backup-restore"


def make_directory_below(root_fd: int, parts: Sequence[str]) -> int:
    """Open the directory at ``parts`` below ``root_fd``, creating what is missing, never following a symlink.

    A symlink or a file in the way raises PathGone: nothing is ever written through a link. The caller closes
    the descriptor.
    """
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                child = open_directory_at(fd, part)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):  # made by a concurrent restore meanwhile
                    os.mkdir(part, 0o755, dir_fd=fd)
                child = open_directory_at(fd, part)
            os.close(fd)
            fd = child
    except OSError as exc:
        os.close(fd)
        if exc.errno in GONE_ERRNOS or exc.errno == errno.EEXIST:
            raise PathGone("/".join(parts)) from exc
        raise
    return fd


def temp_name(name: str) -> str:
    """The temporary name a file is written under before it is renamed into place: fixed for each name, so a
    restore run again after a crash replaces its own leftover instead of leaving it behind."""
    head = name.encode("utf-8", "surrogateescape")[: 255 - 1 - len(TEMP_SUFFIX)].decode("utf-8", "ignore")
    return f".{head}{TEMP_SUFFIX}"


def create_temp_file(dir_fd: int, name: str) -> int:
    """Create the temporary file for ``name``, exclusively: whatever has its name already (a crashed restore's
    leftover, or a link someone planted) is unlinked first, never opened or followed."""
    temp = temp_name(name)
    for _ in range(3):
        try:
            return os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd
            )
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=dir_fd)
    raise PathGone(temp)


def commit_temp_file(dir_fd: int, name: str) -> None:
    """Rename the temporary file over ``name`` (atomically; a symlink in its place is replaced, not followed)."""
    os.rename(temp_name(name), name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def discard_temp_file(dir_fd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp_name(name), dir_fd=dir_fd)
