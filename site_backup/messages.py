"""The messages that cross a durable boundary: one small dataclass each, with ``to_json``/``from_json``.

Every payload stays small whatever the size of the tree: file lists live in storage as manifests
(``manifest.py``) and messages carry their names and counts. ``from_json`` checks what it reads, because an
orchestration can be started, with any input, through the Durable webhook API; a malformed message is an
InvalidBackupRequest that names the field.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar, cast

from .errors import InvalidBackupRequest
from .request import BackupRequest, parse_backup_request

_T = TypeVar("_T")

MiB = 1024 * 1024
TUNING_SETTING = "BACKUP_TUNING"
MAX_MESSAGE_TEXT = 400  # characters of one failure message kept in a payload
MAX_FAILURES_KEPT = 20
MANIFEST_NAME = re.compile(r"work/[^/\\?#\x00-\x1f]{1,256}/\d{8}\.json")  # see manifest.manifest_name


def _field(data: Mapping[str, Any], key: str, kind: type[_T], what: str) -> _T:
    value = data.get(key)
    if kind is int and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise InvalidBackupRequest(f"Malformed {what}: {key!r} must be a non-negative integer, got {value!r}.")
    if kind is str and not isinstance(value, str):
        raise InvalidBackupRequest(f"Malformed {what}: {key!r} must be a string, got {value!r}.")
    if kind is bool and not isinstance(value, bool):
        raise InvalidBackupRequest(f"Malformed {what}: {key!r} must be true or false, got {value!r}.")
    return cast(_T, value)


def _optional(data: Mapping[str, Any], key: str, kind: type[_T], what: str) -> _T | None:
    return None if data.get(key) is None else _field(data, key, kind, what)


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidBackupRequest(f"Malformed {what}: expected a JSON object, got {type(value).__name__}.")
    return value


def _texts(data: Mapping[str, Any], key: str, what: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidBackupRequest(f"Malformed {what}: {key!r} must be a list of strings.")
    return tuple(value)


def short(text: str, limit: int = MAX_MESSAGE_TEXT) -> str:
    """A message cut in the middle to at most ``limit`` characters, so payloads stay bounded."""
    if len(text) <= limit:
        return text
    half = (limit - 3) // 2
    return f"{text[:half]}...{text[-half:]}"


@dataclass(frozen=True)
class Tuning:
    """How work is cut and paced. Defaults suit a small instance; ``BACKUP_TUNING`` overrides them.

    - ``batch_files``/``batch_bytes``: a batch (one copy activity) holds up to this many files and bytes.
    - ``large_file_bytes``: a bigger file is staged by several activities, ``segment_bytes`` each.
    - ``window``: work units in flight at once, across all workers.
    - ``group_size``: units fanned out together with ``task_all``.
    - ``page_units``: a listing page stops after producing this many units.
    - ``units_per_execution``: after scheduling this many activities an execution continues as new, so no
      history grows past about 400 events (every episode replays it all).
    - ``outage_seconds``: how long in a row the backup waits for storage that is unavailable before it fails.
    - ``prune_margin_seconds``: a prune never deletes a snapshot taken less than this before it started (it
      must cover the longest activity, ``functionTimeout``, and clock skew; only tests lower it).
    """

    batch_files: int = 500
    batch_bytes: int = 32 * MiB
    large_file_bytes: int = 256 * MiB
    segment_bytes: int = 64 * MiB
    window: int = 16
    group_size: int = 2
    page_units: int = 32
    units_per_execution: int = 100
    outage_seconds: int = 900
    prune_margin_seconds: int = 900

    def to_json(self) -> dict[str, int]:
        return {_camel(f.name): getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, value: object) -> Tuning:
        data = _object(value, "tuning")
        known = {_camel(f.name): f.name for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InvalidBackupRequest(f"Malformed tuning: unknown key(s) {', '.join(unknown)}.")
        values = {}
        for key, name in known.items():
            if key in data:
                number = _field(data, key, int, "tuning")
                if number < 1:
                    raise InvalidBackupRequest(f"Malformed tuning: {key!r} must be at least 1.")
                values[name] = number
        tuning = replace(cls(), **values)
        if tuning.segment_bytes > tuning.large_file_bytes:
            raise InvalidBackupRequest("Malformed tuning: 'segmentBytes' may not exceed 'largeFileBytes'.")
        return tuning

    @classmethod
    def from_settings(cls, env: Mapping[str, str] | None = None) -> Tuning:
        """The defaults, with the overrides of the ``BACKUP_TUNING`` app setting (a JSON object) applied."""
        text = (os.environ if env is None else env).get(TUNING_SETTING, "").strip()
        if not text:
            return cls()
        try:
            return cls.from_json(json.loads(text))
        except ValueError as exc:
            raise InvalidBackupRequest(f"The {TUNING_SETTING} app setting is not valid: {exc}") from exc


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class ListingCursor:
    """Where the next listing page starts.

    ``after`` is the relative blob name of the last entry listed (listing order is blob-name order);
    ``marker`` is the List Blobs marker of the storage page holding the next stored blob; ``next_unit``
    numbers the next work unit, so every manifest of a run has its own name.
    """

    after: str | None = None
    marker: str | None = None
    next_unit: int = 0
    stored_done: bool = False  # every stored blob has been passed already

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"after": self.after, "marker": self.marker, "nextUnit": self.next_unit}
        if self.stored_done:
            data["storedDone"] = True
        return data

    @classmethod
    def from_json(cls, value: object) -> ListingCursor:
        data = _object(value, "listing cursor")
        after = _optional(data, "after", str, "listing cursor")
        if after is not None and (after.startswith("/") or "\x00" in after or len(after) > 4096):
            raise InvalidBackupRequest(f"Malformed listing cursor: {after[:80]!r} is not a name below the root.")
        return cls(
            after,
            _optional(data, "marker", str, "listing cursor"),
            _field(data, "nextUnit", int, "listing cursor"),
            _field(data, "storedDone", bool, "listing cursor") if "storedDone" in data else False,
        )


@dataclass(frozen=True)
class PageRequest:
    """E2_GetFileList's input for one page of a run's listing."""

    request: BackupRequest
    run: str
    cursor: ListingCursor
    tuning: Tuning | None = None  # None on the first page: the activity takes it from the app settings

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request.to_json(),
            "run": self.run,
            "cursor": self.cursor.to_json(),
            "tuning": self.tuning.to_json() if self.tuning else None,
        }

    @classmethod
    def from_json(cls, value: object) -> PageRequest:
        data = _object(value, "listing page request")
        tuning = data.get("tuning")
        return cls(
            parse_backup_request(data.get("request")),
            _run_id(data),
            ListingCursor.from_json(data.get("cursor")),
            Tuning.from_json(tuning) if tuning is not None else None,
        )


def _run_id(data: Mapping[str, Any]) -> str:
    run = _field(data, "run", str, "message")
    if not run or len(run) > 256 or any(c in run for c in "/\\?#") or not run.isprintable():
        raise InvalidBackupRequest(f"Malformed message: {run!r} is not a run id.")
    return run


@dataclass(frozen=True)
class WorkUnit:
    """One manifest of files to copy: a batch, or a single large file staged in ``segments`` parts."""

    number: int
    manifest: str
    files: int
    bytes: int
    segments: int = 0

    @property
    def is_large(self) -> bool:
        return self.segments > 0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"number": self.number, "manifest": self.manifest, "files": self.files}
        data["bytes"] = self.bytes
        if self.segments:
            data["segments"] = self.segments
        return data

    @classmethod
    def from_json(cls, value: object) -> WorkUnit:
        data = _object(value, "work unit")
        manifest = _field(data, "manifest", str, "work unit")
        if not MANIFEST_NAME.fullmatch(manifest):
            raise InvalidBackupRequest(f"Malformed work unit: {manifest[:80]!r} is not the name of a manifest.")
        return cls(
            _field(data, "number", int, "work unit"),
            manifest,
            _field(data, "files", int, "work unit"),
            _field(data, "bytes", int, "work unit"),
            _field(data, "segments", int, "work unit") if "segments" in data else 0,
        )


@dataclass(frozen=True)
class Counts:
    """A number of files and their bytes."""

    files: int = 0
    bytes: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.files + other.files, self.bytes + other.bytes)

    def to_json(self) -> dict[str, int]:
        return {"files": self.files, "bytes": self.bytes}

    @classmethod
    def from_json(cls, value: object, what: str = "counts") -> Counts:
        data = _object(value, what)
        return cls(_field(data, "files", int, what), _field(data, "bytes", int, what))


@dataclass(frozen=True)
class PageResult:
    """What one listing page found: work units to copy, what is already backed up, and where to go on."""

    units: tuple[WorkUnit, ...]
    cursor: ListingCursor | None  # None: the listing is complete
    listed: Counts
    unchanged: Counts
    tuning: Tuning
    failed: int = 0
    failures: tuple[str, ...] = ()
    root: str | None = None  # the root as listed: with ``..`` and symlinks resolved

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "units": [u.to_json() for u in self.units],
            "cursor": self.cursor.to_json() if self.cursor else None,
            "listed": self.listed.to_json(),
            "unchanged": self.unchanged.to_json(),
            "tuning": self.tuning.to_json(),
            "failed": self.failed,
            "failures": list(self.failures),
        }

    @classmethod
    def from_json(cls, value: object) -> PageResult:
        data = _object(value, "listing page")
        units = data.get("units")
        if not isinstance(units, list):
            raise InvalidBackupRequest("Malformed listing page: 'units' must be a list.")
        cursor = data.get("cursor")
        return cls(
            tuple(WorkUnit.from_json(u) for u in units),
            ListingCursor.from_json(cursor) if cursor is not None else None,
            Counts.from_json(data.get("listed"), "listing page"),
            Counts.from_json(data.get("unchanged"), "listing page"),
            Tuning.from_json(data.get("tuning")),
            _field(data, "failed", int, "listing page"),
            _texts(data, "failures", "listing page"),
            _optional(data, "root", str, "listing page"),
        )


@dataclass(frozen=True)
class CopyResult:
    """What copying some files achieved: what the backup now holds, and what could not be backed up."""

    files: int = 0  # every file handled, whatever the outcome
    bytes: int = 0  # bytes the backup holds for them (uploaded or already stored)
    uploaded: int = 0
    unchanged: int = 0
    vanished: int = 0  # deleted or replaced since the listing: nothing to back up
    failed: int = 0
    failures: tuple[str, ...] = ()

    def __add__(self, other: CopyResult) -> CopyResult:
        return CopyResult(
            self.files + other.files,
            self.bytes + other.bytes,
            self.uploaded + other.uploaded,
            self.unchanged + other.unchanged,
            self.vanished + other.vanished,
            self.failed + other.failed,
            (*self.failures, *other.failures)[:MAX_FAILURES_KEPT],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "uploaded": self.uploaded,
            "unchanged": self.unchanged,
            "vanished": self.vanished,
            "failed": self.failed,
            "failures": list(self.failures),
        }

    @classmethod
    def from_json(cls, value: object) -> CopyResult:
        data = _object(value, "copy result")
        counts = {k: _field(data, k, int, "copy result") for k in ("files", "bytes", "uploaded", "unchanged")}
        return cls(
            **counts,
            vanished=_field(data, "vanished", int, "copy result"),
            failed=_field(data, "failed", int, "copy result"),
            failures=_texts(data, "failures", "copy result"),
        )


@dataclass(frozen=True)
class SegmentTask:
    """Stage one segment of a large file (E2_StageFileSegment), or commit it when ``index`` is None."""

    unit: WorkUnit
    index: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"unit": self.unit.to_json(), "index": self.index}

    @classmethod
    def from_json(cls, value: object) -> SegmentTask:
        data = _object(value, "segment task")
        unit = WorkUnit.from_json(data.get("unit"))
        index = _optional(data, "index", int, "segment task")
        if not unit.is_large or (index is not None and index >= unit.segments):
            raise InvalidBackupRequest(f"Malformed segment task: no segment {index!r} in {unit.segments}.")
        return cls(unit, index)


@dataclass(frozen=True)
class RunSummary:
    """A sealed run: who, what, when, and how it ended."""

    run: str
    root: str
    started: str  # ISO 8601, UTC
    finished: str
    outcome: str  # "completed" or "failed"
    files: int
    bytes: int
    uploaded: int = 0
    unchanged: int = 0
    vanished: int = 0
    failed: int = 0
    reason: str | None = None
    generations: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.run,
            "rootDirectory": self.root,
            "started": self.started,
            "finished": self.finished,
            "outcome": self.outcome,
            "files": self.files,
            "bytes": self.bytes,
            "uploaded": self.uploaded,
            "unchanged": self.unchanged,
            "vanished": self.vanished,
            "failed": self.failed,
            "reason": self.reason,
            "generations": self.generations,
        }

    @classmethod
    def from_json(cls, value: object) -> RunSummary:
        data = _object(value, "run summary")
        text = {k: _field(data, k, str, "run summary") for k in ("id", "rootDirectory", "started", "finished")}
        outcome = _field(data, "outcome", str, "run summary")
        numbers = {k: _field(data, k, int, "run summary") for k in ("files", "bytes", "uploaded", "unchanged")}
        reason = data.get("reason")
        return cls(
            text["id"],
            text["rootDirectory"],
            text["started"],
            text["finished"],
            outcome,
            numbers["files"],
            numbers["bytes"],
            numbers["uploaded"],
            numbers["unchanged"],
            _field(data, "vanished", int, "run summary"),
            _field(data, "failed", int, "run summary"),
            reason if isinstance(reason, str) else None,
            _field(data, "generations", int, "run summary"),
        )


@dataclass(frozen=True)
class FinishTask:
    """E2_FinishBackup's input: the run to seal with its summary, whose working files can then go."""

    summary: RunSummary

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary.to_json()}

    @classmethod
    def from_json(cls, value: object) -> FinishTask:
        summary = RunSummary.from_json(_object(value, "finish task").get("summary"))
        _run_id({"run": summary.run})
        return cls(summary)


@dataclass(frozen=True)
class Totals:
    """What E2_CountFiles found: the files and bytes the request selects (a lower bound if not complete).

    It also brings the tuning from the app settings: the count needs no storage, so the plan knows its
    budgets (an outage's, say) even when storage is unavailable from the start.
    """

    counts: Counts = field(default_factory=Counts)
    complete: bool = True
    tuning: Tuning | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {**self.counts.to_json(), "complete": self.complete}
        if self.tuning is not None:
            data["tuning"] = self.tuning.to_json()
        return data

    @classmethod
    def from_json(cls, value: object) -> Totals:
        data = _object(value, "totals")
        tuning = data.get("tuning")
        return cls(
            Counts.from_json(data, "totals"),
            _field(data, "complete", bool, "totals"),
            Tuning.from_json(tuning) if tuning is not None else None,
        )
