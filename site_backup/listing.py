"""List a tree for a backup: one page at a time, side by side with what storage already holds.

A page walks the tree in blob-name order (``walk.py``) from its cursor and, in the same order, the blobs
stored under the root (List Blobs with metadata, 5,000 a request). A file whose stored copy records its
size, modification time and change time is already backed up: it is counted and never read. The others go
into work units (batches bounded by files and bytes; a large file alone, to be staged in segments), whose
manifests are written to the catalog container. The page returns only their names and counts, and a cursor
(the last name walked and the List Blobs marker) from which the next page goes on.

``count_files`` walks the tree alone for the progress totals; ``list_files`` returns the whole list of
absolute paths, as the seed's ``E2_GetFileList`` does.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .blobstore import BlobInfo, BlobPage, BlobStore
from .catalog import CatalogEntry, CatalogPart, part_name
from .copier import in_io_thread, stored_copy_matches
from .fsaccess import FileIdentity, open_directory
from .globs import compile_glob
from .manifest import Manifest, ManifestEntry, manifest_name
from .messages import MAX_FAILURES_KEPT, Counts, ListingCursor, PageRequest, PageResult, Totals, Tuning, WorkUnit, short
from .naming import MAX_NAME_LENGTH, MAX_SEGMENTS, blob_name_for
from .request import BackupRequest
from .roots import allowed_roots, resolve_backup_directory
from .storage import Storage, storage
from .walk import Entry, TreeWalk

PAGE_ENTRIES = 50_000  # files walked by one page at most
PAGE_SECONDS = 20.0  # and time spent walking
WALK_CHUNK = 2_000  # entries taken from the walk per hop to its thread
COUNT_SECONDS = 120.0


def root_prefix(root: PurePosixPath) -> str:
    """The blob-name prefix of everything under ``root`` (``/home/site`` -> ``home/site/``)."""
    return "" if root == PurePosixPath("/") else blob_name_for(str(root)) + "/"


@dataclass
class _OpenTree:
    """A checked root, open as a descriptor, and the walk over it."""

    root: PurePosixPath
    fd: int
    walk: TreeWalk
    entries: Iterator[Entry]

    @classmethod
    def open(cls, request: BackupRequest, after: str | None = None) -> _OpenTree:
        roots = allowed_roots()
        root = PurePosixPath(str(resolve_backup_directory(request.root_directory, roots)))
        includes = [compile_glob(p) for p in request.include]
        excludes = [compile_glob(p) for p in request.exclude]
        fd = open_directory(root, roots)
        walk = TreeWalk(root, fd, includes, excludes, after)
        return cls(root, fd, walk, iter(walk))

    def take(self, count: int) -> list[Entry]:
        return list(itertools.islice(self.entries, count))

    def push_back(self, entries: list[Entry]) -> None:
        """Put entries taken but not used back in front of the walk."""
        if entries:
            self.entries = itertools.chain(entries, self.entries)

    def has_more(self) -> bool:
        ahead = self.take(1)
        self.push_back(ahead)
        return bool(ahead)

    def close(self) -> None:
        close = getattr(self.entries, "close", None)
        if close is not None:
            close()
        os.close(self.fd)


def list_files(request: BackupRequest) -> list[str]:
    """Every selected file's absolute path, in listing order (the seed's E2_GetFileList)."""
    tree = _OpenTree.open(request)
    try:
        return [str(tree.root.joinpath(*entry.parts)) for entry in tree.entries]
    finally:
        tree.close()


def count_files(request: BackupRequest, seconds: float = COUNT_SECONDS) -> Totals:
    """The files and bytes the request selects; a lower bound (``complete`` false) if the walk ran out of time."""
    tree = _OpenTree.open(request)
    deadline = time.monotonic() + seconds
    files = size = 0
    try:
        for entry in tree.entries:
            files += 1
            size += entry.stat.st_size
            if files % 1000 == 0 and time.monotonic() > deadline:
                return Totals(Counts(files, size), complete=False)
    finally:
        tree.close()
    return Totals(Counts(files, size))


class StoredBlobs:
    """The blobs stored under the root, read in name order alongside the walk."""

    def __init__(self, store: BlobStore, container: str, prefix: str, cursor: ListingCursor) -> None:
        self.store = store
        self.container = container
        self.prefix = prefix
        self.page_marker = cursor.marker
        self.page: BlobPage | None = BlobPage((), None) if cursor.stored_done else None
        self.index = 0

    async def find(self, name: str) -> BlobInfo | None:
        """The stored blob called ``name``, if any; names must be asked for in increasing order.

        Blobs named before ``name`` are passed over for good. Should storage order a few exotic names
        differently (Azurite compares UTF-16 code units), such a file is merely uploaded again.
        """
        while True:
            if self.page is None:
                self.page = await self.store.list_blobs(self.container, self.prefix, self.page_marker)
                self.index = 0
            if self.index >= len(self.page.blobs):
                if self.page.next_marker is None:
                    return None
                self.page_marker, self.page = self.page.next_marker, None
                continue
            current = self.page.blobs[self.index]
            if current.name < name:
                self.index += 1
                continue
            return current if current.name == name else None

    @property
    def resume_marker(self) -> str | None:
        """The marker of the stored page the next listing page starts reading from."""
        return self.page_marker

    @property
    def exhausted(self) -> bool:
        """Whether every stored blob has been passed (the next page need not list any)."""
        return self.page is not None and self.index >= len(self.page.blobs) and self.page.next_marker is None


@dataclass
class _PageBuilder:
    """Cuts a page's files into work units and writes their manifests as they fill up; the files already
    stored go into the run's catalog, in parts of the same size. Units and parts share one numbering."""

    target: Storage
    run: str
    tuning: Tuning
    root: PurePosixPath
    root_ino: int
    prefix: str
    next_unit: int
    units: list[WorkUnit] = field(default_factory=list)
    batch: list[ManifestEntry] = field(default_factory=list)
    batch_bytes: int = 0
    already: list[CatalogEntry] = field(default_factory=list)
    writes: list[asyncio.Task[None]] = field(default_factory=list)

    def add_stored(self, entry: CatalogEntry) -> None:
        """A file the stored copy already holds: into the catalog, not into a unit."""
        self.already.append(entry)
        if len(self.already) >= self.tuning.batch_files:
            self._part()

    def _part(self) -> None:
        number = self.next_unit
        self.next_unit += 1
        part = CatalogPart(str(self.root), self.prefix, tuple(self.already))
        self.writes.append(
            asyncio.ensure_future(self._write(part_name(str(self.root), self.run, number), part.to_bytes()))
        )
        self.already = []

    def add(self, entry: ManifestEntry) -> None:
        if entry.size > self.tuning.large_file_bytes:
            self._unit([entry], math.ceil(entry.size / self.tuning.segment_bytes))
            return
        self.batch.append(entry)
        self.batch_bytes += entry.size
        if len(self.batch) >= self.tuning.batch_files or self.batch_bytes >= self.tuning.batch_bytes:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            self._unit(self.batch, 0)
            self.batch, self.batch_bytes = [], 0
        if self.already:
            self._part()

    def _unit(self, entries: list[ManifestEntry], segments: int) -> None:
        number = self.next_unit
        self.next_unit += 1
        name = manifest_name(self.run, number)
        manifest = Manifest(self.run, str(self.root), self.root_ino, self.prefix, tuple(entries))
        self.units.append(WorkUnit(number, name, len(entries), sum(e.size for e in entries), segments))
        self.writes.append(asyncio.ensure_future(self._write(name, manifest.to_bytes())))

    async def _write(self, name: str, body: bytes) -> None:
        md5 = hashlib.md5(body, usedforsecurity=False).digest()
        await self.target.store.put_blob(self.target.catalog_container, name, body, md5, "application/json", {})

    async def written(self) -> None:
        await asyncio.gather(*self.writes)


