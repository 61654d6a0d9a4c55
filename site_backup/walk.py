"""Walk a directory tree in blob-name order, from any position, without leaving it.

The order is the order of the files' relative blob names as strings (``a b/c.txt`` before ``a b/d/e``, and
``a.txt`` before ``a/x`` because ``.`` sorts before ``/``), which is the order in which Blob Storage lists
them: the listing can then walk the tree and the stored blobs side by side (``listing.py``), and a page of a
big tree resumes after the last name of the previous page without walking what came before.

The walk goes through directory descriptors (``fsaccess``): every directory is opened relative to its parent
without following symlinks, so swapping one for a symlink while the walk runs cannot lead it out. A symlink
to a file is listed, under the link's name, only when its target is a regular file inside the root; a
symlink to a directory is never followed (inside the root its target is walked under its own path). So
links cause neither an escape, nor a loop, nor a second copy of a subtree.
"""

from __future__ import annotations

import itertools
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from .errors import InvalidBackupRequest
from .fsaccess import GONE_ERRNOS, PathGone, open_directory_at, open_file_below, relative_parts, symlink_target, within
from .globs import Glob, matches_any
from .naming import blob_segment

log = logging.getLogger(__name__)

# Directory descriptors kept open along the walk's current path; deeper ones are reopened from the deepest
# kept, so a pathologically deep tree cannot exhaust the process's descriptors.
MAX_OPEN_DEPTH = 128


@dataclass(frozen=True)
class Entry:
    """A file the walk selected: its relative blob name, its names below the root, and its stat.

    ``target`` holds the names of a symlink's target below the root (the file that is read); it is None
    for a regular file.
    """

    key: str
    parts: tuple[str, ...]
    stat: os.stat_result
    target: tuple[str, ...] | None = None

    @property
    def open_parts(self) -> tuple[str, ...]:
        return self.target if self.target is not None else self.parts


@dataclass(frozen=True)
class _Child:
    key: str  # the relative blob name; a directory's ends with "/"
    name: str
    stat: os.stat_result
    target: tuple[str, ...] | None = None

    @property
    def is_directory(self) -> bool:
        return self.key.endswith("/")


