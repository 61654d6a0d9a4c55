"""The units of work of a prune: pick the runs a retention policy keeps, then remove the rest and every blob
snapshot that no remaining run needs.

What must stay is decided from the catalog, never guessed from times. A file of a run is restored from the
version of its blob that ``catalog.version_holding`` picks (the blob itself, else the newest snapshot with the
recorded MD5), so for each blob exactly those versions stay that some *referencing* run picks:

- the runs the policy keeps;
- runs not sealed yet (a backup still running, or one that was stopped): nothing of a run in progress goes;
- every run of another root inside or around this one (``/site`` and ``/site/media`` share blobs).

Only snapshots are ever deleted, never a blob itself, and never a snapshot taken less than 15 minutes (the
tuning's ``pruneMarginSeconds``) before the prune started: a backup running meanwhile writes into its catalog
only versions it saw current at most one activity (``functionTimeout``, 10 minutes) before, so what it needs is
either in a catalog read here or in a snapshot newer than that. A removed run's catalog goes summary first (no
restore finds it by id or by time any more), index entry last (until it goes, the next prune still sees the
run and finishes it). Every step rewrites or re-deletes the same things when it runs again.

The work area (``work/<prune instance>/prune/`` in the catalog container) holds what grows with the history
or the tree: ``selection.json`` (the runs), ``snapshots/<n>.json`` (the blobs that have snapshots, with every
version) and ``needed/<n>.json`` (of those, the versions each referencing run picks).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, TypeVar

from .blobstore import BlobInfo, StorageRequestFailed, StorageUnavailable
from .catalog import RUNS, id_name, parts_prefix, root_key, version_holding
from .concurrency import each
from .copier import in_io_thread
from .errors import InvalidBackupRequest
from .fsaccess import containing_root
from .listing import root_prefix
from .manifest import load_document
from .messages import MAX_FAILURES_KEPT, Tuning
from .prune_messages import PruneRequest, PruneTally, PruneTask, Selection, SnapshotPage
from .recovery import resolved_root
from .retention import EXAMPLE, RetentionPolicy
from .roots import allowed_roots
from .runs import PICKABLE, IndexEntry, index_entries, read_part, summary_of
from .storage import storage

log = logging.getLogger(__name__)

RETENTION_SETTING = "BACKUP_RETENTION"
LIST_PAGE = 1_000  # versions a List Blobs page
LIST_PAGES_PER_CALL = 100  # 100,000 versions listed by one E2_PruneFindSnapshots
# ... or fewer: a document's snapshots are deleted by one activity, which must end well within functionTimeout
# even on slow storage (Azurite on disk deletes about 12 a second): at most 2,000 and one more page
SNAPSHOTS_PER_DOCUMENT = 2_000
RUNS_PER_REMOVAL = 10
AT_ONCE = 16
DOCUMENT_VERSION = 1
_T = TypeVar("_T")


def checked_prune(value: object) -> PruneRequest:
    """A prune request with its root resolved and allowed, and the policy it applies (the request's, else
    ``BACKUP_RETENTION``); blocking (file system, environment)."""
    request = PruneRequest.from_json(value)
    root = resolved_root(request.root)
    containing_root(PurePosixPath(root), allowed_roots())
    retention = request.retention or os.environ.get(RETENTION_SETTING, "").strip()
    if not retention:
        raise InvalidBackupRequest(
            f"No retention policy: set the {RETENTION_SETTING} app setting (e.g. {EXAMPLE!r}) "
            f'or send one as "retention".'
        )
    return PruneRequest(root, str(RetentionPolicy.parse(retention)), request.dry_run)


def work_area(instance: str) -> str:
    return f"work/{instance}/prune/"


# ---- selecting the runs --------------------------------------------------------------------------------------


def kept_runs(entries: list[IndexEntry], policy: RetentionPolicy) -> set[str]:
    """The sealed runs the policy keeps. It counts the runs that backed up their whole listing; a failed run
    is kept only while no such run is newer (it is the latest word on the root until one succeeds)."""
    pickable = [(e.run, e.started_at) for e in entries if e.outcome in PICKABLE]
    kept = policy.keep(pickable)
    newest = max((started for _, started in pickable), default=None)
    kept.update(e.run for e in entries if e.outcome not in PICKABLE and (newest is None or e.started_at > newest))
    return kept


async def select_runs(value: object) -> dict[str, Any]:
    """Decide which runs go, and which runs' catalogs say what must stay: ``selection.json``.

    The document is written once: an activity run again (at least once is all the host promises) returns
    what the first run decided, so every later step of this prune works from the same selection.
    """
    task = PruneTask.from_json(value)
    name = task.work + "selection.json"
    request = await in_io_thread(checked_prune, task.request.to_json())
    assert request.retention is not None
    policy = RetentionPolicy.parse(request.retention)
    every = await index_entries(request.root)
    # A run whose summary is gone is one an interrupted prune was removing: it goes, whatever the policy says.
    entries = list(every)
    while True:
        kept = kept_runs(entries, policy)
        half_removed = [e for e in entries if e.run in kept and await summary_of(e.run) is None]
        if not half_removed:
            break
        entries = [e for e in entries if e not in half_removed]
    sealed = {e.run for e in every}
    removing = [e for e in every if e.run not in kept]
    referencing = [[request.root, run, True] for run in sorted(kept)]
    referencing += [[request.root, run, False] for run in await _run_ids(request.root) if run not in sealed]
    prefix = root_prefix(PurePosixPath(request.root))
    for other in await _other_roots(request.root):
        other_prefix = root_prefix(PurePosixPath(other))
        if other_prefix.startswith(prefix) or prefix.startswith(other_prefix):
            other_sealed = {e.run for e in await index_entries(other)}
            referencing += [[other, run, run in other_sealed] for run in await _run_ids(other)]  # all of them
    document = {
        "version": DOCUMENT_VERSION,
        "root": request.root,
        "kept": len(kept),
        "referencing": referencing,
        "removing": [[e.run, e.name, e.size] for e in removing],
    }
    if not await _put(name, document, create_only=True):
        document = await _get(name, "prune selection")
    selection = _selection(document)
    log.info(
        "Prune of %s (%s): keeps %d run(s), removes %d; %d run(s) reference stored versions.",
        request.root,
        request.retention,
        selection.kept,
        selection.removed,
        selection.referencing,
    )
    return selection.to_json()


def _selection(document: dict[str, Any]) -> Selection:
    kept, referencing, removing = document.get("kept"), document.get("referencing"), document.get("removing")
    if not (isinstance(kept, int) and isinstance(referencing, list) and isinstance(removing, list)):
        raise InvalidBackupRequest("Malformed prune selection.")
    shown = tuple(str(run) for run, _, _ in removing[:MAX_FAILURES_KEPT])
    return Selection(kept, len(removing), len(referencing), shown)


async def _selected(task: PruneTask) -> dict[str, Any]:
    """The selection this prune made (its root, as resolved then, and its runs)."""
    document = await _get(task.work + "selection.json", "prune selection")
    if not isinstance(document.get("root"), str):
        raise InvalidBackupRequest("Malformed prune selection.")
    _selection(document)
    return document


async def _run_ids(root: str) -> list[str]:
    """Every run of ``root`` with a catalog part, sealed or not."""
    prefix = f"{RUNS}/{root_key(root)}/"
    return [p[len(prefix) :].rstrip("/") for p in await _prefixes(prefix)]


async def _other_roots(root: str) -> list[str]:
    """The other roots with runs in the catalog (each part names its root)."""
    own = f"{RUNS}/{root_key(root)}/"
    target = storage()
    roots = []
    for key_prefix in await _prefixes(f"{RUNS}/"):
        if key_prefix == own:
            continue
        async for page in target.store.pages(target.catalog_container, key_prefix):
            if page.blobs:
                roots.append((await read_part(page.blobs[0].name)).root)
                break
    return roots


async def _prefixes(prefix: str) -> list[str]:
    target = storage()
    return [p async for page in target.store.pages(target.catalog_container, prefix, flat=False) for p in page.prefixes]


# ---- finding the snapshots -----------------------------------------------------------------------------------


async def find_snapshots(value: object) -> dict[str, Any]:
    """List a stretch of the root's blobs with their snapshots; those that have any go to ``snapshots/<n>``.

    A stretch ends only after a blob itself (it is listed after its snapshots), so no blob's versions are
    ever split between two documents. A listing that misses some versions of a blob (Azurite's marker skips
    the rest of a blob's versions when a page ends among them) is still safe: only versions seen are deleted,
    and for each needed MD5 the version restore would pick among those seen is kept, so restore still finds
    one with the recorded bytes.
    """
    task = PruneTask.from_json(value)
    target = storage()
    prefix = root_prefix(PurePosixPath((await _selected(task))["root"]))
    found: list[list[Any]] = []
    versions: list[BlobInfo] = []
    listed = snapshots = 0
    marker = task.marker
    for pages in range(1, 1_000_000):
        page = await target.store.list_blobs(target.container, prefix, marker, snapshots=True, page_size=LIST_PAGE)
        for blob in page.blobs:
            if versions and blob.name != versions[0].name:
                _add_if_snapshotted(found, versions)
                versions = []
            versions.append(blob)
            listed += blob.snapshot is None
            snapshots += blob.snapshot is not None
        marker = page.next_marker
        full = pages >= LIST_PAGES_PER_CALL or snapshots >= SNAPSHOTS_PER_DOCUMENT
        if marker is None or (full and page.blobs and page.blobs[-1].snapshot is None):
            break
    _add_if_snapshotted(found, versions)
    if found:
        await _put(f"{task.work}snapshots/{task.number:08d}.json", {"version": DOCUMENT_VERSION, "blobs": found})
    return SnapshotPage(bool(found), marker, listed, snapshots).to_json()


def _add_if_snapshotted(found: list[list[Any]], versions: list[BlobInfo]) -> None:
    if len(versions) > 1:
        found.append([versions[0].name, [_version_json(v) for v in versions]])


def _version_json(blob: BlobInfo) -> list[Any]:
    return [blob.snapshot, blob.size, blob.content_md5.hex() if blob.content_md5 else None]


def _version(name: str, row: object) -> BlobInfo:
    if not (isinstance(row, list) and len(row) == 3 and isinstance(row[1], int)):
        raise InvalidBackupRequest("Malformed snapshot document.")
    snapshot, size, md5 = row
    return BlobInfo(name, size, bytes.fromhex(md5) if isinstance(md5, str) else None, {}, snapshot)


async def _snapshot_documents(work: str) -> list[str]:
    return await _names(work + "snapshots/")


async def _snapshotted(name: str) -> dict[str, list[BlobInfo]]:
    """A snapshot document: every version of each blob in it, in listing order."""
    data = await _get(name, "snapshot document")
    blobs = data.get("blobs")
    if not isinstance(blobs, list):
        raise InvalidBackupRequest("Malformed snapshot document.")
    return {str(blob): [_version(str(blob), row) for row in rows] for blob, rows in blobs}


# ---- what the referencing runs need --------------------------------------------------------------------------


async def collect_references(value: object) -> dict[str, Any]:
    """Of the blobs that have snapshots, the versions one referencing run needs: ``needed/<n>``.

    For a run not sealed yet it also records when its first part was written (``since``): it may still
    write parts after this read, about versions it saw current at any time since it began.
    """
    task = PruneTask.from_json(value)
    referencing = (await _selected(task))["referencing"]
    if task.number >= len(referencing):
        raise InvalidBackupRequest(f"Malformed prune task: no referencing run {task.number}.")
    root, run, sealed = referencing[task.number]
    candidates: set[str] = set()
    for name in await _snapshot_documents(task.work):
        candidates.update(await _snapshotted(name))
    parts = await _listed(parts_prefix(root, run))
    needed: set[tuple[str, int, str]] = set()

    async def scan(listed: BlobInfo) -> None:
        try:
            part = await read_part(listed.name)
        except StorageRequestFailed as exc:
            if exc.status == 404 and not isinstance(exc, StorageUnavailable):
                return  # removed meanwhile (by a prune of that root): it needs nothing any more
            raise
        for entry in part.entries:
            blob = part.prefix + entry.key
            if blob in candidates:
                needed.add((blob, entry.size, entry.md5))

    if candidates:
        await _each(parts, scan)
    document: dict[str, Any] = {"version": DOCUMENT_VERSION, "versions": sorted(needed)}
    written = [p.last_modified for p in parts if p.last_modified is not None]
    if not sealed:
        document["since"] = min(written).isoformat() if written else task.started
    await _put(f"{task.work}needed/{task.number:08d}.json", document)
    return {"versions": len(needed)}


# ---- removing ------------------------------------------------------------------------------------------------


async def remove_runs(value: object) -> dict[str, Any]:
    """Remove the catalogs of a batch of runs (``number``: the batch). First the summary by id (no restore or
    verify finds the run any more), then its parts, the index entry last (until it goes, the next prune still
    sees the run and finishes it). A dry run only counts them."""
    task = PruneTask.from_json(value)
    selection = await _selected(task)
    root, removing = selection["root"], selection["removing"]
    target = storage()
    tally = PruneTally()

    async def delete(blob: BlobInfo) -> None:
        await target.store.delete_blob(target.catalog_container, blob.name)

    for run, index_name, index_size in removing[task.number * RUNS_PER_REMOVAL : (task.number + 1) * RUNS_PER_REMOVAL]:
        summary = await target.store.properties(target.catalog_container, id_name(run))
        parts = await _listed(parts_prefix(root, run))
        index = BlobInfo(index_name, index_size, None, {})
        blobs = [*([summary] if summary else []), *parts, index]
        tally += PruneTally(
            catalog_blobs_removed=len(blobs), catalog_bytes_removed=sum(b.size for b in blobs), runs_removed=1
        )
        if task.request.dry_run:
            continue
        if summary is not None:
            await delete(summary)
        await _each(parts, delete)
        await delete(index)
        log.info("Removed run %s of %s from the catalog (%d blobs).", run, root, len(blobs))
    return tally.to_json()


async def delete_snapshots(value: object) -> dict[str, Any]:
    """Delete the snapshots of one snapshot document that no referencing run needs (a dry run counts them)."""
    task = PruneTask.from_json(value)
    blobs = await _snapshotted(f"{task.work}snapshots/{task.number:08d}.json")
    needed: dict[str, set[tuple[int, str]]] = {}
    earliest = _utc(task.started)
    for name in await _names(task.work + "needed/"):
        document = await _get(name, "needed versions")
        rows = document.get("versions")
        if not isinstance(rows, list):
            raise InvalidBackupRequest("Malformed needed versions.")
        for blob, size, md5 in rows:
            if blob in blobs:
                needed.setdefault(blob, set()).add((size, md5))
        if isinstance(document.get("since"), str):
            earliest = min(earliest, _utc(document["since"]))
    # Younger snapshots stay: a backup running meanwhile, or a run not sealed yet, may still record them.
    protected_after = earliest - timedelta(seconds=Tuning.from_settings().prune_margin_seconds)
    doomed: list[BlobInfo] = []
    kept = 0
    for blob, versions in blobs.items():
        picked = (version_holding(versions, size, md5) for size, md5 in needed.get(blob, ()))
        keep = {version.snapshot for version in picked if version is not None}
        for version in versions:
            if version.snapshot is None:
                continue
            if version.snapshot in keep or _utc(version.snapshot) >= protected_after:
                kept += 1
            else:
                doomed.append(version)
    if not task.request.dry_run:
        target = storage()

        async def delete(version: BlobInfo) -> None:
            assert version.snapshot is not None
            await target.store.delete_snapshot(target.container, version.name, version.snapshot)

        await _each(doomed, delete)
    tally = PruneTally(
        snapshots_removed=len(doomed), snapshot_bytes_removed=sum(v.size for v in doomed), snapshots_kept=kept
    )
    return tally.to_json()


async def finish_prune(value: object) -> None:
    """Delete the prune's work area."""
    task = PruneTask.from_json(value)
    target = storage()

    async def delete(name: str) -> None:
        await target.store.delete_blob(target.catalog_container, name)

    await _each(await _names(task.work), delete)


# ---- plumbing ------------------------------------------------------------------------------------------------


def _utc(moment: str) -> datetime:
    """An ISO 8601 UTC time as storage writes snapshot times (7 fraction digits) or the orchestrator does."""
    text = moment.strip().removesuffix("Z")
    head, _, fraction = text.partition(".")
    parsed = datetime.fromisoformat(f"{head}.{(fraction + '000000')[:6]}" if fraction else head)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


async def _listed(prefix: str) -> list[BlobInfo]:
    target = storage()
    return await target.store.list_all(target.catalog_container, prefix)


async def _names(prefix: str) -> list[str]:
    return [b.name for b in await _listed(prefix)]


async def _get(name: str, what: str) -> dict[str, Any]:
    target = storage()
    return load_document(await target.store.get_blob(target.catalog_container, name), what, DOCUMENT_VERSION)


async def _put(name: str, document: dict[str, Any], create_only: bool = False) -> bool:
    target = storage()
    body = json.dumps(document, separators=(",", ":")).encode()
    md5 = hashlib.md5(body, usedforsecurity=False).digest()
    return await target.store.put_blob(
        target.catalog_container, name, body, md5, "application/json", {}, create_only=create_only
    )


async def _each(items: Iterable[_T], work: Callable[[_T], Awaitable[None]]) -> None:
    """Run ``work`` on every item, ``AT_ONCE`` at a time; an error is raised (and the activity retried)."""
    await each(items, work, AT_ONCE)
