"""The backup package and its activities against a real Azurite (no storage mocks).

Most tests run a whole backup in this process: the real plan deciding, the real activities called as the
worker calls them (``tests/support/local_run.py``).
"""

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import pytest
from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ResourceTypes,
    generate_account_sas,
)

from site_backup.copier import (
    BLOCK_BYTES,
    CTIME_KEY,
    MD5_KEY,
    MTIME_KEY,
    RACY_SECONDS,
    READ_ATTEMPTS,
    SINGLE_PUT_LIMIT,
    SIZE_KEY,
)
from site_backup.errors import DirectoryNotAllowed, InvalidBackupRequest
from site_backup.naming import blob_name_for
from site_backup.walk import TreeWalk
from tests.support.local_run import run_locally
from tests.support.worker import call_activity

AWKWARD = {
    "plain.txt": b"hello\n",
    "with space/file name.txt": b"spaces in both\n",
    "unicode/ünïcødé-文件.md": "grüße 世界\n".encode(),
    "hash#and%percent/50%#1.csv": b"a,b\n1,2\n",
    "empty.bin": b"",
    "deep/" + "/".join(f"level{i}" for i in range(25)) + "/leaf.json": b'{"deep": true}',
    "big/large.bin": os.urandom(BLOCK_BYTES + 123_457),
}


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "site"
    write(root, AWKWARD)
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    return root


def write(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def tune(monkeypatch, **values: int) -> None:
    monkeypatch.setenv("BACKUP_TUNING", json.dumps(values))


def blob_state(container: ContainerClient) -> dict[str, tuple[str, object]]:
    return {b.name: (b.etag, b.last_modified) for b in container.list_blobs()}


def activity(name: str, value: object) -> object:
    return json.loads(call_activity(name, json.dumps(value)))


def test_every_blob_equals_its_file(tree, container):
    run = run_locally(str(tree))
    assert run.error is None
    assert run.output == sum(len(d) for d in AWKWARD.values())
    blobs = {b.name: b for b in container.list_blobs(include=["metadata"])}
    assert len(blobs) == len(AWKWARD)
    for rel, data in AWKWARD.items():
        name = blob_name_for(tree / rel)
        assert name == str(tree / rel).lstrip("/")
        assert container.download_blob(name).readall() == data, rel
        md5 = hashlib.md5(data).digest()
        assert bytes(blobs[name].content_settings.content_md5) == md5, rel
        st = (tree / rel).stat()
        assert blobs[name].metadata[MD5_KEY] == md5.hex()
        assert blobs[name].metadata[SIZE_KEY] == str(st.st_size)
        assert blobs[name].metadata[MTIME_KEY] == str(st.st_mtime_ns)
    assert blobs[blob_name_for(tree / "plain.txt")].content_settings.content_type == "text/plain"
    assert run.status["filesUploaded"] == len(AWKWARD) and run.status["phase"] == "completed"


def test_the_work_area_is_emptied_at_the_end(tree, container, azurite):
    run_locally(str(tree))
    catalog = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
        f"{container.container_name}-catalog"
    )
    assert list(catalog.list_blobs(name_starts_with="work/")) == []


def settle() -> None:
    """Let the files' change times age past the "just modified" window, so their copies record them."""
    time.sleep(RACY_SECONDS + 0.2)


def test_an_unchanged_rerun_reads_no_file_and_uploads_nothing(tree, container):
    settle()
    first = run_locally(str(tree))
    before = blob_state(container)
    again = run_locally(str(tree))
    assert again.output == first.output  # the backup still holds every byte
    assert blob_state(container) == before
    assert again.status["filesUnchanged"] == len(AWKWARD)
    assert [c.step.value for c in again.calls] == ["count", "list", "finish"]  # no copy activity at all


def test_a_changed_file_of_the_same_size_is_uploaded_again(tree, container):
    run_locally(str(tree))
    path = tree / "plain.txt"
    before = blob_state(container)
    path.write_bytes(b"HELLO\n")
    run_locally(str(tree))
    after = blob_state(container)
    name = blob_name_for(path)
    assert after[name] != before[name]
    assert container.download_blob(name).readall() == b"HELLO\n"


