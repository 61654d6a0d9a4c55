"""Glob patterns for include/exclude, matched in time linear in the pattern times the path.

``**`` as a whole path segment matches any number of directories, ``*`` and ``?`` stay within one
segment, and ``[abc]``/``[!abc]`` are character sets. A pattern without ``/`` matches a name at any
depth; one with a ``/`` inside or at the start matches the path relative to the root (``/build`` is
only the top-level ``build``). A trailing ``/`` matches directories only (``cache/``). As in
``.gitignore``, ``**`` inside a segment (``a**b``) is an ordinary ``*``.

Why not one regular expression per pattern: Python's ``re`` backtracks, and ``*a*a*a*a*ab`` against a
long run of ``a`` takes exponential time while holding the GIL, which freezes the whole host. Here a
pattern is split into segments; each segment becomes a regular expression in which every ``*`` except
the last is an atomic group (``(?>.*?piece)``, the construction ``fnmatch`` uses), so it cannot
backtrack; and ``**`` segments are matched against path segments with the classic two-pointer wildcard
algorithm, which only ever returns to the most recent ``**``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from .errors import InvalidBackupRequest

MAX_PATTERN_LENGTH = 512
MAX_PATTERNS = 64
GLOBSTAR = "**"
ANY_SEGMENT = re.compile("(?s:.*)")


@dataclass(frozen=True)
class Glob:
    """A compiled pattern and what it is matched against."""

    pattern: str
    segments: tuple[re.Pattern[str] | None, ...]  # None stands for a ``**`` segment
    name_only: bool
    directories_only: bool

    def matches(self, relative_path: str, name: str, is_directory: bool = False) -> bool:
        if self.directories_only and not is_directory:
            return False
        if self.name_only:
            segment = self.segments[0]
            return segment is None or segment.fullmatch(name) is not None
        return _match_segments(self.segments, relative_path.split("/"))


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> Glob:
    """Compile one pattern, or raise InvalidBackupRequest saying what is wrong with it."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidBackupRequest(
            f"The glob pattern starting {pattern[:40]!r} is {len(pattern)} characters long; "
            f"patterns may have at most {MAX_PATTERN_LENGTH}."
        )
    text = pattern.strip()
    directories_only = text.endswith("/")
    body = text.strip("/")
    name_only = "/" not in text.rstrip("/")
    try:
        segments = tuple(_segment(part) for part in body.split("/"))
    except re.error as exc:
        raise InvalidBackupRequest(f"The glob pattern {pattern!r} is not valid: {exc}.") from exc
    if not name_only and segments[-1] is None:
        # A trailing ** is one or more segments: ``logs/**`` is what is inside logs, not logs itself.
        segments = (*segments[:-1], ANY_SEGMENT, None)
    return Glob(pattern, segments, name_only, directories_only)


def matches_any(globs: Sequence[Glob], relative_path: str, name: str, is_directory: bool = False) -> bool:
    return any(g.matches(relative_path, name, is_directory) for g in globs)


def _match_segments(pattern: Sequence[re.Pattern[str] | None], path: Sequence[str]) -> bool:
    """Wildcard matching over segments, ``None`` matching any number of them (zero included).

    Two pointers and one remembered ``**``: on a mismatch the last ``**`` takes one more segment and
    matching resumes after it. This is correct for a wildcard that matches any sequence, and it never
    revisits an earlier ``**``, so it takes at most len(pattern) * len(path) segment comparisons.
    """
    p = s = 0
    star_p, star_s = -1, 0
    while s < len(path):
        segment = pattern[p] if p < len(pattern) else ANY_SEGMENT
        if p < len(pattern) and segment is None:
            star_p, star_s = p, s
            p += 1
        elif p < len(pattern) and segment is not None and segment.fullmatch(path[s]):
            p += 1
            s += 1
        elif star_p >= 0:
            star_s += 1
            p, s = star_p + 1, star_s
        else:
            return False
    while p < len(pattern) and pattern[p] is None:
        p += 1
    return p == len(pattern)


def _segment(glob: str) -> re.Pattern[str] | None:
    """One segment as a regular expression that cannot backtrack, or None for ``**``."""
    if glob == GLOBSTAR:
        return None
    pieces: list[list[str]] = [[]]  # the fixed-length pieces between stars
    i = 0
    while i < len(glob):
        char = glob[i]
        if char == "*":
            while i < len(glob) and glob[i] == "*":
                i += 1
            pieces.append([])
            continue
        if char == "?":
            pieces[-1].append(".")
        elif char == "[" and (end := _set_end(glob, i)) is not None:
            pieces[-1].append(_character_set(glob[i + 1 : end]))
            i = end
        else:
            pieces[-1].append(re.escape(char))
        i += 1
    fixed = ["".join(piece) for piece in pieces]
    if len(fixed) == 1:
        return re.compile(f"(?s:{fixed[0]})")
    middle = "".join(f"(?>.*?{piece})" for piece in fixed[1:-1])
    return re.compile(f"(?s:{fixed[0]}{middle}.*{fixed[-1]})")


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
    compiled = f"[^{escaped}]" if negate else f"[{escaped}]"
    re.compile(compiled)  # a reversed range ([z-a]) is an error here, not a set that never matches
    return compiled
