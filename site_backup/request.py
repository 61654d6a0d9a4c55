"""The backup request: one shape for the HTTP body, the orchestrator input and the listing input.

Parsing is pure (no file system, no environment) so the orchestrator can run it on replay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidBackupRequest

ROOT_KEY = "rootDirectory"
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

    def listing_input(self) -> str | dict[str, Any]:
        """Input for E2_GetFileList: the bare directory when there are no patterns, as in the seed."""
        if not self.include and not self.exclude:
            return self.root_directory
        return self.to_json()

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
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidBackupRequest(
            f"The request body is not valid JSON ({exc}). A path must be quoted as a JSON string, e.g. {EXAMPLE}."
        ) from exc