async def list_page(page: PageRequest) -> PageResult:
    """One page of a run's listing: the work units to copy, and what storage already holds."""
    tuning = page.tuning or Tuning.from_settings()
    target = storage()
    tree = await in_io_thread(_OpenTree.open, page.request, page.cursor.after)
    try:
        prefix = root_prefix(tree.root)
        stored = StoredBlobs(target.store, target.container, prefix, page.cursor)
        root_ino = os.fstat(tree.fd).st_ino
        builder = _PageBuilder(target, page.run, tuning, tree.root, root_ino, prefix, page.cursor.next_unit)
        tally = _PageTally(last=page.cursor.after)
        deadline = time.monotonic() + PAGE_SECONDS

        def full() -> bool:
            return (
                len(builder.units) >= tuning.page_units or tally.walked >= PAGE_ENTRIES or time.monotonic() > deadline
            )

        while not full() and (chunk := await in_io_thread(tree.take, WALK_CHUNK)):
            for index, entry in enumerate(chunk):
                await _list_entry(entry, tree.root, prefix, stored, builder, tally, page.request.verify)
                if full():
                    tree.push_back(chunk[index + 1 :])
                    break
        builder.flush()
        await builder.written()
        more = await in_io_thread(tree.has_more)
        cursor = ListingCursor(tally.last, stored.resume_marker, builder.next_unit, stored.exhausted) if more else None
        return PageResult(
            tuple(builder.units),
            cursor,
            tally.listed,
            tally.unchanged,
            tuning,
            tally.failed,
            tuple(tally.failures),
            str(tree.root),
        )
    finally:
        await in_io_thread(tree.close)


