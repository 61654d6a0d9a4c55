"""The backup request: what to back up, as the HTTP body and the orchestration input carry it.

Parsing is pure (no file system, no environment) so the orchestrator can run it on replay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidBackupRequest
from .globs import MAX_PATTERNS, compile_glob

ROOT_KEY = "rootDirectory"
PATTERN_KEYS = ("include", "exclude")
VERIFY_KEY = "verify"
REQUEST_KEYS = (ROOT_KEY, *PATTERN_KEYS, VERIFY_KEY)
EXAMPLE = '"/home/site/wwwroot" or {"rootDirectory": "/home/site/wwwroot", "exclude": ["*.tmp"]}'


@dataclass(frozen=True)
class BackupRequest:
    """What to back up: a root directory, optional glob patterns relative to it, and whether to re-hash.

    ``verify`` re-reads every file and compares its MD5 with the stored copy instead of trusting an
    unchanged size, modification time and change time.
    """

    root_directory: str
    include: tuple[str, ...] = field(default_factory=tuple)
    exclude: tuple[str, ...] = field(default_factory=tuple)
    verify: bool = False

    def to_json(self) -> dict[str, Any]:
        """The JSON object form, as accepted by ``parse_backup_request``."""
        data: dict[str, Any] = {ROOT_KEY: self.root_directory, "include": list(self.include)}
        data["exclude"] = list(self.exclude)
        if self.verify:
            data[VERIFY_KEY] = True
        return data

    def with_root(self, root_directory: str) -> BackupRequest:
        """The same request for another (e.g. resolved) root directory."""
        return BackupRequest(root_directory, self.include, self.exclude, self.verify)


def parse_backup_request(value: object) -> BackupRequest:
    """Validate the shape of a request: a directory string, or an object with ``rootDirectory``.

    Raises InvalidBackupRequest with a message that says what to send instead.
    """
    if isinstance(value, str):
        return BackupRequest(_directory(value))
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(REQUEST_KEYS))
        if unknown:
            raise InvalidBackupRequest(
                f"Unknown option(s) {', '.join(map(repr, unknown))}; "
                f"allowed keys are {', '.join(map(repr, REQUEST_KEYS[:-1]))} and {REQUEST_KEYS[-1]!r}."
            )
        if ROOT_KEY not in value:
            raise InvalidBackupRequest(f"The JSON object needs a {ROOT_KEY!r} key, e.g. {EXAMPLE}.")
        root = value[ROOT_KEY]
        if not isinstance(root, str):
            raise InvalidBackupRequest(f"{ROOT_KEY!r} must be a string path, e.g. {EXAMPLE}.")
        verify = value.get(VERIFY_KEY, False)
        if not isinstance(verify, bool):
            raise InvalidBackupRequest(f"{VERIFY_KEY!r} must be true or false.")
        return BackupRequest(
            _directory(root),
            include=_patterns(value.get("include"), "include"),
            exclude=_patterns(value.get("exclude"), "exclude"),
            verify=verify,
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
