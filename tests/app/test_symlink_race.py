"""No file from outside the allowed roots gets into a backup, even while the tree is being swapped.

The attack: inside the root, a directory and a symlink to a directory outside the roots trade places
(``renameat2(RENAME_EXCHANGE)``) over and over while a backup lists and copies. Whatever moment a check
and an open fall on, no byte and no name from outside may reach storage. Real Azurite, real rename
system calls; the race is real, so on code that checks a path and then opens it again the outside
files show up within a few thousand attempts, and on correct code they never can.
"""

import contextlib
import ctypes
import errno
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from site_backup.errors import BackupError
from site_backup.fsaccess import PathGone, open_file_below, open_regular_file
from tests.support.worker import call_activity

RENAME_EXCHANGE = 2
AT_FDCWD = -100
SECRET = b"SECRET outside the allowed roots\n"
RACE_SECONDS = 3.0


def exchange(a: Path, b: Path) -> None:
    """Atomically swap two names (Linux renameat2 with RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def renameat2_available(tmp_path: Path) -> bool:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    try:
        exchange(tmp_path / "x", tmp_path / "y")
    except (OSError, AttributeError):
        return False
    return True


@pytest.fixture
def swapped_tree(tmp_path, monkeypatch) -> Iterator[tuple[Path, Path]]:
    """``allowed/site/d`` holds harmless files; ``allowed/site/d-link`` points at ``outside`` with the same names."""
    if not renameat2_available(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available on this kernel/file system")
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    site = allowed / "site"
    (site / "d").mkdir(parents=True)
    outside.mkdir()
    for i in range(16):
        (site / "d" / f"f{i}.txt").write_bytes(b"harmless inside the root\n")
        (outside / f"f{i}.txt").write_bytes(SECRET)
        (outside / f"only-outside-{i}.txt").write_bytes(SECRET)
    (site / "d-link").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(allowed))
    yield site, outside


@contextmanager
def swapping(site: Path) -> Iterator[None]:
    """Swap ``site/d`` and ``site/d-link`` as fast as possible until the block ends."""
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            exchange(site / "d", site / "d-link")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if (site / "d").is_symlink():
            exchange(site / "d", site / "d-link")


def test_the_copy_never_reads_through_a_swapped_in_symlink(azurite, swapped_tree, monkeypatch):
    site, _ = swapped_tree
    container = f"t{uuid.uuid4().hex[:20]}"
    monkeypatch.setenv("BACKUP_STORAGE", azurite.connection_string)
    monkeypatch.setenv("BACKUP_CONTAINER", container)
    paths = [str(site / "d" / f"f{i}.txt") for i in range(16)]
    copied = 0
    with swapping(site):
        deadline = time.monotonic() + RACE_SECONDS
        while time.monotonic() < deadline:
            for path in paths:
                # A copy may fail while its file is swapped ("changed while it was read"); it may not leak.
                with contextlib.suppress(BackupError, OSError):
                    copied += int(call_activity("E2_CopyFileToBlob", json.dumps(path))) > 0
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    contents = {b.name: client.download_blob(b.name).readall() for b in client.list_blobs()}
    assert copied > 0, "the race never let a copy through: the test proved nothing"
    leaked = sorted(name for name, data in contents.items() if data == SECRET)
    assert leaked == [], f"files from outside the allowed roots were backed up: {leaked}"


def test_work_units_never_read_through_a_swapped_in_symlink(azurite, swapped_tree, monkeypatch):
    """The backup's own path: a listed page's units copied while the tree is swapped."""
    site, _ = swapped_tree
    container = f"t{uuid.uuid4().hex[:20]}"
    monkeypatch.setenv("BACKUP_STORAGE", azurite.connection_string)
    monkeypatch.setenv("BACKUP_CONTAINER", container)
    monkeypatch.setenv("BACKUP_CATALOG_CONTAINER", f"{container}-catalog")
    page = {"request": {"rootDirectory": str(site)}, "run": "race", "cursor": {"nextUnit": 0}, "tuning": None}
    units = json.loads(call_activity("E2_GetFileList", json.dumps(page)))["units"]
    copied = 0
    with swapping(site):
        deadline = time.monotonic() + RACE_SECONDS
        while time.monotonic() < deadline:
            for unit in units:
                copied += json.loads(call_activity("E2_CopyFileToBlob", json.dumps(unit)))["uploaded"]
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    contents = {b.name: client.download_blob(b.name).readall() for b in client.list_blobs()}
    assert copied > 0
    assert sorted(name for name, data in contents.items() if data == SECRET) == []


def test_the_listing_never_enters_a_swapped_in_symlink(swapped_tree):
    site, _ = swapped_tree
    listings = 0
    seen: set[str] = set()
    with swapping(site):
        deadline = time.monotonic() + RACE_SECONDS
        while time.monotonic() < deadline:
            try:
                seen.update(Path(p).name for p in json.loads(call_activity("E2_GetFileList", json.dumps(str(site)))))
            except (BackupError, OSError):  # a listing may fail while its tree is swapped; it may not leak
                continue
            listings += 1
    assert listings > 0
    assert not {name for name in seen if name.startswith("only-outside")}


def test_a_symlink_anywhere_below_the_root_is_never_followed(tmp_path):
    """The deterministic core of both: opening goes component by component, refusing every symlink."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"inside")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f").write_bytes(SECRET)
    (tmp_path / "link").symlink_to(tmp_path / "outside")
    root_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        opened = open_file_below(root_fd, ["real", "f"])
        assert os.read(opened.fd, 100) == b"inside"
        opened.close()
        with pytest.raises(PathGone):
            open_file_below(root_fd, ["link", "f"])
    finally:
        os.close(root_fd)


def test_a_fifo_in_place_of_a_file_is_not_opened_for_a_blocking_read(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(PathGone):
        open_regular_file(str(tmp_path / "pipe"), [tmp_path])


def test_a_listed_symlink_to_a_file_inside_the_root_is_still_backed_up(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file.txt").write_bytes(b"target")
    (tmp_path / "alias.txt").symlink_to(tmp_path / "dir" / "file.txt")
    opened = open_regular_file(str(tmp_path / "alias.txt"), [tmp_path])
    try:
        assert os.read(opened.fd, 100) == b"target"
    finally:
        opened.close()
    (tmp_path / "escape.txt").symlink_to("/etc/hostname")
    with pytest.raises(PathGone) as raised:
        open_regular_file(str(tmp_path / "escape.txt"), [tmp_path])
    assert raised.value.__cause__ is None or raised.value.__cause__.errno in (errno.ELOOP, errno.ENOENT)
