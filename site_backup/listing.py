"""List the regular files under a root, deterministically and without leaving the root.

A symlink to a file is backed up (under the link's name) only when its target is inside the
root. A symlink to a directory is never followed: inside the root its target is backed up under
its own path anyway, and outside it is off limits. So links can cause neither an escape, nor a
loop, nor a second copy of a subtree; and every page of a big tree agrees with the whole listing.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from .errors import InvalidBackupRequest
from .globs import Glob, compile_glob, matches_any
from .naming import blob_segment
from .roots import is_within

log = logging.getLogger(__name__)


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
    root = Path(os.path.realpath(root))
    includes = [compile_glob(p) for p in include]
    excludes = [compile_glob(p) for p in exclude]
    cursor = _relative_parts(root, after) if after else None
    found: list[str] = []
    visited: set[tuple[int, int]] = set()
    # Depth-first with an explicit stack (no recursion limit on deep trees); children are pushed
    # in reverse name order so they come off the stack sorted.
    stack: list[tuple[Path, tuple[str, ...], os.stat_result]] = [(root, (), os.stat(root))]
    while stack and (limit is None or len(found) < limit):
        path, parts, st = stack.pop()
        if stat.S_ISREG(st.st_mode):
            if cursor is None or parts > cursor:
                found.append(str(path))
            continue
        if cursor is not None and parts < cursor[: len(parts)]:
            continue  # the whole subtree comes before the cursor
        if (st.st_dev, st.st_ino) in visited:
            log.info("Skipping %s: directory already listed through another path.", path)
            continue
        visited.add((st.st_dev, st.st_ino))
        stack.extend(reversed(_children(path, parts, root, includes, excludes)))
    return found


def _relative_parts(root: Path, path: str) -> tuple[str, ...]:
    try:
        return Path(path).relative_to(root).parts
    except ValueError as exc:
        raise InvalidBackupRequest(f"The listing cursor {path!r} is not under {str(root)!r}.") from exc


def _children(
    directory: Path,
    parts: tuple[str, ...],
    root: Path,
    includes: list[Glob],
    excludes: list[Glob],
) -> list[tuple[Path, tuple[str, ...], os.stat_result]]:
    """The selected files and the enterable directories of one directory, sorted by name."""
    prefix = "".join(f"{p}/" for p in parts)
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError as exc:
        raise InvalidBackupRequest(f"Cannot list directory {str(directory)!r}: {exc.strerror}.") from exc
    children = []
    for entry in entries:
        rel = prefix + entry.name
        is_link = entry.is_symlink()
        if is_link and _inside_target(Path(entry.path), root) is None:
            continue
        try:
            st = entry.stat()  # follows a symlink whose target is inside the root
        except OSError:
            continue  # vanished since scandir, or a dangling link
        if stat.S_ISDIR(st.st_mode) and is_link:
            log.info("Not following %s: a symlinked directory's target is backed up under its own path.", entry.path)
        elif stat.S_ISDIR(st.st_mode):
            if not matches_any(excludes, rel, entry.name, is_directory=True):
                children.append((Path(entry.path), (*parts, entry.name), st))
        elif stat.S_ISREG(st.st_mode) and _selected(rel, entry.name, includes, excludes):
            children.append((Path(entry.path), (*parts, entry.name), st))
    _refuse_shared_blob_names(directory, [child_parts[-1] for _, child_parts, _ in children])
    return children


def _refuse_shared_blob_names(directory: Path, names: list[str]) -> None:
    """Two names that would be stored under one blob name (``a\\b`` and ``a%5Cb``) lose data: refuse."""
    stored: dict[str, str] = {}
    for name in names:
        other = stored.setdefault(blob_segment(name), name)
        if other != name:
            raise InvalidBackupRequest(
                f"In {str(directory)!r}, {other!r} and {name!r} would be stored under the same blob name "
                f"{blob_segment(name)!r}; rename one of them or leave one out with an 'exclude' pattern."
            )


def _inside_target(link: Path, root: Path) -> Path | None:
    target = Path(os.path.realpath(link))
    if not is_within(target, root):
        log.warning("Skipping %s: symlink leads outside %s.", link, root)
        return None
    return target


def _selected(rel: str, name: str, includes: list[Glob], excludes: list[Glob]) -> bool:
    if matches_any(excludes, rel, name):
        return False
    return not includes or matches_any(includes, rel, name)
