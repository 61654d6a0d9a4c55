"""The backup package and the activities against a real Azurite (no storage mocks)."""

import hashlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient, ContainerSasPermissions, generate_container_sas

from site_backup.errors import DirectoryNotAllowed, InvalidBackupRequest
from site_backup.naming import BlobNameTooLong, blob_name_for
from site_backup.service import copy_file_to_blob, list_backup_files
from site_backup.storage import backup_container
from site_backup.upload import BLOCK_SIZE, backup_file
from tests.support.worker import call_activity

AWKWARD = {
    "plain.txt": b"hello\n",
    "with space/file name.txt": b"spaces in both\n",
    "unicode/ünïcødé-文件.md": "grüße 世界\n".encode(),
    "hash#and%percent/50%#1.csv": b"a,b\n1,2\n",
    "empty.bin": b"",
    "deep/" + "/".join(f"level{i}" for i in range(25)) + "/leaf.json": b'{"deep": true}',
    "big/large.bin": os.urandom(BLOCK_SIZE + 123_457),
}


@pytest.fixture
def container(azurite, monkeypatch) -> ContainerClient:
    """A fresh container per test, configured through the app settings the app reads."""
    name = f"t{uuid.uuid4().hex[:20]}"
    monkeypatch.setenv("BACKUP_STORAGE", azurite.connection_string)
    monkeypatch.setenv("BACKUP_CONTAINER", name)
    return BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(name)


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "site"
    for rel, data in AWKWARD.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    return root


def run_activities(root: Path) -> list[int]:
    """List and copy through the activity functions, exactly as the worker would call them."""
    files = json.loads(call_activity("E2_GetFileList", json.dumps(str(root))))
    return [json.loads(call_activity("E2_CopyFileToBlob", json.dumps(f))) for f in files]


def blob_state(container: ContainerClient) -> dict[str, tuple[str, object]]:
    return {b.name: (b.etag, b.last_modified) for b in container.list_blobs()}


def test_listing_is_sorted_recursive_and_complete(tree):
    files = list_backup_files(str(tree))
    assert files == sorted(files, key=lambda p: Path(p).relative_to(tree).parts)
    assert {Path(f).relative_to(tree).as_posix() for f in files} == set(AWKWARD)


def test_every_blob_equals_its_file(tree, container):
    sizes = run_activities(tree)
    assert sum(sizes) == sum(len(d) for d in AWKWARD.values())
    blobs = {b.name: b for b in container.list_blobs(include=["metadata"])}
    assert len(blobs) == len(AWKWARD)
    for rel, data in AWKWARD.items():
        name = blob_name_for(tree / rel)
        assert name == str(tree / rel).lstrip("/")
        downloaded = container.download_blob(name).readall()
        assert downloaded == data, rel
        md5 = hashlib.md5(data).digest()
        assert bytes(blobs[name].content_settings.content_md5) == md5, rel
        assert blobs[name].metadata["source_md5"] == md5.hex()
    assert blobs[blob_name_for(tree / "plain.txt")].content_settings.content_type == "text/plain"


def test_second_run_uploads_nothing(tree, container):
    first = run_activities(tree)
    before = blob_state(container)
    second = run_activities(tree)
    assert second == first  # the backup still holds every byte
    assert blob_state(container) == before


def test_changed_file_of_the_same_size_is_uploaded_again(tree, container):
    run_activities(tree)
    path = tree / "plain.txt"
    before = blob_state(container)
    path.write_bytes(b"HELLO\n")
    run_activities(tree)
    after = blob_state(container)
    name = blob_name_for(path)
    assert after[name] != before[name]
    assert container.download_blob(name).readall() == b"HELLO\n"
    assert {k: v for k, v in after.items() if k != name} == {k: v for k, v in before.items() if k != name}


