"""Copy one file into a blob: streamed, verified, idempotent, and skipped when unchanged.

Small files go up in one Put Blob; larger ones as blocks staged in parallel while the file is
read once, in order, so the whole-file MD5 comes from exactly the bytes sent. Nothing becomes
visible until the final commit, and the commit only happens when the file did not change while
it was read: a blob is either the complete old copy or the complete new one.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import mimetypes
import os
import uuid
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobClient, ContainerClient, ContentSettings

from .errors import FileChangedDuringBackup
from .fsaccess import FileIdentity, OpenFile, PathGone, open_regular_file, read_up_to
from .naming import blob_name_for

log = logging.getLogger(__name__)

BLOCK_SIZE = 4 * 1024 * 1024
SINGLE_PUT_LIMIT = BLOCK_SIZE
UPLOAD_CONCURRENCY = 4
MAX_BLOCKS = 50_000
READ_ATTEMPTS = 3

SIZE_KEY, MTIME_KEY, MD5_KEY = "source_size", "source_mtime_ns", "source_md5"

Outcome = Literal["uploaded", "unchanged", "missing"]


@dataclass(frozen=True)
class FileBackup:
    """What happened to one file; ``size`` is the number of bytes the backup now holds for it."""

    path: str
    blob_name: str
    size: int
    outcome: Outcome


def backup_file(
    container: ContainerClient, path: str, roots: Sequence[Path], block_size: int = BLOCK_SIZE
) -> FileBackup:
    """Back up ``path`` into ``container`` under its blob name; safe to run any number of times.

    The file is opened below its allowed root without following symlinks (``fsaccess``), and every byte
    and every stat comes through that one descriptor.
    """
    blob_name = blob_name_for(path)
    blob = container.get_blob_client(blob_name)
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            opened = open_regular_file(path, roots)
        except PathGone:
            log.warning("Skipping %s: it was deleted (or replaced) after the file list was made.", path)
            return FileBackup(path, blob_name, 0, "missing")
        try:
            if _blob_holds(blob, opened):
                return FileBackup(path, blob_name, opened.stat.st_size, "unchanged")
            size = _upload(blob, path, opened, block_size)
            return FileBackup(path, blob_name, size, "uploaded")
        except FileChangedDuringBackup:
            if attempt == READ_ATTEMPTS:
                raise
            log.info("%s changed while it was read; reading it again (attempt %d).", path, attempt + 1)
        finally:
            opened.close()
    raise AssertionError("unreachable")


def _blob_holds(blob: BlobClient, opened: OpenFile) -> bool:
    """True when the blob's recorded source size, mtime and MD5 all match the file now."""
    try:
        props = blob.get_blob_properties()
    except ResourceNotFoundError:
        return False
    meta = props.metadata or {}
    if meta.get(SIZE_KEY) != str(opened.stat.st_size) or meta.get(MTIME_KEY) != str(opened.stat.st_mtime_ns):
        return False
    stored_md5 = props.content_settings.content_md5
    local_md5 = _md5_of(opened.fd)
    return meta.get(MD5_KEY) == local_md5.hex() and bytes(stored_md5 or b"") == local_md5


def _md5_of(fd: int) -> bytes:
    digest = hashlib.md5(usedforsecurity=False)
    offset = 0
    while chunk := os.pread(fd, BLOCK_SIZE, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.digest()


def _upload(blob: BlobClient, path: str, opened: OpenFile, block_size: int) -> int:
    before = opened.identity
    os.lseek(opened.fd, 0, os.SEEK_SET)
    if before.size <= min(block_size, SINGLE_PUT_LIMIT):
        data = read_up_to(opened.fd, before.size + 1)  # one byte more than expected already means "changed"
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        _ensure_unchanged(opened, path, before, len(data))
        blob.upload_blob(
            data,
            overwrite=True,
            validate_content=True,
            content_settings=_content_settings(path, md5),
            metadata=_metadata(before, md5),
        )
        return len(data)
    block_ids, md5, read = _stage_blocks(blob, opened.fd, _block_size_for(before.size, block_size), before.size)
    _ensure_unchanged(opened, path, before, read)
    blob.commit_block_list(
        [BlobBlock(block_id=b) for b in block_ids],
        content_settings=_content_settings(path, md5),
        metadata=_metadata(before, md5),
    )
    return read


def _stage_blocks(blob: BlobClient, fd: int, block_size: int, size: int) -> tuple[list[str], bytes, int]:
    """Read the file once, in order, staging up to UPLOAD_CONCURRENCY blocks at a time.

    Reading stops one byte past the expected ``size``: a file that grew is then known to have
    changed, and nothing more of it is sent.
    """
    digest = hashlib.md5(usedforsecurity=False)
    attempt = uuid.uuid4().hex  # block ids unique to this attempt: a concurrent re-run cannot mix in
    block_ids: list[str] = []
    read = 0
    in_flight: set[Future[object]] = set()
    with ThreadPoolExecutor(max_workers=UPLOAD_CONCURRENCY, thread_name_prefix="stage-block") as pool:
        while read <= size and (chunk := read_up_to(fd, min(block_size, size + 1 - read))):
            digest.update(chunk)
            read += len(chunk)
            block_id = base64.b64encode(f"{attempt}-{len(block_ids):06d}".encode()).decode()
            block_ids.append(block_id)
            in_flight.add(pool.submit(blob.stage_block, block_id, chunk, validate_content=True))
            if len(in_flight) >= UPLOAD_CONCURRENCY:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
        for future in in_flight:
            future.result()
    return block_ids, digest.digest(), read


def _block_size_for(size: int, block_size: int) -> int:
    """Grow the block size when needed so that no blob exceeds the service's block limit."""
    return max(block_size, math.ceil(size / MAX_BLOCKS))


def _ensure_unchanged(opened: OpenFile, path: str, before: FileIdentity, read: int) -> None:
    """The bytes read are a consistent copy only if the file's size, mtime and ctime did not move."""
    after = FileIdentity.of(os.fstat(opened.fd))
    if read != before.size or after != before:
        raise FileChangedDuringBackup(
            f"{path!r} changed while it was being backed up ({before.size} bytes expected, {read} read)."
        )


def _content_settings(path: str, md5: bytes) -> ContentSettings:
    # The encoding guess (e.g. gzip for .tar.gz) is left out on purpose: a Content-Encoding
    # header would make HTTP clients unpack the backup copy on download.
    content_type, _ = mimetypes.guess_type(path)
    return ContentSettings(content_type=content_type or "application/octet-stream", content_md5=bytearray(md5))


def _metadata(identity: FileIdentity, md5: bytes) -> dict[str, str]:
    return {SIZE_KEY: str(identity.size), MTIME_KEY: str(identity.mtime_ns), MD5_KEY: md5.hex()}
