"""Point in time, restore and verify against a real Azurite: the real plans and activities, in process.

A tree is backed up, changed (files rewritten, deleted, added) and backed up again; each run is a point in
time that restores exactly, blob snapshots keeping what later runs overwrote.
"""

import json
import os
import re
import time
from pathlib import Path

import azure.functions as func
import pytest

from site_backup.copier import RACY_SECONDS
from site_backup.errors import InvalidBackupRequest
from site_backup.naming import blob_name_for
from site_backup.recovery_messages import RestoreRequest
from tests.support.local_run import restore_locally, run_locally, verify_locally
from tests.support.trees import snapshot_of, write_files
from tests.support.worker import app_functions, call_activity, run_on_worker_loop

FIRST = {
    "index.html": b"<h1>first</h1>",
    "a b/ünï #%.txt": b"awkward name, first version\n",
    "docs/changed.md": b"# before\n",
    "docs/deleted.txt": b"only in the first run\n",
    "big.bin": os.urandom(9 * 1024 * 1024 + 17),  # more than one block
}


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    root = tmp_path / "site"
    write_files(root, FIRST)
    return root


def two_runs(site: Path) -> tuple[dict, dict, str, str]:
    """Back up, change the tree, back up again; returns both trees as they were and both run ids."""
    time.sleep(RACY_SECONDS + 0.2)
    first = snapshot_of(site)
    one = run_locally(str(site))
    assert one.error is None, one.error
    (site / "docs/changed.md").write_bytes(b"# after, and longer\n")
    (site / "docs/deleted.txt").unlink()
    (site / "index.html").write_bytes(b"<h1>2nd!</h1>")  # same size as before
    write_files(site, {"new/added.txt": b"only in the second run\n"})
    second = snapshot_of(site)
    two = run_locally(str(site))
    assert two.error is None, two.error
    return first, second, one.run, two.run


def restore(site: Path, target: Path, backup: str = "latest", **options: object):
    request = {"backup": backup, "rootDirectory": str(site), "targetDirectory": str(target), **options}
    return restore_locally(request)


def test_every_run_restores_exactly_as_it_was(site, container, tmp_path):
    first, second, one, two = two_runs(site)
    old = restore(site, tmp_path / "restored-first", one)
    assert old.error is None, old.error
    assert snapshot_of(tmp_path / "restored-first") == first  # bytes and mtimes, the later changed and deleted too
    assert old.output == sum(len(d) for d, _ in first.values())
    latest = restore(site, tmp_path / "restored-latest")
    assert latest.error is None and snapshot_of(tmp_path / "restored-latest") == second
    assert latest.status["backup"] == two
    snapshots = [b for b in container.list_blobs(include=["snapshots"]) if b.snapshot]
    assert {Path("/" + b.name).name for b in snapshots} == {"changed.md", "index.html"}  # only what was overwritten


def test_a_time_picks_the_last_run_sealed_before_it(site, container, tmp_path):
    first, _, one, _ = two_runs(site)
    summaries = json.loads(call_activity("E2_FindBackup", json.dumps({"rootDirectory": str(site)})))
    assert summaries["id"] != one  # latest is the second
    between = next(r for r in list_backups(site) if r["id"] == one)["finished"]
    old = restore(site, tmp_path / "at-time", between)
    assert old.error is None and snapshot_of(tmp_path / "at-time") == first
    too_early = restore(site, tmp_path / "never", "2001-01-01T00:00:00Z")
    assert "There is no backup" in too_early.error and "sealed at or before" in too_early.error


def list_backups(site: Path) -> list[dict]:
    request = func.HttpRequest("GET", "http://localhost/backups", params={"rootDirectory": str(site)}, body=b"")
    response = run_on_worker_loop(app_functions()["list_backups"].get_user_function()(req=request))
    assert response.status_code == 200, response.get_body()
    return json.loads(response.get_body())


def test_the_backups_of_a_root_are_listed_newest_first_and_shown_by_id(site, container):
    _, _, one, two = two_runs(site)
    runs = list_backups(site)
    assert [r["id"] for r in runs] == [two, one]
    assert runs[1]["outcome"] == "completed" and runs[1]["files"] == len(FIRST)
    assert runs[0]["uploaded"] == 3 and runs[0]["unchanged"] == 2
    show = app_functions()["show_backup"].get_user_function()
    found = run_on_worker_loop(show(req=func.HttpRequest("GET", "http://x", route_params={"id": one}, body=b"")))
    assert json.loads(found.get_body())["rootDirectory"] == str(site)
    gone = run_on_worker_loop(show(req=func.HttpRequest("GET", "http://x", route_params={"id": "nope"}, body=b"")))
    assert gone.status_code == 404 and "no backup 'nope'" in json.loads(gone.get_body())["error"]