def test_same_size_and_mtime_but_new_content_is_detected_by_md5(tree, container):
    run_activities(tree)
    path = tree / "hash#and%percent/50%#1.csv"
    st = path.stat()
    path.write_bytes(b"x,y\n3,4\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    run_activities(tree)
    assert container.download_blob(blob_name_for(path)).readall() == b"x,y\n3,4\n"


def test_many_blocks_with_a_small_block_size(tmp_path, container, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    data = os.urandom(1_000_003)
    path = tmp_path / "blocks.bin"
    path.write_bytes(data)
    result = backup_file(backup_container(), str(path), [tmp_path], block_size=64 * 1024)
    assert (result.outcome, result.size) == ("uploaded", len(data))
    blob = container.get_blob_client(blob_name_for(path))
    assert blob.download_blob().readall() == data
    committed, _ = blob.get_block_list("committed")
    assert len(committed) == 16
    assert bytes(blob.get_blob_properties().content_settings.content_md5) == hashlib.md5(data).digest()


def test_file_deleted_after_listing_counts_zero(tree, container):
    files = list_backup_files(str(tree))
    Path(files[0]).unlink()
    assert copy_file_to_blob(files[0]) == 0
    assert blob_name_for(files[0]) not in blob_state(container)


def test_two_roots_never_collide(tmp_path, container, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    for site in ("one", "two"):
        (tmp_path / site / "logs").mkdir(parents=True)
        (tmp_path / site / "logs" / "app.log").write_text(site)
        run_activities(tmp_path / site)
    names = sorted(blob_state(container))
    assert names == [blob_name_for(tmp_path / s / "logs" / "app.log") for s in ("one", "two")]


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
    files = {Path(f).relative_to(root).as_posix() for f in list_backup_files(str(root))}
    assert files == {"dir/file.txt", "alias.txt"}


def test_include_and_exclude_patterns(tree):
    request = {"rootDirectory": str(tree), "include": ["*.txt", "*.md"], "exclude": ["with space/**"]}
    files = {Path(f).relative_to(tree).as_posix() for f in list_backup_files(request)}
    assert files == {"plain.txt", "unicode/ünïcødé-文件.md"}
    deep = {
        Path(f).relative_to(tree).as_posix()
        for f in list_backup_files({"rootDirectory": str(tree), "exclude": ["deep", "big"]})
    }
    assert not any(f.startswith(("deep/", "big/")) for f in deep) and "plain.txt" in deep


def test_activities_refuse_paths_outside_the_allowed_roots(tree, container, monkeypatch, tmp_path):
    outside = tmp_path.parent / f"outside-{uuid.uuid4().hex}.txt"
    outside.write_text("not yours")
    try:
        with pytest.raises(DirectoryNotAllowed):
            copy_file_to_blob(str(outside))
        with pytest.raises(DirectoryNotAllowed):
            list_backup_files(str(tmp_path.parent))
        with pytest.raises(InvalidBackupRequest):
            copy_file_to_blob("relative/path.txt")
    finally:
        outside.unlink()
    assert not container.exists() or blob_state(container) == {}


def test_very_deep_tree_is_listed_without_recursion_limits(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    deep = tmp_path
    for _ in range(1_200):  # one level at a time: mkdir(parents=True) itself recurses per level
        deep = deep / "d"
        deep.mkdir()
    (deep / "leaf").write_text("x")
    try:
        assert list_backup_files(str(tmp_path)) == [str(deep / "leaf")]
    finally:  # pytest's own clean-up (shutil.rmtree) recurses per level, so remove it here
        (deep / "leaf").unlink()
        while deep != tmp_path:
            deep.rmdir()
            deep = deep.parent


def test_a_path_too_long_for_a_blob_name_fails_clearly(tmp_path, container, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    deep = tmp_path.joinpath(*["d"] * 300)
    deep.mkdir(parents=True)  # 300 levels: within the recursion limit
    (deep / "leaf").write_text("x")
    with pytest.raises(BlobNameTooLong, match="exclude"):
        copy_file_to_blob(str(deep / "leaf"))


def test_listing_pages_cover_the_tree_exactly_once_in_order(tmp_path, monkeypatch):
    """Pages (after + limit) as used by continued generations, including names that sort
    differently as strings than as paths ("a-c" < "a/b" as text, but "a/b" is listed first)."""
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    names = ["a/b", "a-c", "a/z/1", "a/z/2", "b", "c/d/e/f", "c/d/g", "ü", "#x", "%y"]
    write = {n: n.encode() for n in names}
    for rel, data in write.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    everything = list_backup_files(str(tmp_path))
    assert len(everything) == len(names)
    for limit in (1, 3, 4):
        pages: list[str] = []
        after = None
        while True:
            request = {"rootDirectory": str(tmp_path), **({"after": after, "limit": limit} if after else {})}
            page = list_backup_files(request) if after else list_backup_files(request)[:limit]
            pages.extend(page)
            if len(page) < limit:
                break
            after = page[-1]
        assert pages == everything, limit


def test_listing_cursor_outside_the_root_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidBackupRequest, match="cursor"):
        list_backup_files({"rootDirectory": str(tmp_path), "after": "/elsewhere/f", "limit": 5})


def test_a_credential_scoped_to_the_container_can_back_up(azurite, tmp_path, monkeypatch):
    """Least privilege: a container SAS cannot create containers (403), yet the container exists."""
    name = f"t{uuid.uuid4().hex[:20]}"
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.create_container(name)
    sas = generate_container_sas(
        service.account_name,
        name,
        account_key=service.credential.account_key,
        permission=ContainerSasPermissions(read=True, write=True, create=True, add=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    blob_endpoint = service.url.rstrip("/")
    monkeypatch.setenv("BACKUP_STORAGE", f"BlobEndpoint={blob_endpoint};SharedAccessSignature={sas}")
    monkeypatch.setenv("BACKUP_CONTAINER", name)
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    (tmp_path / "f.txt").write_text("least privilege")
    assert copy_file_to_blob(str(tmp_path / "f.txt")) == 15
    blob = service.get_container_client(name).download_blob(blob_name_for(tmp_path / "f.txt"))
    assert blob.readall() == b"least privilege"


def test_backslash_in_a_name_never_merges_two_files(tmp_path, container, monkeypatch):
    """Blob Storage turns a backslash into a slash: "x\\y" and "x/y" must stay two blobs."""
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "y").write_text("y inside x")
    (tmp_path / "x\\y").write_text("one file named x-backslash-y")
    run_activities(tmp_path)
    assert run_activities(tmp_path)  # a second run: both unchanged, neither overwrites the other
    names = sorted(blob_state(container))
    assert names == sorted([blob_name_for(tmp_path / "x" / "y"), blob_name_for(tmp_path) + "/x%5Cy"])
    assert container.download_blob(blob_name_for(tmp_path / "x\\y")).readall() == b"one file named x-backslash-y"
    assert container.download_blob(blob_name_for(tmp_path / "x" / "y")).readall() == b"y inside x"


def test_names_that_are_not_utf8_are_backed_up(tmp_path, container, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt")
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    listed = json.loads(call_activity("E2_GetFileList", json.dumps(str(tmp_path))))
    assert len(listed) == 1 and listed[0].isascii()  # travels safely through any JSON host
    assert json.loads(call_activity("E2_CopyFileToBlob", json.dumps(listed[0]))) == 12
    [name] = blob_state(container)
    assert name == blob_name_for(tmp_path) + "/caf%E9.txt"
    assert container.download_blob(name).readall() == b"latin-1 name"


def test_symlinked_directories_are_not_copied_twice_and_pages_agree(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    for name in ("a/f0", "a/f1", "a/f2", "b0", "b1", "b2"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / "c_link").symlink_to(tmp_path / "a")
    everything = list_backup_files(str(tmp_path))
    assert [Path(f).relative_to(tmp_path).as_posix() for f in everything] == ["a/f0", "a/f1", "a/f2", "b0", "b1", "b2"]
    pages = everything[:2]
    after = pages[-1]
    while page := list_backup_files({"rootDirectory": str(tmp_path), "after": after, "limit": 2}):
        pages.extend(page)
        after = page[-1]
    assert pages == everything


def test_names_that_would_share_a_blob_are_refused_not_merged(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    (tmp_path / "a\\b").write_text("backslash")
    (tmp_path / "a%5Cb").write_text("literal percent")
    with pytest.raises(InvalidBackupRequest, match=r"same blob name 'a%5Cb'.*exclude"):
        list_backup_files(str(tmp_path))
    assert len(list_backup_files({"rootDirectory": str(tmp_path), "exclude": ["a%5Cb"]})) == 1
