"""The messages of a prune, typed like the backup's (``messages.py``).

Everything a prune works out that grows with the history or the tree (which runs go, which blobs have
snapshots, which versions kept runs need) lives in documents under the prune's own work area in the catalog
container; the messages carry the area's name and counts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .errors import InvalidBackupRequest
from .messages import MAX_FAILURES_KEPT, _camel, _field, _object, _optional
from .recovery_messages import _flag, _known_keys, _path

PRUNE_EXAMPLE = '{"rootDirectory": "/home/site/wwwroot", "dryRun": true}'


@dataclass(frozen=True)
class PruneRequest:
    """Apply ``retention`` to the sealed runs of ``root``; ``dry_run``: only say what would be removed."""

    root: str
    retention: str | None = None
    dry_run: bool = False

    KEYS = ("rootDirectory", "retention", "dryRun")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"rootDirectory": self.root, "dryRun": self.dry_run}
        if self.retention is not None:
            data["retention"] = self.retention
        return data

    @classmethod
    def from_json(cls, value: object) -> PruneRequest:
        if isinstance(value, str):
            value = {"rootDirectory": value}
        if not isinstance(value, dict):
            raise InvalidBackupRequest(f"Send a JSON object, e.g. {PRUNE_EXAMPLE}.")
        _known_keys(value, cls.KEYS, PRUNE_EXAMPLE)
        retention = value.get("retention")
        if retention is not None and (not isinstance(retention, str) or len(retention) > 256):
            raise InvalidBackupRequest("'retention' must be a policy such as \"last=7,daily=30\".")
        return cls(_path(value, "rootDirectory", PRUNE_EXAMPLE), retention or None, _flag(value, "dryRun"))


@dataclass(frozen=True)
class PruneTask:
    """What every prune activity gets: the request, the work area, and the step's own number (if any).

    ``started`` is the prune's start (ISO 8601 UTC, from the orchestration's clock): snapshots taken after
    ``started`` minus a margin are never removed, so a backup running meanwhile loses nothing.
    """

    request: PruneRequest
    work: str
    started: str
    number: int = 0
    marker: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"request": self.request.to_json(), "work": self.work, "started": self.started, "number": self.number}
        return data | ({"marker": self.marker} if self.marker else {})

    @classmethod
    def from_json(cls, value: object) -> PruneTask:
        data = _object(value, "prune task")
        work = _field(data, "work", str, "prune task")
        if not work.startswith("work/") or not work.endswith("/prune/") or ".." in work:
            raise InvalidBackupRequest(f"Malformed prune task: {work!r} is not a prune's work area.")
        number = _field(data, "number", int, "prune task")
        return cls(
            PruneRequest.from_json(data.get("request")),
            work,
            _field(data, "started", str, "prune task"),
            number,
            _optional(data, "marker", str, "prune task"),
        )


@dataclass(frozen=True)
class Selection:
    """E2_PruneSelectRuns: how many runs the policy keeps and removes, and how many runs' catalogs say which
    stored versions must stay (the kept ones, runs not sealed yet, and runs of roots inside or around this one)."""

    kept: int
    removed: int
    referencing: int
    removed_ids: tuple[str, ...] = ()  # the first few, for the report

    def to_json(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "removed": self.removed,
            "referencing": self.referencing,
            "removedIds": list(self.removed_ids),
        }

    @classmethod
    def from_json(cls, value: object) -> Selection:
        data = _object(value, "prune selection")
        ids = data.get("removedIds", [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InvalidBackupRequest("Malformed prune selection.")
        return cls(
            kept=_field(data, "kept", int, "prune selection"),
            removed=_field(data, "removed", int, "prune selection"),
            referencing=_field(data, "referencing", int, "prune selection"),
            removed_ids=tuple(ids[:MAX_FAILURES_KEPT]),
        )


@dataclass(frozen=True)
class SnapshotPage:
    """E2_PruneFindSnapshots: one stretch of the root's blobs listed; ``written``: whether it had snapshots
    (then document ``number`` holds them); ``marker``: where the next stretch starts (None after the last)."""

    written: bool
    marker: str | None
    blobs: int = 0
    snapshots: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"written": self.written, "marker": self.marker, "blobs": self.blobs, "snapshots": self.snapshots}

    @classmethod
    def from_json(cls, value: object) -> SnapshotPage:
        data = _object(value, "snapshot page")
        return cls(
            _field(data, "written", bool, "snapshot page"),
            _optional(data, "marker", str, "snapshot page"),
            _field(data, "blobs", int, "snapshot page"),
            _field(data, "snapshots", int, "snapshot page"),
        )


@dataclass(frozen=True)
class PruneTally:
    """What a prune removed (or, dry, would remove), added up over its activities."""

    runs_removed: int = 0
    snapshots_removed: int = 0
    snapshot_bytes_removed: int = 0
    snapshots_kept: int = 0
    catalog_blobs_removed: int = 0
    catalog_bytes_removed: int = 0

    def __add__(self, other: PruneTally) -> PruneTally:
        return PruneTally(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def to_json(self) -> dict[str, int]:
        return {_camel(f.name): getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, value: object) -> PruneTally:
        data = _object(value, "prune tally")
        return cls(**{f.name: _field(data, _camel(f.name), int, "prune tally") for f in fields(cls)})
