"""List the regular files under a root, deterministically and without leaving the root.

The walk goes through directory descriptors (``fsaccess``): every directory below the root is opened
relative to its parent without following symlinks, so swapping a directory for a symlink while the walk
runs cannot lead it outside. A symlink to a file is backed up (under the link's name) only when its target
is inside the root; a symlink to a directory is never followed: inside the root its target is backed up
under its own path anyway, and outside it is off limits. So links can cause neither an escape, nor a loop,
nor a second copy of a subtree; and every page of a big tree agrees with the whole listing.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import InvalidBackupRequest
from .fsaccess import (
    GONE_ERRNOS,
    PathGone,
    open_directory_at,
    open_file_below,
    opened_directory,
    relative_parts,
    symlink_target,
    within,
)
from .globs import Glob, compile_glob, matches_any
from .naming import blob_segment
from .roots import allowed_roots

log = logging.getLogger(__name__)

# Directory descriptors kept open along the walk's current path; deeper directories are reopened from the
# deepest one kept, so a pathologically deep tree cannot exhaust the process's descriptors.
MAX_OPEN_DEPTH = 128


def list_files(
    root: Path,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    after: str | None = None,
    limit: int | None = None,
) -> list[str]:
    """Absolute paths of the regular files under ``root`` (resolved), in listing order, filtered by globs.

    The listing order is depth-first with names sorted, so it equals the order of the paths'
    component tuples. ``include``/``exclude`` are globs on the path relative to the root (``**``
    crosses directories); a pattern without ``/`` matches the file or directory name at any depth.
    An excluded directory is not entered. An unreadable directory is an error, never skipped.
    ``after`` (a path from an earlier listing) and ``limit`` return one page of a big tree
    without walking the part before it again.
    """
    root_path = PurePosixPath(os.path.realpath(root))
    includes = [compile_glob(p) for p in include]
    excludes = [compile_glob(p) for p in exclude]
    cursor = _cursor_parts(root_path, after) if after else None
    found: list[str] = []
    with opened_directory(root_path, allowed_roots()) as root_fd:
        chain = _DirectoryChain(root_fd)
        try:
            visited: set[tuple[int, int]] = set()
            st = os.fstat(root_fd)
            # Depth-first with an explicit stack (no recursion limit on deep trees); children are pushed
            # in reverse name order so they come off the stack sorted.
            stack: list[tuple[tuple[str, ...], os.stat_result, bool]] = [((), st, True)]
            while stack and (limit is None or len(found) < limit):
                parts, st, is_dir = stack.pop()
                if not is_dir:
                    if cursor is None or parts > cursor:
                        found.append(str(root_path.joinpath(*parts)))
                    continue
                if cursor is not None and parts < cursor[: len(parts)]:
                    continue  # the whole subtree comes before the cursor
                if (st.st_dev, st.st_ino) in visited:
                    log.info("Skipping %s: directory already listed through another path.", root_path.joinpath(*parts))
                    continue
                visited.add((st.st_dev, st.st_ino))
                try:
                    dir_fd = chain.open(parts)
                except PathGone:
                    continue  # replaced or removed since its parent was read
                listing = _Directory(root_path, root_fd, parts, dir_fd, includes, excludes)
                stack.extend(reversed(listing.children()))
        finally:
            chain.close()
    return found


def _cursor_parts(root: PurePosixPath, path: str) -> tuple[str, ...]:
    cursor = PurePosixPath(os.path.normpath(path)) if os.path.isabs(path) else None
    if cursor is None or cursor == root or not within(cursor, root):
        raise InvalidBackupRequest(f"The listing cursor {path!r} is not under {str(root)!r}.")
    return relative_parts(cursor, root)


class _DirectoryChain:
    """Descriptors of the directories along the walk's current path, reused while the walk stays below them."""

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.parts: list[str] = []
        self.fds: list[int] = []
        self._extra: int | None = None

    def open(self, parts: tuple[str, ...]) -> int:
        """A descriptor of the directory at ``parts``, valid until the next call (owned by the chain)."""
        self._close_extra()
        keep = 0
        while keep < min(len(self.parts), len(parts)) and self.parts[keep] == parts[keep]:
            keep += 1
        for fd in self.fds[keep:]:
            os.close(fd)
        del self.fds[keep:], self.parts[keep:]
        try:
            for part in parts[keep:MAX_OPEN_DEPTH]:
                self.fds.append(open_directory_at(self.fds[-1] if self.fds else self.root_fd, part))
                self.parts.append(part)
            deepest = self.fds[-1] if self.fds else self.root_fd
            if len(parts) <= MAX_OPEN_DEPTH:
                return deepest
            fd = os.dup(deepest)
            for part in parts[MAX_OPEN_DEPTH:]:
                child = open_directory_at(fd, part)
                os.close(fd)
                fd = child
            self._extra = fd
            return fd
        except OSError as exc:
            if exc.errno in GONE_ERRNOS:
                raise PathGone("/".join(parts)) from exc
            raise

    def _close_extra(self) -> None:
        if self._extra is not None:
            os.close(self._extra)
            self._extra = None

    def close(self) -> None:
        self._close_extra()
        for fd in self.fds:
            os.close(fd)
        self.fds, self.parts = [], []