class TreeWalk:
    """The selected regular files below ``root`` (open as ``root_fd``), in blob-name order, after ``after``.

    ``include``/``exclude`` are globs on the path relative to the root; an excluded directory is not entered.
    An unreadable directory is an error (InvalidBackupRequest naming it), never silently skipped.
    """

    def __init__(
        self,
        root: PurePosixPath,
        root_fd: int,
        includes: Sequence[Glob] = (),
        excludes: Sequence[Glob] = (),
        after: str | None = None,
    ) -> None:
        self.root = root
        self.root_fd = root_fd
        self.includes = includes
        self.excludes = excludes
        self.after = after

    def __iter__(self) -> Iterator[Entry]:
        chain = _DirectoryChain(self.root_fd)
        try:
            root_stat = os.fstat(self.root_fd)
            # One frame per directory on the current path: its parts, its key prefix, its sorted children
            # and the (dev, ino) of every ancestor, which catches a bind-mount loop.
            stack = [_Frame((), "", self._children(chain, (), ""), {(root_stat.st_dev, root_stat.st_ino)})]
            while stack:
                frame = stack[-1]
                child = next(frame.children, None)
                if child is None:
                    stack.pop()
                    continue
                key = frame.prefix + child.key
                parts = (*frame.parts, child.name)
                if not child.is_directory:
                    yield Entry(key, parts, child.stat, child.target)
                    continue
                identity = (child.stat.st_dev, child.stat.st_ino)
                if identity in frame.ancestors:
                    log.warning("Not entering %s: it is one of its own ancestors.", self.root.joinpath(*parts))
                    continue
                try:
                    children = self._children(chain, parts, key)
                except PathGone:
                    continue  # removed or replaced since its parent was read
                stack.append(_Frame(parts, key, children, frame.ancestors | {identity}))
        finally:
            chain.close()

    def _children(self, chain: _DirectoryChain, parts: tuple[str, ...], prefix: str) -> Iterator[_Child]:
        """The directory's selected children after the cursor, in key order."""
        path = self.root.joinpath(*parts)
        try:
            fd = chain.open(parts)  # PathGone (not an OSError) when it was removed or replaced meanwhile
            with os.scandir(fd) as scan:
                entries = list(scan)
        except OSError as exc:  # opening it or reading it, e.g. no permission
            raise InvalidBackupRequest(f"Cannot list directory {str(path)!r}: {exc.strerror}.") from exc
        rel_prefix = "".join(f"{p}/" for p in parts)
        children: list[_Child] = []
        for entry in entries:
            child = self._child(fd, path, rel_prefix, entry)
            if child is not None and self._after_cursor(prefix + child.key, child.is_directory):
                children.append(child)
        children.sort(key=lambda c: c.key)
        _refuse_shared_blob_names(path, children)
        return iter(children)

    def _child(self, fd: int, path: PurePosixPath, rel_prefix: str, entry: os.DirEntry[str]) -> _Child | None:
        name = entry.name
        rel = rel_prefix + name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            return None  # vanished since scandir
        if stat.S_ISDIR(st.st_mode):
            if matches_any(self.excludes, rel, name, is_directory=True):
                return None
            return _Child(blob_segment(name) + "/", name, st)
        if not self._selected(rel, name):
            return None
        if stat.S_ISREG(st.st_mode):
            return _Child(blob_segment(name), name, st)
        if stat.S_ISLNK(st.st_mode):
            linked = self._linked_file(fd, name, path)
            if linked is not None:
                return _Child(blob_segment(name), name, linked[1], linked[0])
        return None  # sockets, FIFOs, devices

    def _after_cursor(self, key: str, is_directory: bool) -> bool:
        """Whether anything at ``key`` comes after the cursor: a file after it, or a directory holding it."""
        if self.after is None:
            return True
        if is_directory:
            return key > self.after or self.after.startswith(key)
        return key > self.after

    def _selected(self, rel: str, name: str) -> bool:
        if matches_any(self.excludes, rel, name):
            return False
        return not self.includes or matches_any(self.includes, rel, name)

    def _linked_file(
        self, fd: int, name: str, directory: PurePosixPath
    ) -> tuple[tuple[str, ...], os.stat_result] | None:
        """The target's parts and stat when a symlink leads to a regular file inside the root, else None."""
        target = symlink_target(fd, name, directory)
        if target is None or target == self.root or not within(target, self.root):
            log.warning("Skipping %s: symlink leads outside %s.", directory / name, self.root)
            return None
        parts = relative_parts(target, self.root)
        try:
            opened = open_file_below(self.root_fd, parts)
        except (PathGone, OSError):
            log.info("Not following %s: a symlinked directory's target is backed up under its own path.", name)
            return None
        opened.close()
        return parts, opened.stat


@dataclass
class _Frame:
    parts: tuple[str, ...]
    prefix: str
    children: Iterator[_Child]
    ancestors: set[tuple[int, int]]


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
        while keep < min(len(self.parts), len(parts), MAX_OPEN_DEPTH) and self.parts[keep] == parts[keep]:
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


def _refuse_shared_blob_names(directory: PurePosixPath, children: list[_Child]) -> None:
    """Two names stored under one blob name (``a\\b`` and ``a%5Cb``) would lose data: refuse (sorted input)."""
    for first, second in itertools.pairwise(children):
        if first.key == second.key:
            raise InvalidBackupRequest(
                f"In {str(directory)!r}, {first.name!r} and {second.name!r} would be stored under the same blob "
                f"name {first.key.rstrip('/')!r}; rename one of them or leave one out with an 'exclude' pattern."
            )