def test_existing_files_are_kept_unless_overwrite_and_identical_ones_skipped(site, container, tmp_path):
    time.sleep(RACY_SECONDS + 0.2)
    run_locally(str(site))
    target = tmp_path / "target"
    write_files(target, {"index.html": b"<h1>local edit</h1>", "a b/ünï #%.txt": FIRST["a b/ünï #%.txt"]})
    kept = restore(site, target)
    assert kept.error is None
    assert (target / "index.html").read_bytes() == b"<h1>local edit</h1>"
    assert (kept.status["filesKept"], kept.status["filesIdentical"]) == (1, 1)
    replaced = restore(site, target, overwrite=True)
    assert (target / "index.html").read_bytes() == FIRST["index.html"]
    assert replaced.status["filesRestored"] == 1 and replaced.status["filesIdentical"] == len(FIRST) - 1
    assert not [p for p in target.rglob("*.site-backup-restore")]  # no temporary file left


def test_include_restores_one_file_or_one_directory(site, container, tmp_path):
    time.sleep(RACY_SECONDS + 0.2)
    run_locally(str(site))
    restore(site, tmp_path / "one", include=["/index.html"])
    assert [p.name for p in (tmp_path / "one").rglob("*") if p.is_file()] == ["index.html"]
    restore(site, tmp_path / "dir", include=["docs/**"])
    assert sorted(p.name for p in (tmp_path / "dir").rglob("*") if p.is_file()) == ["changed.md", "deleted.txt"]


def test_restore_refuses_targets_outside_the_roots_and_never_writes_through_a_symlink(site, container, tmp_path):
    time.sleep(RACY_SECONDS + 0.2)
    run_locally(str(site))
    outside = restore(site, Path("/etc/site-backup-restore-test"))
    assert outside.error is not None and "outside the allowed roots" in outside.error
    target = tmp_path / "target"
    target.mkdir()
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    (target / "docs").symlink_to(elsewhere)  # a symlink where a directory of the backup goes
    result = restore(site, target)
    assert list(elsewhere.iterdir()) == []
    assert result.status["filesFailed"] == 2 and "symlink" in result.error
    assert (target / "index.html").read_bytes() == FIRST["index.html"]


def test_verify_finds_a_blob_damaged_or_deleted_behind_the_apps_back(site, container, tmp_path):
    time.sleep(RACY_SECONDS + 0.2)
    run_locally(str(site))
    fine = verify_locally({"backup": "latest", "rootDirectory": str(site)})
    assert fine.output["ok"] is True and fine.output["filesOk"] == len(FIRST)
    name = blob_name_for(site / "docs/changed.md")
    properties = container.get_blob_client(name).get_blob_properties()
    container.get_blob_client(name).stage_block("cm90", b"# b3fore\n")  # same size, other bytes
    container.get_blob_client(name).commit_block_list(
        ["cm90"], content_settings=properties.content_settings, metadata=properties.metadata
    )  # a block list's MD5 is stored as given: the damage keeps the recorded Content-MD5
    container.delete_blob(blob_name_for(site / "index.html"))
    shallow = verify_locally({"backup": "latest", "rootDirectory": str(site)})
    assert (shallow.output["ok"], shallow.output["missing"], shallow.output["damaged"]) == (False, 1, 0)
    deep = verify_locally({"backup": "latest", "rootDirectory": str(site), "deep": True})
    assert (deep.output["missing"], deep.output["damaged"]) == (1, 1)
    assert any("changed.md: its stored bytes are damaged" in p for p in deep.output["problems"])


def test_verify_compares_with_the_site(site, container):
    time.sleep(RACY_SECONDS + 0.2)
    run_locally(str(site))
    (site / "docs/changed.md").write_bytes(b"# after\n")
    (site / "docs/deleted.txt").unlink()
    write_files(site, {"new.txt": b"new"})
    report = verify_locally({"backup": "latest", "rootDirectory": str(site), "compareWithSource": True}).output
    assert (report["ok"], report["changed"], report["deleted"], report["added"]) == (True, 1, 1, 1)


def test_a_restore_run_again_after_a_crash_puts_every_file_right_and_leaves_no_temporary_file(
    site, container, tmp_path
):
    """A crash mid-file leaves its temporary file; the restore running the same part again replaces it."""
    time.sleep(RACY_SECONDS + 0.2)
    run_locally(str(site))
    target = tmp_path / "target"
    (target / "docs").mkdir(parents=True)
    (target / "docs" / ".changed.md.site-backup-restore").write_bytes(b"half a file from a crash")
    result = restore(site, target)
    assert result.error is None
    assert snapshot_of(target) == {rel: (data, (site / rel).stat().st_mtime_ns) for rel, data in FIRST.items()}


def test_bad_requests_are_refused_before_anything_starts():
    for body, words in [
        ({"rootDirectory": "/x"}, "'targetDirectory' must be an absolute directory"),
        ({"rootDirectory": "/x", "targetDirectory": "rel"}, "must be an absolute path"),
        ({"rootDirectory": "/x", "targetDirectory": "/y", "overwrite": "yes"}, "'overwrite' must be true or false"),
        ({"rootDirectory": "/x", "targetDirectory": "/y", "backup": ""}, "'backup' must be"),
        ({"rootDirectory": "/x", "targetDirectory": "/y", "wipe": True}, "Unknown option(s) 'wipe'"),
    ]:
        with pytest.raises(InvalidBackupRequest, match=re.escape(words)):
            RestoreRequest.from_json(body)