def test_same_size_and_restored_mtime_is_still_a_change(tree, container):
    """A rewrite that keeps the size and puts the mtime back still moves the ctime, which cannot be set."""
    run_locally(str(tree))
    path = tree / "hash#and%percent/50%#1.csv"
    st = path.stat()
    path.write_bytes(b"x,y\n3,4\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    run_locally(str(tree))
    assert container.download_blob(blob_name_for(path)).readall() == b"x,y\n3,4\n"


def test_verify_rehashes_the_files_instead_of_trusting_their_times(tree, container):
    """A stored copy that records the file's very size and times but holds other bytes (the file changed again
    within one timestamp tick, say) is only caught by reading the file: what ``verify`` does."""
    settle()
    run_locally(str(tree))
    name = blob_name_for(tree / "plain.txt")
    blob = container.get_blob_client(name)
    recorded = dict(blob.get_blob_properties().metadata)
    recorded[MD5_KEY] = hashlib.md5(b"other!").hexdigest()
    blob.upload_blob(b"other!", overwrite=True, metadata=recorded)  # same size as "hello\n"
    trusting = run_locally(str(tree))
    assert container.download_blob(name).readall() == b"other!"
    assert trusting.status["filesUploaded"] == 0
    verified = run_locally({"rootDirectory": str(tree), "verify": True})
    assert container.download_blob(name).readall() == b"hello\n"
    assert verified.status["filesUploaded"] == 1
    assert verified.status["filesUnchanged"] == len(AWKWARD) - 1


def test_a_stored_copy_without_times_is_hashed_not_uploaded_again(tree, container):
    """Copies made by an earlier version (no ctime recorded) cost a read and a metadata update, not an upload."""
    run_locally(str(tree))
    name = blob_name_for(tree / "plain.txt")
    blob = container.get_blob_client(name)
    metadata = dict(blob.get_blob_properties().metadata)
    metadata.pop(CTIME_KEY, None)
    blob.set_blob_metadata(metadata)
    run = run_locally(str(tree))
    assert run.status["filesUploaded"] == 0
    assert container.download_blob(name).readall() == b"hello\n"


def test_a_file_modified_just_now_is_not_recorded_as_settled(tmp_path, container, monkeypatch):
    """Within the same timestamp tick a file could change again unseen; its copy waits a run for its ctime."""
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    (tmp_path / "fresh.txt").write_bytes(b"just written")
    run_locally(str(tmp_path))
    name = blob_name_for(tmp_path / "fresh.txt")
    assert CTIME_KEY not in container.get_blob_client(name).get_blob_properties().metadata
    settle()
    again = run_locally(str(tmp_path))
    assert again.status["filesUploaded"] == 0  # hashed: the same bytes, so only its record is completed
    assert CTIME_KEY in container.get_blob_client(name).get_blob_properties().metadata


def test_a_file_deleted_after_the_listing_counts_as_vanished(tree, container, monkeypatch):
    page = activity("E2_GetFileList", page_request(str(tree)))
    (tree / "plain.txt").unlink()
    results = [activity("E2_CopyFileToBlob", unit) for unit in page["units"]]
    assert sum(r["vanished"] for r in results) == 1
    assert sum(r["failed"] for r in results) == 0
    assert blob_name_for(tree / "plain.txt") not in blob_state(container)


def page_request(root: str, cursor: dict | None = None, **request: object) -> dict:
    return {
        "request": {"rootDirectory": root, **request},
        "run": f"r{uuid.uuid4().hex}",
        "cursor": cursor or {"after": None, "marker": None, "nextUnit": 0},
        "tuning": None,
    }


def test_two_roots_never_collide(tmp_path, container, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    for site in ("one", "two"):
        (tmp_path / site / "logs").mkdir(parents=True)
        (tmp_path / site / "logs" / "app.log").write_text(site)
        run_locally(str(tmp_path / site))
    names = sorted(blob_state(container))
    assert names == [blob_name_for(tmp_path / s / "logs" / "app.log") for s in ("one", "two")]


def listed(root: Path, **request: object) -> list[str]:
    return [
        Path(f).relative_to(root).as_posix()
        for f in activity("E2_GetFileList", {"rootDirectory": str(root), **request})
    ]


def test_symlinks_stay_inside_the_root_and_never_loop(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    root = tmp_path / "root"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "file.txt").write_text("in")
    (tmp_path / "secret.txt").write_text("out")
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (root / "escape-dir").symlink_to(tmp_path)
    (root / "dir" / "loop").symlink_to(root)
    (root / "alias.txt").symlink_to(root / "dir" / "file.txt")
    assert set(listed(root)) == {"dir/file.txt", "alias.txt"}


def test_a_symlink_to_a_file_inside_the_root_is_backed_up_with_the_target_bytes(tmp_path, container, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file.txt").write_text("target")
    (tmp_path / "alias.txt").symlink_to(tmp_path / "dir" / "file.txt")
    assert run_locally(str(tmp_path)).output == 12
    assert container.download_blob(blob_name_for(tmp_path / "alias.txt")).readall() == b"target"
    # Under the link's own name (its absolute path without the leading "/"), not only under its target's:
    # two blobs, the link's holding the target's bytes.
    link_name = str(tmp_path / "alias.txt").lstrip("/")
    assert sorted(blob_state(container)) == sorted([link_name, str(tmp_path / "dir" / "file.txt").lstrip("/")])
    assert container.download_blob(link_name).readall() == b"target"


def test_include_and_exclude_patterns(tree):
    assert set(listed(tree, include=["*.txt", "*.md"], exclude=["with space/**"])) == {
        "plain.txt",
        "unicode/ünïcødé-文件.md",
    }
    rest = listed(tree, exclude=["deep", "big"])
    assert not any(f.startswith(("deep/", "big/")) for f in rest) and "plain.txt" in rest


def test_activities_refuse_paths_outside_the_allowed_roots(tree, container, monkeypatch, tmp_path):
    outside = tmp_path.parent / f"outside-{uuid.uuid4().hex}.txt"
    outside.write_text("not yours")
    try:
        with pytest.raises(DirectoryNotAllowed):
            call_activity("E2_CopyFileToBlob", json.dumps(str(outside)))
        with pytest.raises(DirectoryNotAllowed):
            call_activity("E2_GetFileList", json.dumps(str(tmp_path.parent)))
        with pytest.raises(InvalidBackupRequest):
            call_activity("E2_CopyFileToBlob", json.dumps("relative/path.txt"))
    finally:
        outside.unlink()
    assert not container.exists() or blob_state(container) == {}


def test_a_forged_manifest_cannot_reach_outside_the_root(tree, container, azurite):
    """Manifests live in storage; one written by hand may not climb out with '..' or name another root."""
    catalog = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(
        f"{container.container_name}-catalog"
    )
    catalog.create_container()
    climbing = {
        "version": 1,
        "run": "forged",
        "root": str(tree),
        "rootIno": tree.stat().st_ino,
        "prefix": "x/",
        "entries": [["../../etc/passwd", 1, 0, 0, 0, None, None, 0, 0]],
    }
    catalog.upload_blob("work/forged/00000001.json", json.dumps(climbing))
    unit = {"number": 1, "manifest": "work/forged/00000001.json", "files": 1, "bytes": 1}
    with pytest.raises(InvalidBackupRequest, match="not a relative path below the root"):
        call_activity("E2_CopyFileToBlob", json.dumps(unit))
    elsewhere = {**climbing, "root": "/etc", "entries": [["passwd", 1, 0, 0, 0, None, None, 0, 0]]}
    catalog.upload_blob("work/forged/00000002.json", json.dumps(elsewhere))
    with pytest.raises(DirectoryNotAllowed):
        call_activity("E2_CopyFileToBlob", json.dumps({**unit, "manifest": "work/forged/00000002.json"}))
    assert not container.exists() or blob_state(container) == {}


def test_a_copy_on_an_instance_without_the_listed_directory_fails_its_files(tree, container, monkeypatch, tmp_path):
    """Scale-out without shared storage: the listed root is not there (or is another directory) elsewhere."""
    page = activity("E2_GetFileList", page_request(str(tree)))
    moved = tmp_path / "moved"
    tree.rename(moved)
    tree.mkdir()  # a directory of the same name, but not the one that was listed
    results = [activity("E2_CopyFileToBlob", unit) for unit in page["units"]]
    assert sum(r["failed"] for r in results) == len(AWKWARD)
    assert "not the one that was listed" in results[0]["failures"][0]


def test_very_deep_tree_is_listed_without_recursion_limits(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    deep = tmp_path
    for _ in range(1_200):  # one level at a time: mkdir(parents=True) itself recurses per level
        deep = deep / "d"
        deep.mkdir()
    (deep / "leaf").write_text("x")
    try:
        assert activity("E2_GetFileList", str(tmp_path)) == [str(deep / "leaf")]
    finally:  # pytest's own clean-up (shutil.rmtree) recurses per level, so remove it here
        (deep / "leaf").unlink()
        while deep != tmp_path:
            deep.rmdir()
            deep = deep.parent


def test_a_path_too_long_for_a_blob_name_fails_clearly_and_the_rest_is_backed_up(tmp_path, container, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    deep = tmp_path.joinpath(*["d"] * 300)
    deep.mkdir(parents=True)
    (deep / "leaf").write_text("x")
    (tmp_path / "ok.txt").write_text("fine")
    run = run_locally(str(tmp_path))
    assert run.error is not None and "cannot be a blob name" in run.error and "exclude" in run.error
    assert run.error.startswith("1 of 2 file(s) could not be backed up (the other 1, 4 bytes, were)")
    assert list(blob_state(container)) == [blob_name_for(tmp_path / "ok.txt")]


def test_pages_and_units_cover_the_tree_exactly_once_in_blob_name_order(tmp_path, container, monkeypatch):
    """Small pages and units, names that sort differently as paths and as blob names ("a-c" before "a/b")."""
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    names = ["a/b", "a-c", "a/z/1", "a/z/2", "b", "c/d/e/f", "c/d/g", "ü", "#x", "%y", "a.txt", "a b/c"]
    write(tmp_path, {n: n.encode() for n in names})
    everything = activity("E2_GetFileList", str(tmp_path))
    assert [Path(f).relative_to(tmp_path).as_posix() for f in everything] == sorted(names)
    tune(monkeypatch, batchFiles=2, pageUnits=2)
    run = run_locally(str(tmp_path))
    assert run.output == sum(len(n.encode()) for n in names)
    pages = [c for c in run.calls if c.step.value == "list"]
    assert len(pages) == 3
    assert sorted(blob_state(container)) == sorted(blob_name_for(tmp_path / n) for n in names)


def test_a_malformed_cursor_is_refused(tmp_path, container, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidBackupRequest, match="cursor"):
        call_activity("E2_GetFileList", json.dumps(page_request(str(tmp_path), {"after": "/etc/x", "nextUnit": 0})))


def test_a_sas_connection_string_can_back_up(azurite, tmp_path, monkeypatch):
    """No account key in the settings: a SAS, without the right to create containers, given existing ones."""
    name = f"t{uuid.uuid4().hex[:20]}"
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.create_container(name)
    service.create_container(f"{name}-catalog")
    sas = generate_account_sas(
        service.account_name,
        service.credential.account_key,
        resource_types=ResourceTypes(container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True, add=True, create=True, delete=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    monkeypatch.setenv("BACKUP_STORAGE", f"BlobEndpoint={azurite.blob_endpoint};SharedAccessSignature={sas}")
    monkeypatch.setenv("BACKUP_CONTAINER", name)
    monkeypatch.setenv("BACKUP_CATALOG_CONTAINER", f"{name}-catalog")
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    (tmp_path / "f.txt").write_text("least privilege")
    assert run_locally(str(tmp_path)).output == 15
    assert call_activity("E2_CopyFileToBlob", json.dumps(str(tmp_path / "f.txt"))) == "15"
    blob = service.get_container_client(name).download_blob(blob_name_for(tmp_path / "f.txt"))
    assert blob.readall() == b"least privilege"


def test_the_seed_contract_copies_one_path_and_returns_its_bytes(tree, container):
    path = tree / "with space" / "file name.txt"
    assert call_activity("E2_CopyFileToBlob", json.dumps(str(path))) == str(len(AWKWARD["with space/file name.txt"]))
    assert container.download_blob(blob_name_for(path)).readall() == b"spaces in both\n"
    assert call_activity("E2_CopyFileToBlob", json.dumps(str(tree / "gone.txt"))) == "0"


def test_backslash_in_a_name_never_merges_two_files(tmp_path, container, monkeypatch):
    """Blob Storage turns a backslash into a slash: "x\\y" and "x/y" must stay two blobs."""
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "y").write_text("y inside x")
    (tmp_path / "x\\y").write_text("one file named x-backslash-y")
    run_locally(str(tmp_path))
    again = run_locally(str(tmp_path))  # a second run: each is still its own blob
    assert again.error is None
    # Both unchanged: each file finds its own stored copy, so nothing is uploaded, and no copy is overwritten
    # (an overwrite snapshots the stored blob first). A run that merged the two names would upload again.
    assert (again.status["filesUnchanged"], again.status["filesUploaded"], again.status["filesDone"]) == (2, 0, 2)
    assert [b.name for b in container.list_blobs(include=["snapshots"]) if b.snapshot] == []
    names = sorted(blob_state(container))
    assert names == sorted([blob_name_for(tmp_path / "x" / "y"), blob_name_for(tmp_path) + "/x%5Cy"])
    assert container.download_blob(blob_name_for(tmp_path / "x\\y")).readall() == b"one file named x-backslash-y"
    assert container.download_blob(blob_name_for(tmp_path / "x" / "y")).readall() == b"y inside x"


def test_names_that_are_not_utf8_are_backed_up(tmp_path, container, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt")
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    listing = activity("E2_GetFileList", str(tmp_path))
    assert len(listing) == 1 and listing[0].isascii()  # travels safely through any JSON host
    assert call_activity("E2_CopyFileToBlob", json.dumps(listing[0])) == "12"
    assert run_locally(str(tmp_path)).output == 12
    [name] = blob_state(container)
    assert name == blob_name_for(tmp_path) + "/caf%E9.txt"
    assert container.download_blob(name).readall() == b"latin-1 name"


def test_symlinked_directories_are_not_copied_twice_and_pages_agree(tmp_path, container, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    write(tmp_path, {name: name.encode() for name in ("a/f0", "a/f1", "a/f2", "b0", "b1", "b2")})
    (tmp_path / "c_link").symlink_to(tmp_path / "a")
    assert listed(tmp_path) == ["a/f0", "a/f1", "a/f2", "b0", "b1", "b2"]
    tune(monkeypatch, batchFiles=1, pageUnits=2)
    assert run_locally(str(tmp_path)).output == 18
    assert len(blob_state(container)) == 6


def test_names_that_would_share_a_blob_are_refused_not_merged(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    (tmp_path / "a\\b").write_text("backslash")
    (tmp_path / "a%5Cb").write_text("literal percent")
    with pytest.raises(InvalidBackupRequest, match=r"same blob name 'a%5Cb'.*exclude"):
        call_activity("E2_GetFileList", json.dumps(str(tmp_path)))
    assert len(listed(tmp_path, exclude=["a%5Cb"])) == 1


def test_a_file_that_changes_on_every_read_is_read_three_times_then_reported_failed(tmp_path, container, monkeypatch):
    """README: the commit happens only if the file's identity did not change while it was read; otherwise the
    file is read again, up to 3 times, and then reported as failed. A real thread appends to the file the whole
    time; the file is larger than one Put Blob, so each read spans a staging request to storage, and every
    append changes its size (timestamps alone could fall within one clock tick)."""
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    (tmp_path / "steady.txt").write_bytes(b"steady")
    growing = tmp_path / "growing.log"
    growing.write_bytes(os.urandom(SINGLE_PUT_LIMIT + 1))
    stop = threading.Event()

    def append() -> None:
        with open(growing, "ab", buffering=0) as f:
            while not stop.is_set():
                f.write(b".")
                time.sleep(0.0002)  # let the copy's threads run too

    writer = threading.Thread(target=append, name="appender", daemon=True)
    with capture_copier_log() as messages:
        writer.start()
        try:
            run = run_locally(str(tmp_path))
        finally:
            stop.set()
            writer.join()
    assert run.error is not None
    assert run.error.startswith("1 of 2 file(s) could not be backed up (the other 1, 6 bytes, were)"), run.error
    assert f"{growing}: it changed while it was being backed up" in run.error
    assert (run.status["filesFailed"], run.status["filesUploaded"]) == (1, 1)
    again = [m for m in messages if m.startswith(f"{growing} changed while it was read; reading it again")]
    assert again == [f"{growing} changed while it was read; reading it again (attempt {n})." for n in (2, 3)]
    name = blob_name_for(growing)
    assert sorted(blob_state(container)) == [blob_name_for(tmp_path / "steady.txt")]  # no partial blob
    # Each of the three reads staged its block under that read's file identity, and none was committed.
    staged = container.get_blob_client(name).get_block_list("uncommitted")[1]
    assert len({b.id for b in staged}) == READ_ATTEMPTS == 3
    # Once the file holds still, the next run backs it up.
    assert run_locally(str(tmp_path)).error is None
    assert container.download_blob(name).readall() == growing.read_bytes()


@contextmanager
def capture_copier_log() -> Iterator[list[str]]:
    """The copier's log lines while the block runs (from every thread)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("site_backup.copier")
    handler, level = Collect(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def names_of_length(root: Path, *lengths: int) -> list[Path]:
    """Paths below ``root`` in one directory whose blob names have exactly these lengths (ASCII names)."""
    shortest = min(lengths)
    left = shortest - len(blob_name_for(root)) - 1  # after the root's blob name and the "/" that follows it
    directory = root
    while left > 250:  # 100-character directories, then a file name of 150 to 250 characters
        directory, left = directory / ("d" * 100), left - 101
    return [directory / ("n" * (left + length - shortest)) for length in lengths]


def test_a_blob_name_of_1024_characters_is_backed_up_and_one_of_1025_fails_until_excluded(
    tmp_path, container, monkeypatch
):
    """README: a path with more than 1,024 characters cannot be a blob name; such a file is reported as failed,
    and an exclude pattern gets past it. Here with few segments, so that only the length is over."""
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    fits, too_long = names_of_length(tmp_path, 1024, 1025)
    assert (len(blob_name_for(fits)), len(str(too_long).lstrip("/"))) == (1024, 1025)
    assert len(too_long.relative_to(tmp_path).parts) < 20
    fits.parent.mkdir(parents=True)
    fits.write_bytes(b"fits")
    too_long.write_bytes(b"too long")
    (tmp_path / "ok.txt").write_bytes(b"fine")
    run = run_locally(str(tmp_path))
    assert run.error is not None
    assert run.error.startswith("1 of 3 file(s) could not be backed up (the other 2, 8 bytes, were)"), run.error
    assert "cannot be a blob name (1025 characters," in run.error and "Blob Storage allows 1024 and 254" in run.error
    assert "exclude" in run.error and run.status["filesFailed"] == 1
    fits_name = str(fits).lstrip("/")
    assert sorted(blob_state(container)) == sorted([fits_name, str(tmp_path / "ok.txt").lstrip("/")])
    assert container.download_blob(fits_name).readall() == b"fits"
    past_it = run_locally({"rootDirectory": str(tmp_path), "exclude": [too_long.name]})
    assert (past_it.error, past_it.output, past_it.status["filesFailed"]) == (None, 8, 0)


class FifoWatch:
    """Whether anything opened a FIFO for reading and kept it: a blocking open would wait for a writer for ever.

    A watchdog turns such a hang into a test failure instead of a hung run: if the block has not ended after
    ``grace`` seconds, it opens the FIFO for writing, which only succeeds while a reader is there, and so also
    releases that reader. Then ``reader_was_waiting`` is true. No assertion depends on how long anything takes.
    """

    def __init__(self, path: Path, grace: float = 30.0) -> None:
        self.path = path
        self.grace = grace
        self.reader_was_waiting = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="fifo-watch", daemon=True)

    def _watch(self) -> None:
        if not self._done.wait(self.grace):
            self.reader_was_waiting = self.has_reader()

    def has_reader(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO: no process has it open for reading
        except OSError as exc:
            assert exc.errno == errno.ENXIO, exc
            return False
        os.close(fd)
        return True

    def __enter__(self) -> "FifoWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()


def test_a_fifo_in_the_tree_is_skipped_and_never_opened(tmp_path, container, monkeypatch):
    """README: special files (FIFOs) are skipped, the one thing skipped besides links out of the root, and a FIFO
    cannot block a copy."""
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    (tmp_path / "a.txt").write_bytes(b"regular")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "sub").mkdir()
    os.mkfifo(tmp_path / "sub" / "pipe.log")
    with FifoWatch(tmp_path / "pipe") as top, FifoWatch(tmp_path / "sub" / "pipe.log") as nested:
        assert listed(tmp_path) == ["a.txt"]
        run = run_locally(str(tmp_path))
    assert not top.reader_was_waiting and not nested.reader_was_waiting
    assert not top.has_reader() and not nested.has_reader()  # and nothing holds either open now
    assert (run.error, run.output) == (None, 7)
    assert (run.status["filesTotal"], run.status["filesDone"], run.status["filesFailed"]) == (1, 1, 0)
    assert run.status["filesVanished"] == 0
    assert list(blob_state(container)) == [blob_name_for(tmp_path / "a.txt")]


def test_a_file_replaced_by_a_fifo_after_the_listing_counts_as_vanished_without_blocking(tree, container):
    page = activity("E2_GetFileList", page_request(str(tree)))
    path = tree / "plain.txt"
    path.unlink()
    os.mkfifo(path)
    with FifoWatch(path) as watch:
        results = [activity("E2_CopyFileToBlob", unit) for unit in page["units"]]
    assert not watch.reader_was_waiting and not watch.has_reader()
    assert sum(r["vanished"] for r in results) == 1
    assert sum(r["failed"] for r in results) == 0
    assert sum(r["uploaded"] for r in results) == len(AWKWARD) - 1
    assert blob_name_for(path) not in blob_state(container)


NOBODY = 65534


def test_an_unreadable_subdirectory_is_an_error_naming_its_path():
    """The walk opens every directory below the root; one the app may not open fails the listing, naming it.

    Run as an ordinary user: as root the effective user id is `nobody` for the walk alone, so the kernel itself
    refuses the mode-0 directory (root's capabilities would let it in).
    """
    top = Path(tempfile.mkdtemp(prefix="walk-"))
    try:
        top.chmod(0o755)
        site = top / "site"
        (site / "locked").mkdir(parents=True)
        (site / "open").mkdir()
        (site / "open" / "a.txt").write_text("a")
        for directory in (site, site / "open"):
            directory.chmod(0o755)
        (site / "locked").chmod(0)
        root_fd = os.open(site, os.O_RDONLY | os.O_DIRECTORY)
        as_root = os.geteuid() == 0
        try:
            if as_root:
                os.seteuid(NOBODY)
            try:
                with pytest.raises(InvalidBackupRequest) as refused:
                    list(TreeWalk(PurePosixPath(site), root_fd))
            finally:
                if as_root:
                    os.seteuid(0)
        finally:
            os.close(root_fd)
            (site / "locked").chmod(0o755)
        assert str(refused.value) == f"Cannot list directory {str(site / 'locked')!r}: Permission denied."
    finally:
        shutil.rmtree(top)