@dataclass
class _PageTally:
    last: str | None
    walked: int = 0
    listed: Counts = field(default_factory=Counts)
    unchanged: Counts = field(default_factory=Counts)
    failed: int = 0
    failures: list[str] = field(default_factory=list)


async def _list_entry(
    entry: Entry,
    root: PurePosixPath,
    prefix: str,
    stored: StoredBlobs,
    builder: _PageBuilder,
    tally: _PageTally,
    verify: bool,
) -> None:
    """Count one walked file as already backed up, or put it into a work unit, or fail it (no blob name)."""
    tally.walked += 1
    tally.last = entry.key
    size = entry.stat.st_size
    tally.listed += Counts(1, size)
    name = prefix + entry.key
    problem = _name_problem(root, entry, name)
    if problem is not None:
        tally.failed += 1
        if len(tally.failures) < MAX_FAILURES_KEPT:
            tally.failures.append(short(problem))
        return
    found = await stored.find(name)
    matches = found is not None and stored_copy_matches(found, FileIdentity.of(entry.stat))
    st = entry.stat
    if matches and not verify:
        assert found is not None and found.content_md5 is not None
        tally.unchanged += Counts(1, size)
        builder.add_stored(CatalogEntry(entry.parts, size, st.st_mtime_ns, found.content_md5.hex()))
        return
    known = found.content_md5.hex() if found and found.content_md5 and found.size == size else None
    builder.add(
        ManifestEntry(
            entry.parts,
            size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            entry.target,
            known,
            matches,
            found is not None,
        )
    )


def _name_problem(root: PurePosixPath, entry: Entry, name: str) -> str | None:
    segments = name.count("/") + 1
    if len(name) <= MAX_NAME_LENGTH and segments <= MAX_SEGMENTS:
        return None
    path = short(display_path(root, entry.parts), 120)
    return (
        f"{path}: BlobNameTooLong: cannot be a blob name ({len(name)} characters, {segments} segments; Blob "
        f"Storage allows {MAX_NAME_LENGTH} and {MAX_SEGMENTS}). Exclude it with an 'exclude' pattern to back up "
        "the rest."
    )


def display_path(root: PurePosixPath | str, parts: tuple[str, ...]) -> str:
    """A path safe in any message: bytes that are not UTF-8 shown as \\xNN escapes."""
    path = str(PurePosixPath(str(root)).joinpath(*parts))
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
