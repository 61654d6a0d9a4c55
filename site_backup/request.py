"""The backup request: one shape for the HTTP body, the orchestrator input and the listing input.

Parsing is pure (no file system, no environment) so the orchestrator can run it on replay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidBackupRequest
from .globs import MAX_PATTERNS, compile_glob
from .plan import Tally

ROOT_KEY = "rootDirectory"
CONTINUATION_KEY = "continuation"
AFTER_KEY, LIMIT_KEY = "after", "limit"
PATTERN_KEYS = ("include", "exclude")
EXAMPLE = '"/home/site/wwwroot" or {"rootDirectory": "/home/site/wwwroot", "exclude": ["*.tmp"]}'


@dataclass(frozen=True)
class BackupRequest:
    """What to back up: a root directory and optional glob patterns relative to it."""

    root_directory: str
    include: tuple[str, ...] = field(default_factory=tuple)
    exclude: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The JSON object form, as accepted by ``parse_backup_request``."""
        return {ROOT_KEY: self.root_directory, "include": list(self.include), "exclude": list(self.exclude)}

    def listing_input(self, after: str | None = None, limit: int | None = None) -> str | dict[str, Any]:
        """Input for E2_GetFileList: the bare directory when that says it all, as in the seed.

        ``after``/``limit`` ask for the next page of a big tree.
        """
        if not self.include and not self.exclude and after is None:
            return self.root_directory
        listing = self.to_json()
        if after is not None:
            listing.update({AFTER_KEY: after, LIMIT_KEY: limit})
        return listing

    def continued(self, after: str, tally: Tally) -> dict[str, Any]:
        """The input of the next generation: this request plus where to carry on."""
        return {**self.to_json(), CONTINUATION_KEY: {AFTER_KEY: after, **tally.to_json()}}

    def with_root(self, root_directory: str) -> BackupRequest:
        """The same request for another (e.g. resolved) root directory."""
        return BackupRequest(root_directory, self.include, self.exclude)


def parse_backup_request(value: object) -> BackupRequest:
    """Validate the shape of a request: a directory string, or an object with ``rootDirectory``.

    Raises InvalidBackupRequest with a message that says what to send instead.
    """
    if isinstance(value, str):
        return BackupRequest(_directory(value))
    if isinstance(value, dict):
        unknown = sorted(set(value) - {ROOT_KEY, *PATTERN_KEYS})
        if unknown:
            raise InvalidBackupRequest(
                f"Unknown option(s) {', '.join(map(repr, unknown))}; "
                f"allowed keys are {ROOT_KEY!r}, 'include' and 'exclude'."
            )
        if ROOT_KEY not in value:
            raise InvalidBackupRequest(f"The JSON object needs a {ROOT_KEY!r} key, e.g. {EXAMPLE}.")
        root = value[ROOT_KEY]
        if not isinstance(root, str):
            raise InvalidBackupRequest(f"{ROOT_KEY!r} must be a string path, e.g. {EXAMPLE}.")
        return BackupRequest(
            _directory(root),
            include=_patterns(value.get("include"), "include"),
            exclude=_patterns(value.get("exclude"), "exclude"),
        )
    if value is None:
        raise InvalidBackupRequest(f"A directory to back up is required, e.g. {EXAMPLE}.")
    raise InvalidBackupRequest(
        f"Expected a JSON string or object, got a JSON {_json_type(value)}; send e.g. {EXAMPLE}."
    )


def parse_orchestration_input(value: object) -> tuple[BackupRequest, tuple[str, Tally] | None]:
    """The request plus, for a continued generation, the cursor and the tally so far."""
    if not (isinstance(value, dict) and CONTINUATION_KEY in value):
        return parse_backup_request(value), None
    rest = {k: v for k, v in value.items() if k != CONTINUATION_KEY}
    carried = value[CONTINUATION_KEY]
    try:
        tally = Tally.from_json(carried)
        after = carried[AFTER_KEY]
    except (TypeError, KeyError, ValueError) as exc:
        raise InvalidBackupRequest(f"Malformed {CONTINUATION_KEY!r}: {carried!r}.") from exc
    if not isinstance(after, str):
        raise InvalidBackupRequest(f"Malformed {CONTINUATION_KEY!r}: {carried!r}.")
    return parse_backup_request(rest), (after, tally)


def parse_listing_input(value: object) -> tuple[BackupRequest, str | None, int | None]:
    """E2_GetFileList's input: a request, optionally with a page cursor and size."""
    if not (isinstance(value, dict) and AFTER_KEY in value):
        return parse_backup_request(value), None, None
    rest = {k: v for k, v in value.items() if k not in (AFTER_KEY, LIMIT_KEY)}
    after, limit = value[AFTER_KEY], value.get(LIMIT_KEY)
    if not isinstance(after, str) or not (limit is None or (isinstance(limit, int) and limit > 0)):
        raise InvalidBackupRequest(f"{AFTER_KEY!r} must be a path and {LIMIT_KEY!r} a positive number.")
    return parse_backup_request(rest), after, limit


def _directory(path: str) -> str:
    if not path.strip():
        raise InvalidBackupRequest(f"The directory is empty; send an absolute path, e.g. {EXAMPLE}.")
    if "\x00" in path:
        raise InvalidBackupRequest("The directory path contains a NUL character.")
    return path.strip()


def _patterns(value: object, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise InvalidBackupRequest(f'{key!r} must be a list of non-empty glob patterns, e.g. ["*.log"].')
    if len(value) > MAX_PATTERNS:
        raise InvalidBackupRequest(f"{key!r} has {len(value)} patterns; a request may have at most {MAX_PATTERNS}.")
    for pattern in value:
        compile_glob(pattern)  # a bad pattern is a 400 now, not a failed backup later
        if key == "include" and pattern.strip().endswith("/"):
            raise InvalidBackupRequest(
                f"Include patterns match files; to include everything under a directory use "
                f"{pattern.strip().rstrip('/') + '/**'!r} instead of {pattern!r}."
            )
    return tuple(p.strip() for p in value)


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def parse_json_body(body: bytes) -> object:
    """Decode an HTTP body as JSON, or raise InvalidBackupRequest saying what was wrong."""
    if not body or not body.strip():
        raise InvalidBackupRequest(f"The request body is empty; send the directory as JSON, e.g. {EXAMPLE}.")
    try:
        return json.loads(body)
    except RecursionError as exc:
        raise InvalidBackupRequest("The request body nests JSON too deeply; send a string or a flat object.") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidBackupRequest(
            f"The request body is not valid JSON ({exc}). A path must be quoted as a JSON string, e.g. {EXAMPLE}."
        ) from exc
