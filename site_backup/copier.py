"""Copy files into blobs: streamed, verified, idempotent, and skipped when storage already holds them.

- **Small files** (up to ``SINGLE_PUT_LIMIT``) go up in one Put Blob. Larger ones are read once, in order,
  as blocks staged in parallel and committed with Put Block List, so the whole-file MD5 comes from exactly
  the bytes sent. Every request carries the MD5 of its body, which storage checks.
- **Commit only if unchanged.** The file is opened once (``fsaccess``) and read only through that
  descriptor; its identity (inode, size, mtime, ctime) must be the same after the read as before, or it is
  read again (up to ``READ_ATTEMPTS`` times) and then reported as failed. A blob is the complete old copy
  or the complete new one.
- **Skips.** When the stored copy has the same size, the file is hashed first and nothing is uploaded if
  the MD5 is the stored one; only its metadata is brought up to date.
- **Large files** are staged segment by segment by several activities (``stage_segment``), with block ids
  derived from the file's identity, and committed by one (``commit_segments``), which hashes the file
  again and checks that it did not change since it was listed.
- **Bounded resources.** Files are read on a small thread pool, never on the event loop; the bytes held in
  memory, the files being copied and the blocks in flight are bounded per process, whatever the number of
  activities running at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import logging
import math
import mimetypes
import os
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .blobstore import BlobStore, StorageRequestFailed, StorageUnavailable
from .errors import FileChangedDuringBackup
from .fsaccess import FileIdentity, OpenFile, PathGone, read_up_to
from .messages import CopyResult, short
from .storage import Storage

log = logging.getLogger(__name__)

MiB = 1024 * 1024
SINGLE_PUT_LIMIT = 4 * MiB
BLOCK_BYTES = 8 * MiB
MAX_BLOCKS = 50_000
READ_ATTEMPTS = 3
BLOCKS_IN_FLIGHT = 4  # per file
FILES_IN_FLIGHT_PER_UNIT = 32
FILES_IN_FLIGHT = 64  # per process, across every activity running in it
BUFFERED_BYTES = 96 * MiB  # per process: file contents held in memory at once
IO_THREADS = 16
# A file modified this recently may be modified again within the same timestamp tick without its times
# changing; its stored copy is not recorded as matching the file's ctime, so the next run hashes it.
RACY_SECONDS = 2

SIZE_KEY, MTIME_KEY, CTIME_KEY, MD5_KEY = "source_size", "source_mtime_ns", "source_ctime_ns", "source_md5"

_T = TypeVar("_T")
_io_pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="backup-io")


async def in_io_thread(fn: Callable[..., _T], *args: Any) -> _T:
    """Run blocking file-system work off the event loop, so a slow or hung mount cannot stall it."""
    return await asyncio.get_running_loop().run_in_executor(_io_pool, fn, *args)


class ByteBudget:
    """Bytes that may be held in memory at once, granted first come, first served.

    A request bigger than the whole budget waits until nothing else is held.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    def _fits(self, amount: int) -> bool:
        return self.used == 0 or self.used + amount <= self.limit

    async def acquire(self, amount: int) -> None:
        if amount <= 0:
            return
        if not self._waiting and self._fits(amount):
            self.used += amount
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append((amount, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                await self.release(amount)  # granted just as the waiter was cancelled
            else:
                self._waiting = deque(w for w in self._waiting if w[1] is not waiter)
            raise

    async def release(self, amount: int) -> None:
        if amount <= 0:
            return
        self.used -= amount
        while self._waiting and self._fits(self._waiting[0][0]):
            wanted, waiter = self._waiting.popleft()
            if not waiter.done():
                self.used += wanted
                waiter.set_result(None)


class PrioritySlots:
    """Slots for files being copied, given to the lowest priority number first (ties: first come).

    Units of work that share a process then finish one after the other instead of all at the very end, so
    the backup's progress moves steadily, and the first units listed are the first done.
    """

    def __init__(self, count: int) -> None:
        self.free = count
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = 0

    async def acquire(self, priority: int) -> None:
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return
        self._order += 1
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, self._order, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as this waiter was cancelled
            else:
                self._waiting = [w for w in self._waiting if w[2] is not waiter]
                heapq.heapify(self._waiting)
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, waiter = heapq.heappop(self._waiting)
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


class BlockBuffers:
    """Reused buffers for the blocks of large files, one free list per block size.

    Under the segment fan-out, more freshly read blocks stayed alive than the memory budget allows in flight
    (tracemalloc: 16-20 blocks of 8 MiB against a budget of 12, even after a full garbage collection), held
    by the HTTP stack after their requests had ended. Buffers taken from this pool and given back can never
    add up to more than the budget.
    """

    def __init__(self) -> None:
        self._free: dict[int, list[bytearray]] = {}

    def take(self, size: int) -> bytearray:
        free = self._free.get(size)
        return free.pop() if free else bytearray(size)

    def give_back(self, buffer: bytearray) -> None:
        self._free.setdefault(len(buffer), []).append(buffer)


@dataclass
class Limits:
    """What one process (one event loop) allows at once."""

    files: PrioritySlots
    memory: ByteBudget
    buffers: BlockBuffers = field(default_factory=BlockBuffers)


_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Limits] = weakref.WeakKeyDictionary()


def limits() -> Limits:
    loop = asyncio.get_running_loop()
    found = _limits.get(loop)
    if found is None:
        found = _limits[loop] = Limits(PrioritySlots(FILES_IN_FLIGHT), ByteBudget(BUFFERED_BYTES))
    return found


@dataclass(frozen=True)
class Source:
    """A file to back up: how to open it, the blob it becomes, and what storage holds for it already.

    ``listed_size`` is its size when it was listed: memory for a small file is reserved up front, so it is
    opened, read and hashed in a single hop to the I/O threads.
    """

    blob: str
    display: str
    open: Callable[[], OpenFile]
    known_md5: str | None = None
    stat_matches: bool = False
    listed_size: int | None = None
    stored: bool = False  # a blob of this name exists: snapshot it before overwriting it
    parts: tuple[str, ...] = ()  # its names below the root, for the catalog


@dataclass(frozen=True)
class Stored:
    """What the backup now holds for a file: the bytes with this MD5, taken from the file at this size and
    modification time."""

    md5: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Outcome:
    """What happened to one file, and what is stored for it (None when nothing is)."""

    result: CopyResult
    stored: Stored | None = None


@dataclass
class _SmallRead:
    """A small file read whole: its identity before and after, its bytes and their MD5."""

    before: FileIdentity
    after: FileIdentity
    data: bytes
    md5: bytes


def open_and_read(open_file: Callable[[], OpenFile], limit: int) -> _SmallRead | OpenFile:
    """Open the file; if it has at most ``limit`` bytes, read, hash and close it, else return it open."""
    opened = open_file()
    if opened.stat.st_size > limit:
        return opened
    try:
        data, md5, after = read_whole(opened.fd, opened.stat.st_size)
        return _SmallRead(opened.identity, after, data, md5)
    finally:
        opened.close()


def uploaded(identity: FileIdentity, md5: bytes, size: int) -> Outcome:
    return Outcome(CopyResult(files=1, bytes=size, uploaded=1), Stored(md5.hex(), size, identity.mtime_ns))


def unchanged(identity: FileIdentity, md5: bytes) -> Outcome:
    size = identity.size
    return Outcome(CopyResult(files=1, bytes=size, unchanged=1), Stored(md5.hex(), size, identity.mtime_ns))


VANISHED = Outcome(CopyResult(files=1, vanished=1))


def failed(display: str, reason: object) -> Outcome:
    """One file not backed up, and why: the path is shortened rather than the reason."""
    return Outcome(CopyResult(files=1, failed=1, failures=(short(f"{short(display, 160)}: {reason}"),)))


class Copier:
    """Copies files into the backup container of one storage account."""

    def __init__(self, target: Storage) -> None:
        self.target = target
        self.store: BlobStore = target.store
        self.limits = limits()

    async def copy_all(
        self, sources: Iterable[Source], priority: int = 0
    ) -> tuple[CopyResult, list[tuple[Source, Stored]]]:
        """Copy files with bounded concurrency; StorageUnavailable from any of them fails the whole call.

        Returns the tally and what is now stored for each file that is. ``priority`` orders this call's files
        against other calls in the process (lower goes first).
        """
        queue = iter(sources)
        total = CopyResult()
        stored: list[tuple[Source, Stored]] = []

        async def worker() -> None:
            nonlocal total
            for source in queue:
                await self.limits.files.acquire(priority)
                try:
                    outcome = await self.copy(source)
                finally:
                    self.limits.files.release()
                total += outcome.result  # after the await: ``total += await ...`` would add to a stale total
                if outcome.stored is not None:
                    stored.append((source, outcome.stored))

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(FILES_IN_FLIGHT_PER_UNIT):
                    group.create_task(worker())
        except BaseExceptionGroup as errors:  # the first failure (the others were cancelled because of it)
            raise errors.exceptions[0] from None
        return total, stored

    async def copy(self, source: Source) -> Outcome:
        """Back up one file; what happened to it."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            reserved = min(source.listed_size, SINGLE_PUT_LIMIT) + 1 if source.listed_size is not None else 0
            await self.limits.memory.acquire(reserved)
            try:
                return await self._copy_once(source, reserved)
            except PathGone:
                log.warning("Skipping %s: it was deleted or replaced after the file list was made.", source.display)
                return VANISHED
            except FileChangedDuringBackup as exc:
                if attempt == READ_ATTEMPTS:
                    return Outcome(CopyResult(files=1, failed=1, failures=(short(str(exc)),)))
                log.info("%s changed while it was read; reading it again (attempt %d).", source.display, attempt + 1)
            except StorageUnavailable:
                raise  # not this file's problem: the activity fails, the host retries it, the backup waits
            except StorageRequestFailed as exc:
                return failed(source.display, exc)
            except OSError as exc:
                return failed(source.display, f"{type(exc).__name__}: {exc.strerror or exc}")
            finally:
                await self.limits.memory.release(reserved)
        raise AssertionError("unreachable")

    async def _copy_once(self, source: Source, reserved: int) -> Outcome:
        """One attempt: a small file (read within ``reserved`` bytes) goes up at once, a bigger one by blocks."""
        read = await in_io_thread(open_and_read, source.open, reserved - 1)
        if isinstance(read, _SmallRead):
            _ensure_unchanged(source.display, read.before, read.after, len(read.data))
            return await self._put_read(source, read)
        try:
            return await self._copy_opened(source, read)
        finally:
            read.close()

    async def _put_read(self, source: Source, read: _SmallRead) -> Outcome:
        if read.md5.hex() == source.known_md5:
            return await self._unchanged(source, read.before, read.md5)
        await self._keep_previous(source)
        await self.store.put_blob(
            self.target.container,
            source.blob,
            read.data,
            read.md5,
            content_type(source.blob),
            metadata(read.before, read.md5),
        )
        return uploaded(read.before, read.md5, len(read.data))

    async def _keep_previous(self, source: Source) -> None:
        """Snapshot the stored copy before it is overwritten: earlier runs' catalogs may need its bytes."""
        if source.stored:
            await self.store.snapshot(self.target.container, source.blob)

    async def _copy_opened(self, source: Source, opened: OpenFile) -> Outcome:
        before = opened.identity
        if before.size <= SINGLE_PUT_LIMIT:
            return await self._put_whole(source, opened, before)
        if source.known_md5 is not None:
            md5, after = await in_io_thread(hash_file, opened.fd)
            _ensure_unchanged(source.display, before, after, after.size)
            if md5.hex() == source.known_md5:
                return await self._unchanged(source, before, md5)
        md5, read = await self._stage_blocks(
            source.blob, opened.fd, before, range(block_count(before.size)), block_bytes(before.size), source.display
        )
        _ensure_unchanged(source.display, before, FileIdentity.of(os.fstat(opened.fd)), read)
        ids = [block_id(identity_tag(before), i) for i in range(block_count(before.size))]
        await self._keep_previous(source)
        await self.store.put_block_list(
            self.target.container, source.blob, ids, md5, content_type(source.blob), metadata(before, md5)
        )
        return uploaded(before, md5, read)

    async def _put_whole(self, source: Source, opened: OpenFile, before: FileIdentity) -> Outcome:
        await self.limits.memory.acquire(before.size + 1)
        try:
            data, md5, after = await in_io_thread(read_whole, opened.fd, before.size)
            _ensure_unchanged(source.display, before, after, len(data))
            return await self._put_read(source, _SmallRead(before, after, data, md5))
        finally:
            await self.limits.memory.release(before.size + 1)

    async def _unchanged(self, source: Source, identity: FileIdentity, md5: bytes) -> Outcome:
        """The stored copy holds these bytes; record the file's times with it so the next run skips it."""
        if not source.stat_matches:
            await self.store.set_metadata(self.target.container, source.blob, metadata(identity, md5))
        return unchanged(identity, md5)

    async def _stage_blocks(
        self,
        blob: str,
        fd: int,
        identity: FileIdentity,
        blocks: range,
        size_of_block: int,
        display: str,
    ) -> tuple[bytes, int]:
        """Read ``blocks`` of the file in order and stage them, ``BLOCKS_IN_FLIGHT`` at a time.

        Returns the MD5 of the bytes read and how many were read. The last block is read one byte past the
        expected end: a file that grew has changed, and nothing more of it is sent.
        """
        digest = hashlib.md5(usedforsecurity=False)
        tag = identity_tag(identity)
        read = 0
        in_flight: set[asyncio.Task[None]] = set()
        try:
            for index in blocks:
                offset = index * size_of_block
                length = min(size_of_block, identity.size + 1 - offset)
                if length <= 0:
                    break
                await self.limits.memory.acquire(length)
                buffer = self.limits.buffers.take(size_of_block)
                try:
                    got, chunk_md5 = await in_io_thread(read_block, fd, offset, buffer, length, digest)
                except BaseException:
                    await self._done_with(buffer, length)
                    raise
                read += got
                if not got:
                    await self._done_with(buffer, length)
                    break
                stage = self._stage(blob, block_id(tag, index), buffer, got, chunk_md5, length)
                in_flight.add(asyncio.create_task(stage))
                if len(in_flight) >= BLOCKS_IN_FLIGHT:
                    done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()
                if got < length:
                    break
            for staged in asyncio.as_completed(list(in_flight)):
                await staged
            in_flight.clear()
        finally:
            for task in in_flight:
                task.cancel()
        return digest.digest(), read

    async def _stage(self, blob: str, block: str, buffer: bytearray, size: int, md5: bytes, reserved: int) -> None:
        try:
            with memoryview(buffer) as view, view[:size] as body:
                await self.store.put_block(self.target.container, blob, block, body, md5)
        finally:
            await self._done_with(buffer, reserved)

    async def _done_with(self, buffer: bytearray, reserved: int) -> None:
        self.limits.buffers.give_back(buffer)
        await self.limits.memory.release(reserved)

    # ---- large files, across activities ---------------------------------------------------------------

    async def stage_segment(self, source: Source, listed: FileIdentity, segments: int, index: int) -> int:
        """Stage segment ``index`` of ``segments`` of a large file; returns the bytes staged."""
        opened = await self._open_as_listed(source, listed)
        try:
            per_segment = math.ceil(block_count(listed.size) / segments)
            first = index * per_segment
            blocks = range(first, min(first + per_segment, block_count(listed.size)))
            size_of_block = block_bytes(listed.size)
            _, read = await self._stage_blocks(source.blob, opened.fd, listed, blocks, size_of_block, source.display)
            expected = min(listed.size, blocks.stop * size_of_block) - blocks.start * size_of_block
            _ensure_unchanged(source.display, listed, FileIdentity.of(os.fstat(opened.fd)), read, expected)
            return expected
        finally:
            opened.close()

    async def commit_segments(self, source: Source, listed: FileIdentity) -> Outcome:
        """Commit a large file's staged blocks, with the MD5 of the file as it still is."""
        opened = await self._open_as_listed(source, listed)
        try:
            md5, after = await in_io_thread(hash_file, opened.fd)
            _ensure_unchanged(source.display, listed, after, after.size)
            ids = [block_id(identity_tag(listed), i) for i in range(block_count(listed.size))]
            await self._keep_previous(source)
            await self.store.put_block_list(
                self.target.container, source.blob, ids, md5, content_type(source.blob), metadata(listed, md5)
            )
            return uploaded(listed, md5, listed.size)
        finally:
            opened.close()

    async def _open_as_listed(self, source: Source, listed: FileIdentity) -> OpenFile:
        """Open the file and require it to be the very file the listing saw (same inode, size and times)."""
        try:
            opened = await in_io_thread(source.open)
        except PathGone as exc:
            raise FileChangedDuringBackup(
                f"{short(source.display, 160)}: it was deleted or replaced while it was backed up."
            ) from exc
        if not same_file(opened.identity, listed):
            opened.close()
            raise FileChangedDuringBackup(
                f"{short(source.display, 160)}: it changed while it was backed up; the next run backs it up again."
            )
        return opened


def same_file(a: FileIdentity, b: FileIdentity) -> bool:
    """The same file, unchanged. The device is left out: it differs between instances sharing one mount."""
    return (a.ino, a.size, a.mtime_ns, a.ctime_ns) == (b.ino, b.size, b.mtime_ns, b.ctime_ns)


def _ensure_unchanged(
    display: str, before: FileIdentity, after: FileIdentity, read: int, expected: int | None = None
) -> None:
    if read != (before.size if expected is None else expected) or not same_file(before, after):
        raise FileChangedDuringBackup(
            f"{short(display, 160)}: it changed while it was being backed up ({before.size} bytes expected, "
            f"{after.size} now); the next run backs it up again."
        )


def read_whole(fd: int, size: int) -> tuple[bytes, bytes, FileIdentity]:
    """The file's bytes (one more than expected, if there are more), their MD5, and the stat after reading."""
    os.lseek(fd, 0, os.SEEK_SET)
    data = read_up_to(fd, size + 1)
    return data, hashlib.md5(data, usedforsecurity=False).digest(), FileIdentity.of(os.fstat(fd))


def read_block(fd: int, offset: int, buffer: bytearray, length: int, digest: Any) -> tuple[int, bytes]:
    """Read up to ``length`` bytes at ``offset`` into ``buffer``; returns how many and their MD5.

    The bytes are also fed to the whole-file ``digest`` (blocks are read in order).
    """
    got = 0
    with memoryview(buffer) as view:
        while got < length:
            n = os.preadv(fd, [view[got:length]], offset + got)
            if n == 0:
                break
            got += n
        digest.update(view[:got])
        return got, hashlib.md5(view[:got], usedforsecurity=False).digest()


def hash_file(fd: int) -> tuple[bytes, FileIdentity]:
    """The MD5 of the whole file, read in blocks, and its stat after reading."""
    digest = hashlib.md5(usedforsecurity=False)
    offset = 0
    while chunk := os.pread(fd, BLOCK_BYTES, offset):
        digest.update(chunk)
        offset += len(chunk)
    after = FileIdentity.of(os.fstat(fd))
    if offset != after.size:
        after = FileIdentity(after.dev, after.ino, offset, after.mtime_ns, after.ctime_ns)
    return digest.digest(), after


def block_bytes(size: int) -> int:
    """The block size for a file: ``BLOCK_BYTES``, grown in MiB steps to stay within the block limit."""
    return max(BLOCK_BYTES, math.ceil(size / MAX_BLOCKS / MiB) * MiB)


def block_count(size: int) -> int:
    return max(1, math.ceil(size / block_bytes(size)))


def identity_tag(identity: FileIdentity) -> str:
    """Part of every block id: a retried or concurrent copy of the same file version stages the same blocks,
    and blocks of another version can never be mixed in."""
    text = f"{identity.ino}:{identity.size}:{identity.mtime_ns}:{identity.ctime_ns}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def block_id(tag: str, index: int) -> str:
    """A block id; every id of a blob has the same length, as storage requires."""
    return base64.b64encode(f"{tag}-{index:06d}".encode()).decode()


def content_type(name: str) -> str:
    # The encoding guess (e.g. gzip for .tar.gz) is left out on purpose: a Content-Encoding header would make
    # HTTP clients unpack the backup copy on download.
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def metadata(identity: FileIdentity, md5: bytes) -> dict[str, str]:
    """What the next run compares the file with to skip it without reading it."""
    recorded = {SIZE_KEY: str(identity.size), MTIME_KEY: str(identity.mtime_ns), MD5_KEY: md5.hex()}
    if time.time_ns() - max(identity.mtime_ns, identity.ctime_ns) > RACY_SECONDS * 1_000_000_000:
        recorded[CTIME_KEY] = str(identity.ctime_ns)
    return recorded


def stored_copy_matches(stored: Any, identity: FileIdentity) -> bool:
    """Whether a stored blob records exactly this file version (size, mtime and ctime) with a consistent MD5."""
    meta = stored.metadata
    return (
        meta.get(SIZE_KEY) == str(identity.size)
        and meta.get(MTIME_KEY) == str(identity.mtime_ns)
        and meta.get(CTIME_KEY) == str(identity.ctime_ns)
        and stored.content_md5 is not None
        and meta.get(MD5_KEY) == stored.content_md5.hex()
    )
