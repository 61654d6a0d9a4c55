"""List the regular files under a root, deterministically and without leaving the root.

Symlinks are followed only when their target resolves inside the root; every directory is
entered at most once (by its real path), so links can never cause a loop or an escape.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from .errors import InvalidBackupRequest
from .roots import is_within

log = logging.getLogger(__name__)


def list_files(root: Path, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[str]:
    """Absolute paths of every regular file under ``root`` (resolved), sorted, filtered by globs.

    ``include``/``exclude`` are globs on the path relative to the root (``**`` crosses
    directories); a pattern without ``/`` matches the file or directory name at any depth.
    An excluded directory is not entered. An unreadable directory is an error, never skipped.
    """
    root = Path(os.path.realpath(root))
    includes = [_compile(p) for p in include]
    excludes = [_compile(p) for p in exclude]
    found: list[str] = []
    visited: set[tuple[int, int]] = set()

    def walk(directory: Path, relative: str) -> None:
        st = os.stat(directory)
        key = (st.st_dev, st.st_ino)
        if key in visited:
            log.info("Skipping %s: directory already listed through another path.", directory)
            return
        visited.add(key)
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            raise InvalidBackupRequest(f"Cannot list directory {str(directory)!r}: {exc.strerror}.") from exc
        for entry in entries:
            rel = f"{relative}{entry.name}"
            path = Path(entry.path)
            target = _inside_target(path, root) if entry.is_symlink() else path
            if target is None:
                continue
            try:
                mode = os.stat(target).st_mode
            except OSError:
                continue  # vanished since scandir, or a dangling link
            if stat.S_ISDIR(mode):
                if not _matches_any(excludes, rel, entry.name):
                    walk(path, rel + "/")
            elif stat.S_ISREG(mode) and _selected(rel, entry.name, includes, excludes):
                found.append(str(path))

    walk(root, "")
    return found


def _inside_target(link: Path, root: Path) -> Path | None:
    target = Path(os.path.realpath(link))
    if not is_within(target, root):
        log.warning("Skipping %s: symlink leads outside %s.", link, root)
        return None
    return target


def _selected(rel: str, name: str, includes: list[re.Pattern[str]], excludes: list[re.Pattern[str]]) -> bool:
    if _matches_any(excludes, rel, name):
        return False
    return not includes or _matches_any(includes, rel, name)


def _matches_any(patterns: list[re.Pattern[str]], rel: str, name: str) -> bool:
    return any(p.fullmatch(name if p.pattern.startswith(_NAME_ONLY) else rel) for p in patterns)


_NAME_ONLY = "(?#name)"


@lru_cache(maxsize=256)
def _compile(glob: str) -> re.Pattern[str]:
    """Translate a glob to a regex: ``**`` any depth, ``*``/``?`` within one segment, ``[..]`` sets."""
    glob = glob.strip().strip("/")
    prefix = "" if "/" in glob else _NAME_ONLY
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and "]" in glob[i + 1 :]:
            end = glob.index("]", i + 1)
            body = glob[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile(prefix + "".join(out))
