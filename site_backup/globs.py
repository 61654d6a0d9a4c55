"""Glob patterns for include/exclude, translated to regular expressions once.

``**`` matches any number of directories, ``*`` and ``?`` stay within one path segment, and
``[abc]``/``[!abc]`` are character sets. A pattern without ``/`` matches a name at any depth;
one with ``/`` matches the path relative to the root.
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

    def matches(self, relative_path: str, name: str) -> bool:
        return self.regex.fullmatch(name if self.name_only else relative_path) is not None


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> Glob:
    """Compile one pattern, or raise InvalidBackupRequest saying what is wrong with it."""
    glob = pattern.strip().strip("/")
    try:
        return Glob(pattern, re.compile(_translate(glob)), name_only="/" not in glob)
    except re.error as exc:
        raise InvalidBackupRequest(f"The glob pattern {pattern!r} is not valid: {exc}.") from exc


def matches_any(globs: list[Glob], relative_path: str, name: str) -> bool:
    return any(g.matches(relative_path, name) for g in globs)


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
    return f"[{'^' if negate else ''}{escaped}]"
