"""The sealed runs of a root, read from the catalog: list them, pick one, read its parts.

A run is picked by its id, as ``latest`` (the newest run that backed up its whole listing: ``completed``, or
``incomplete`` when some files failed and every other one is in the catalog), or by a time: the last such run
sealed at or before it. A run whose backup could not go on (``failed``) is listed, and restorable by its id,
but never picked by ``latest`` or a time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from .blobstore import StorageRequestFailed, StorageUnavailable
from .catalog import CatalogPart, id_name, index_prefix, parts_prefix, stamp
from .errors import BackupError
from .messages import RunSummary
from .storage import storage

PICKABLE = ("completed", "incomplete")
LATEST = "latest"


class BackupNotFound(BackupError):
    """No sealed run matches what was asked for; the message says what there is."""


@dataclass(frozen=True)
class IndexEntry:
    name: str
    run: str
    outcome: str
    finished: str  # the sortable stamp of its end
    started: str = ""  # the sortable stamp of its start (from the entry's name)
    size: int = 0

    @property
    def started_at(self) -> datetime:
        return datetime.strptime(self.started, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


async def index_entries(root: str) -> list[IndexEntry]:
    """Every sealed run of ``root``, oldest first (names sort by start time)."""
    target = storage()
    entries: list[IndexEntry] = []
    for blob in await target.store.list_all(target.catalog_container, index_prefix(root)):
        started, _, run = blob.name.rsplit("/", 1)[-1].removesuffix(".json").partition("-")
        outcome, finished = blob.metadata.get("outcome", ""), blob.metadata.get("finished", "")
        entries.append(IndexEntry(blob.name, run, outcome, finished, started, blob.size))
    return entries


async def summary_of(run: str) -> RunSummary | None:
    """A sealed run's summary by its id, or None."""
    target = storage()
    try:
        body = await target.store.get_blob(target.catalog_container, id_name(run))
    except StorageRequestFailed as exc:
        if exc.status == 404 and not isinstance(exc, StorageUnavailable):
            return None
        raise
    return RunSummary.from_json(json.loads(body))


async def list_runs(root: str, top: int = 50) -> list[RunSummary]:
    """The newest ``top`` sealed runs of ``root``, newest first, with their summaries."""
    summaries: list[RunSummary] = []
    for entry in reversed(await index_entries(root)):
        if len(summaries) >= top:
            break
        found = await summary_of(entry.run)
        if found is not None:
            summaries.append(found)
    return summaries


async def find_run(root: str, spec: str) -> RunSummary:
    """The run ``spec`` names for ``root``: an id, ``latest``, or an ISO 8601 time."""
    entries = await index_entries(root)
    if spec == LATEST or _is_time(spec):
        limit = stamp(_utc(spec)) if spec != LATEST else None
        for entry in reversed(entries):
            if entry.outcome in PICKABLE and (limit is None or entry.finished <= limit):
                summary = await summary_of(entry.run)
                if summary is not None:
                    return summary
        when = "" if limit is None else f" sealed at or before {spec}"
        raise BackupNotFound(
            f"There is no backup of {root!r}{when} that backed up its whole listing ({_known(entries)})."
        )
    summary = await summary_of(spec)
    if summary is None or summary.root != root:
        raise BackupNotFound(f"There is no backup {spec!r} of {root!r} ({_known(entries)}).")
    return summary


async def part_names(summary: RunSummary, marker: str | None) -> tuple[list[str], str | None]:
    """One page of a run's catalog parts, and the marker of the next page."""
    target = storage()
    page = await target.store.list_blobs(target.catalog_container, parts_prefix(summary.root, summary.run), marker)
    return [b.name for b in page.blobs], page.next_marker


async def read_part(name: str) -> CatalogPart:
    target = storage()
    return CatalogPart.from_bytes(await target.store.get_blob(target.catalog_container, name))


def _known(entries: list[IndexEntry]) -> str:
    if not entries:
        return "it has never been backed up here"
    newest = entries[-1]
    return f"{len(entries)} run(s) are known; the newest is {newest.run} ({newest.outcome})"


def _is_time(spec: str) -> bool:
    try:
        _utc(spec)
    except ValueError:
        return False
    return True


def _utc(spec: str) -> str:
    """An ISO 8601 time (a naive one is UTC) as the catalog writes times."""
    moment = datetime.fromisoformat(spec.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
