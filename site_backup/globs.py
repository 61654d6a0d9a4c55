"""Glob patterns for include/exclude, translated to regular expressions once.

``**`` matches any number of directories, ``*`` and ``?`` stay within one path segment, and
``[abc]``/``[!abc]`` are character sets. A pattern without ``/`` matches a name at any depth;
one with a ``/`` inside or at the start matches the path relative to the root (``/build`` is
only the top-level ``build``). A trailing ``/`` matches directories only (``cache/``).
"""

import re
from dataclasses import dataclass
from functools import lru_cache

from .errors import InvalidBackupRequest


@dataclass(frozen=True)
class Glob:
    """A compiled pattern and what it is matched against."""

    pattern: str
    regex: re.Pattern[str]
    name_only: bool
    directories_only: bool

    def matches(self, relative_path: str, name: str, is_directory: bool = False) -> bool:
        if self.directories_only and not is_directory:
            return False
        return self.regex.fullmatch(name if self.name_only else relative_path) is not None


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> Glob:
    """Compile one pattern, or raise InvalidBackupRequest saying what is wrong with it."""
    text = pattern.strip()
    directories_only = text.endswith("/")
    glob = text.strip("/")
    name_only = "/" not in text.rstrip("/")
    try:
        return Glob(pattern, re.compile(_translate(glob)), name_only, directories_only)
    except re.error as exc:
        raise InvalidBackupRequest(f"The glob pattern {pattern!r} is not valid: {exc}.") from exc


def matches_any(globs: list[Glob], relative_path: str, name: str, is_directory: bool = False) -> bool:
    return any(g.matches(relative_path, name, is_directory) for g in globs)


def _translate(glob: str) -> str:
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and (end := _set_end(glob, i)) is not None:
            out.append(_character_set(glob[i + 1 : end]))
            i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def _set_end(glob: str, start: int) -> int | None:
    """Index of the ``]`` closing the set at ``start``; a ``]`` right after ``[`` or ``[!`` is literal."""
    i = start + 1
    if i < len(glob) and glob[i] == "!":
        i += 1
    if i < len(glob) and glob[i] == "]":
        i += 1
    end = glob.find("]", i)
    return end if end != -1 else None


def _character_set(body: str) -> str:
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    escaped = body.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    if not escaped:
        raise re.error("empty character set")
    return f"[^{escaped}/]" if negate else f"[{escaped}]"  # a negated set never matches the separator
