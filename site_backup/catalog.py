"""The catalog: what each backup run held, file by file, so that any run can be restored and verified.

It lives in the catalog container (``BACKUP_CATALOG_CONTAINER``), never among the backed-up blobs:

- ``runs/<root key>/<run id>/<number>.json``: the parts of a run, each a list of files with their relative
  names, sizes, modification times and MD5s. The copy activity of a work unit writes the part of its unit; a
  listing page writes the parts of the files it found already stored. A retried activity rewrites its own part.
- ``index/<root key>/<started>-<run id>.json``: a run's summary, written when the run ends; this is what
  seals it. Listing ``index/<root key>/`` lists a root's runs, in time order, without reading their parts
  (each entry's metadata carries the outcome and the end time, so picking a run reads no summary).
- ``ids/<run id>.json``: the same summary, found by the run's id alone.

``<root key>`` is a hash of the root's path, so roots never share a catalog prefix; the summary names the
root. Where a file's bytes live is not written down: a part records the MD5 of the bytes the run stored, and
whichever version of the blob has that MD5 holds them, the blob itself or one of its snapshots (a blob's
previous content is snapshotted before it is overwritten).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .blobstore import BlobInfo
from .errors import InvalidBackupRequest
from .manifest import load_document, relative_names
from .naming import blob_segment
from .wire import from_wire, to_wire

RUNS, INDEX, IDS = "runs", "index", "ids"
FORMAT_VERSION = 1


def root_key(root: str) -> str:
    """The catalog prefix of one root's runs: a hash, so ``/a`` and ``/a b`` never share a prefix."""
    return hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def part_name(root: str, run: str, number: int) -> str:
    return f"{RUNS}/{root_key(root)}/{run}/{number:08d}.json"


def parts_prefix(root: str, run: str) -> str:
    return f"{RUNS}/{root_key(root)}/{run}/"


def index_prefix(root: str) -> str:
    return f"{INDEX}/{root_key(root)}/"


def summary_name(root: str, run: str, started: str) -> str:
    """The index entry of a run; names sort by start time (``started`` is ISO 8601 UTC)."""
    return f"{index_prefix(root)}{stamp(started)}-{run}.json"


def id_name(run: str) -> str:
    return f"{IDS}/{run}.json"


def stamp(moment: str) -> str:
    """An ISO 8601 UTC time as the digits of a sortable name (``20261201T101500123456Z``)."""
    return re.sub(r"[^0-9TZ]", "", moment)


@dataclass(frozen=True)
class CatalogEntry:
    """One file of a run: its names below the root, size, modification time and the MD5 of what was stored."""

    parts: tuple[str, ...]
    size: int
    mtime_ns: int
    md5: str

    @property
    def key(self) -> str:
        return "/".join(blob_segment(p) for p in self.parts)

    def to_json(self) -> list[Any]:
        return [to_wire("/".join(self.parts)), self.size, self.mtime_ns, self.md5]

    @classmethod
    def from_json(cls, row: object) -> CatalogEntry:
        if not (isinstance(row, list) and len(row) == 4 and isinstance(row[0], str) and isinstance(row[3], str)):
            raise InvalidBackupRequest("Malformed catalog entry.")
        name, size, mtime, md5 = row
        if not (isinstance(size, int) and isinstance(mtime, int) and re.fullmatch(r"[0-9a-f]{32}", md5)):
            raise InvalidBackupRequest("Malformed catalog entry.")
        return cls(relative_names(name), size, mtime, md5)


@dataclass(frozen=True)
class CatalogPart:
    """Some files of a run below ``root``, stored under blob names starting with ``prefix``."""

    root: str
    prefix: str
    entries: tuple[CatalogEntry, ...]

    def to_bytes(self) -> bytes:
        data = {
            "version": FORMAT_VERSION,
            "root": to_wire(self.root),
            "prefix": self.prefix,
            "entries": [e.to_json() for e in self.entries],
        }
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, body: bytes) -> CatalogPart:
        data = load_document(body, "catalog part", FORMAT_VERSION)
        root, prefix, entries = data.get("root"), data.get("prefix"), data.get("entries")
        if not (isinstance(root, str) and isinstance(prefix, str) and isinstance(entries, list)):
            raise InvalidBackupRequest("Malformed catalog part.")
        return cls(from_wire(root), prefix, tuple(CatalogEntry.from_json(e) for e in entries))


def version_holding(versions: Sequence[BlobInfo], size: int, md5: str) -> BlobInfo | None:
    """The version of a blob that holds a run's bytes: the blob itself when it still has them, else the newest
    snapshot that does. ``versions`` are in listing order (snapshots oldest first, the blob itself last).

    Restore reads from this version, and prune keeps exactly this one for each file of a kept run.
    """
    for version in reversed(versions):
        if version.size == size and version.content_md5 is not None and version.content_md5.hex() == md5:
            return version
    return None