@dataclass
class _Directory:
    """One directory being listed: its selected files and enterable subdirectories, sorted by name."""

    root: PurePosixPath
    root_fd: int
    parts: tuple[str, ...]
    fd: int
    includes: list[Glob]
    excludes: list[Glob]

    def children(self) -> list[tuple[tuple[str, ...], os.stat_result, bool]]:
        path = self.root.joinpath(*self.parts)
        try:
            with os.scandir(self.fd) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            raise InvalidBackupRequest(f"Cannot list directory {str(path)!r}: {exc.strerror}.") from exc
        prefix = "".join(f"{p}/" for p in self.parts)
        children = []
        for entry in entries:
            rel = prefix + entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished since scandir
            if stat.S_ISLNK(st.st_mode):
                linked = self._linked_file(entry.name, path)
                if linked is not None and _selected(rel, entry.name, self.includes, self.excludes):
                    children.append(((*self.parts, entry.name), linked, False))
            elif stat.S_ISDIR(st.st_mode):
                if not matches_any(self.excludes, rel, entry.name, is_directory=True):
                    children.append(((*self.parts, entry.name), st, True))
            elif stat.S_ISREG(st.st_mode) and _selected(rel, entry.name, self.includes, self.excludes):
                children.append(((*self.parts, entry.name), st, False))
        _refuse_shared_blob_names(path, [child[0][-1] for child in children])
        return children

    def _linked_file(self, name: str, directory: PurePosixPath) -> os.stat_result | None:
        """The stat of a symlink's target when it is a regular file inside the root, else None."""
        target = symlink_target(self.fd, name, directory)
        if target is None or not within(target, self.root) or target == self.root:
            log.warning("Skipping %s: symlink leads outside %s.", directory / name, self.root)
            return None
        try:
            opened = open_file_below(self.root_fd, relative_parts(target, self.root))
        except (PathGone, OSError):
            log.info("Not following %s: a symlinked directory's target is backed up under its own path.", name)
            return None
        opened.close()
        return opened.stat


def _refuse_shared_blob_names(directory: PurePosixPath, names: list[str]) -> None:
    """Two names that would be stored under one blob name (``a\\b`` and ``a%5Cb``) lose data: refuse."""
    stored: dict[str, str] = {}
    for name in names:
        other = stored.setdefault(blob_segment(name), name)
        if other != name:
            raise InvalidBackupRequest(
                f"In {str(directory)!r}, {other!r} and {name!r} would be stored under the same blob name "
                f"{blob_segment(name)!r}; rename one of them or leave one out with an 'exclude' pattern."
            )


def _selected(rel: str, name: str, includes: list[Glob], excludes: list[Glob]) -> bool:
    if matches_any(excludes, rel, name):
        return False
    return not includes or matches_any(includes, rel, name)
