"""Manifests: the lists of files a listing page hands to the copy activities, kept in storage.

A work unit's files would not fit in an activity's input (queues carry 45 KB inline), so the listing writes
them to the catalog container under ``work/<run>/`` and passes the name. A manifest also records the root's
inode: a copy that finds another directory there runs on an instance that does not share the listed storage,
and fails its files instead of reporting them deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import InvalidBackupRequest
from .naming import blob_segment
from .wire import from_wire, to_wire

WORK_PREFIX = "work"
FORMAT_VERSION = 1


def work_prefix(run: str) -> str:
    """Where a run's manifests live in the catalog container."""
    return f"{WORK_PREFIX}/{run}/"


def manifest_name(run: str, number: int) -> str:
    return f"{work_prefix(run)}{number:08d}.json"


def load_document(body: bytes, what: str, version: int) -> dict[str, Any]:
    """A JSON object of the given format ``version`` read from storage; anything else is named as malformed."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise InvalidBackupRequest(f"Malformed {what}: {exc}.") from exc
    if not isinstance(data, dict) or data.get("version") != version:
        raise InvalidBackupRequest(f"Malformed {what}: unknown format.")
    return data


@dataclass(frozen=True)
class ManifestEntry:
    """One file to copy, as the listing saw it.

    ``parts`` are its names below the root (the blob name comes from them); ``target`` the names of the file
    actually read when it is a symlink. ``stored`` says a blob of that name exists (its content is snapshotted
    before it is overwritten). ``known_md5`` is the MD5 of the stored copy when one of the same size exists: if
    the file still hashes to it, nothing is uploaded. ``stat_matches`` says the stored copy's recorded size,
    mtime and ctime already match (a ``verify`` run re-checks only the content).
    """

    parts: tuple[str, ...]
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    target: tuple[str, ...] | None = None
    known_md5: str | None = None
    stat_matches: bool = False
    stored: bool = False

    @property
    def key(self) -> str:
        return "/".join(blob_segment(p) for p in self.parts)

    @property
    def open_parts(self) -> tuple[str, ...]:
        return self.target if self.target is not None else self.parts

    def to_json(self) -> list[Any]:
        target = to_wire("/".join(self.target)) if self.target is not None else None
        row = [to_wire("/".join(self.parts)), self.size, self.mtime_ns, self.ctime_ns, self.ino, target]
        return [*row, self.known_md5, int(self.stat_matches), int(self.stored)]

    @classmethod
    def from_json(cls, row: object) -> ManifestEntry:
        if not isinstance(row, list) or len(row) != 9:
            raise InvalidBackupRequest("Malformed manifest entry.")
        name, size, mtime, ctime, ino, target, md5, matches, stored = row
        if not (isinstance(name, str) and all(isinstance(v, int) for v in (size, mtime, ctime, ino))):
            raise InvalidBackupRequest("Malformed manifest entry.")
        return cls(
            relative_names(name),
            size,
            mtime,
            ctime,
            ino,
            relative_names(target) if isinstance(target, str) else None,
            md5 if isinstance(md5, str) else None,
            bool(matches),
            bool(stored),
        )


def relative_names(wire: str) -> tuple[str, ...]:
    """A relative path from a manifest as names; anything that could climb out of the root is refused."""
    parts = tuple(from_wire(wire).split("/"))
    if any(p in ("", ".", "..") or "\x00" in p for p in parts):
        raise InvalidBackupRequest(f"Malformed manifest entry: {wire!r} is not a relative path below the root.")
    return parts


@dataclass(frozen=True)
class Manifest:
    """The files of one work unit of run ``run``, below ``root`` (stored under blob names starting with
    ``prefix``)."""

    run: str
    root: str
    root_ino: int
    prefix: str
    entries: tuple[ManifestEntry, ...]

    def to_bytes(self) -> bytes:
        data = {
            "version": FORMAT_VERSION,
            "run": self.run,
            "root": to_wire(self.root),
            "rootIno": self.root_ino,
            "prefix": self.prefix,
            "entries": [e.to_json() for e in self.entries],
        }
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, body: bytes) -> Manifest:
        data = load_document(body, "manifest", FORMAT_VERSION)
        run, root, ino, prefix, entries = (data.get(k) for k in ("run", "root", "rootIno", "prefix", "entries"))
        if not (isinstance(run, str) and isinstance(root, str) and isinstance(ino, int) and isinstance(prefix, str)):
            raise InvalidBackupRequest("Malformed manifest.")
        if not isinstance(entries, list):
            raise InvalidBackupRequest("Malformed manifest: 'entries' must be a list.")
        return cls(run, from_wire(root), ino, prefix, tuple(ManifestEntry.from_json(e) for e in entries))
