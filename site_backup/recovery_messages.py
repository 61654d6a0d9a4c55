"""The messages of restore and verify, typed like the backup's (``messages.py``).

A restore or a verify names a backup of a root: ``latest``, a run id, or a time. Both are fanned out one
catalog part at a time, and every part's result is folded into one ``RecoveryTally``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import InvalidBackupRequest
from .messages import MAX_FAILURES_KEPT, RunSummary, _field, _object, short
from .request import _patterns

RESTORE_EXAMPLE = '{"backup": "latest", "rootDirectory": "/home/site/wwwroot", "targetDirectory": "/home/restored"}'
VERIFY_EXAMPLE = '{"backup": "latest", "rootDirectory": "/home/site/wwwroot", "deep": false}'


def _path(data: dict[str, Any], key: str, example: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidBackupRequest(f"{key!r} must be an absolute directory, e.g. {example}.")
    value = value.strip()
    if "\x00" in value:
        raise InvalidBackupRequest(f"{key!r} contains a NUL character.")
    if not os.path.isabs(value):
        raise InvalidBackupRequest(f"{key!r} must be an absolute path, got {value!r}.")
    return value


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise InvalidBackupRequest(f"{key!r} must be true or false.")
    return value


def _known_keys(data: dict[str, Any], allowed: tuple[str, ...], example: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InvalidBackupRequest(
            f"Unknown option(s) {', '.join(map(repr, unknown))}; allowed keys are "
            f"{', '.join(map(repr, allowed))}. For example: {example}."
        )


def _backup(data: dict[str, Any]) -> str:
    spec = data.get("backup", "latest")
    if not isinstance(spec, str) or not spec.strip() or len(spec) > 256 or not spec.isprintable():
        raise InvalidBackupRequest(
            '\'backup\' must be "latest", a backup\'s id, or an ISO 8601 time such as "2026-12-01T10:00:00Z".'
        )
    return spec.strip()


@dataclass(frozen=True)
class RestoreRequest:
    """Restore the files of one backup of ``root`` into ``target`` (those the globs select)."""

    backup: str
    root: str
    target: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    overwrite: bool = False

    KEYS = ("backup", "rootDirectory", "targetDirectory", "include", "exclude", "overwrite")

    def to_json(self) -> dict[str, Any]:
        return {
            "backup": self.backup,
            "rootDirectory": self.root,
            "targetDirectory": self.target,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "overwrite": self.overwrite,
        }

    @classmethod
    def from_json(cls, value: object) -> RestoreRequest:
        if not isinstance(value, dict):
            raise InvalidBackupRequest(f"Send a JSON object, e.g. {RESTORE_EXAMPLE}.")
        _known_keys(value, cls.KEYS, RESTORE_EXAMPLE)
        return cls(
            _backup(value),
            _path(value, "rootDirectory", RESTORE_EXAMPLE),
            _path(value, "targetDirectory", RESTORE_EXAMPLE),
            _patterns(value.get("include"), "include"),
            _patterns(value.get("exclude"), "exclude"),
            _flag(value, "overwrite"),
        )


@dataclass(frozen=True)
class VerifyRequest:
    """Check one backup of ``root`` in storage (``deep``: by its bytes); ``compare`` it with the site too."""

    backup: str
    root: str
    deep: bool = False
    compare: bool = False

    KEYS = ("backup", "rootDirectory", "deep", "compareWithSource")

    def to_json(self) -> dict[str, Any]:
        return {"backup": self.backup, "rootDirectory": self.root, "deep": self.deep, "compareWithSource": self.compare}

    @classmethod
    def from_json(cls, value: object) -> VerifyRequest:
        if not isinstance(value, dict):
            raise InvalidBackupRequest(f"Send a JSON object, e.g. {VERIFY_EXAMPLE}.")
        _known_keys(value, cls.KEYS, VERIFY_EXAMPLE)
        return cls(
            _backup(value),
            _path(value, "rootDirectory", VERIFY_EXAMPLE),
            _flag(value, "deep"),
            _flag(value, "compareWithSource"),
        )


@dataclass(frozen=True)
class PartsTask:
    """E2_ListBackupParts: one page of a run's catalog parts after ``marker``."""

    summary: RunSummary
    marker: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary.to_json(), "marker": self.marker}

    @classmethod
    def from_json(cls, value: object) -> PartsTask:
        data = _object(value, "parts task")
        marker = data.get("marker")
        return cls(RunSummary.from_json(data.get("summary")), marker if isinstance(marker, str) else None)


@dataclass(frozen=True)
class PartTask:
    """E2_RestoreFiles or E2_VerifyFiles: one catalog part of a run, for a restore or a verify request."""

    request: dict[str, Any]  # RestoreRequest or VerifyRequest JSON
    summary: RunSummary
    part: str

    def to_json(self) -> dict[str, Any]:
        return {"request": self.request, "summary": self.summary.to_json(), "part": self.part}

    @classmethod
    def from_json(cls, value: object) -> PartTask:
        data = _object(value, "part task")
        request = data.get("request")
        if not isinstance(request, dict):
            raise InvalidBackupRequest("Malformed part task: 'request' must be an object.")
        return cls(request, RunSummary.from_json(data.get("summary")), _field(data, "part", str, "part task"))


@dataclass(frozen=True)
class RecoveryTally:
    """What a restore or a verify found, file by file, added up.

    Restore: ``restored`` (written), ``identical`` (already there), ``kept`` (there but different, left alone
    without ``overwrite``), ``failed``. Verify: ``ok``, ``missing``, ``damaged`` (size or MD5 not as recorded),
    and against the site: ``changed``, ``deleted``. ``bytes``: what the target (or storage) holds of it.
    """

    files: int = 0
    bytes: int = 0
    restored: int = 0
    identical: int = 0
    kept: int = 0
    failed: int = 0
    ok: int = 0
    missing: int = 0
    damaged: int = 0
    changed: int = 0
    deleted: int = 0
    problems: tuple[str, ...] = ()

    def __add__(self, other: RecoveryTally) -> RecoveryTally:
        counts = {name: value + getattr(other, name) for name, value in self._counts().items()}
        return RecoveryTally(**counts, problems=(*self.problems, *other.problems)[:MAX_FAILURES_KEPT])

    def with_problem(self, problem: str) -> RecoveryTally:
        return replace(self, problems=(short(problem),))

    def _counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "problems"}

    def to_json(self) -> dict[str, Any]:
        return {**self._counts(), "problems": list(self.problems)}

    @classmethod
    def from_json(cls, value: object) -> RecoveryTally:
        data = _object(value, "recovery tally")
        counts = {f.name: _field(data, f.name, int, "recovery tally") for f in fields(cls) if f.name != "problems"}
        problems = data.get("problems", [])
        if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems):
            raise InvalidBackupRequest("Malformed recovery tally: 'problems' must be a list of strings.")
        return cls(**counts, problems=tuple(problems))
