"""Prune against a real Azurite: the real plan and activities, in process.

A tree is backed up four times with changes between; a policy keeps some runs. Every kept run must still
restore byte for byte, exactly the snapshots no kept run needs must go, and the blobs themselves never.
"""

import json
import time
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from site_backup import prune as prune_module
from site_backup import prune_plan
from site_backup.copier import RACY_SECONDS
from site_backup.errors import InvalidBackupRequest
from site_backup.prune import checked_prune
from tests.support.local_run import prune_locally, restore_locally, run_locally, verify_locally
from tests.support.trees import snapshot_of, write_files
from tests.support.worker import call_activity

VERSIONS = [
    {"a.txt": b"a1", "b.txt": b"b1", "c/d.txt": b"unchanged"},
    {"a.txt": b"a2 longer"},
    {"a.txt": b"a3", "b.txt": b"b2 longer"},
    {"a.txt": b"a4 the last"},
]


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BACKUP_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.delenv("BACKUP_RETENTION", raising=False)
    return tmp_path / "site"


def back_up_versions(site: Path, versions: list[dict[str, bytes]]) -> list[tuple[str, dict]]:
    """One backup after writing each version; the runs' ids with the tree each one saw."""
    runs = []
    for files in versions:
        write_files(site, files)
        time.sleep(RACY_SECONDS + 0.2)  # so the next change is seen as one
        done = run_locally(str(site))
        assert done.error is None, done.error
        runs.append((done.run, snapshot_of(site)))
    return runs


def prune(site: Path, retention: str, dry_run: bool = False):
    time.sleep(1.1)  # past the (lowered) margin after the last snapshot
    request = checked_prune({"rootDirectory": str(site), "retention": retention, "dryRun": dry_run})
    return prune_locally(request.to_json())


def snapshots(container) -> list[tuple[str, str]]:
    return sorted((b.name, b.snapshot) for b in container.list_blobs(include=["snapshots"]) if b.snapshot)


def catalog_of(container) -> ContainerClient:
    """The catalog container beside ``container`` (the fixture names it so)."""
    return ContainerClient(container.url.rsplit("/", 1)[0], container.container_name + "-catalog", container.credential)


def listed_runs(container) -> list[str]:
    catalog = catalog_of(container)
    return sorted(b.name.rsplit("-", 1)[-1].removesuffix(".json") for b in catalog.list_blobs("index/"))


@pytest.fixture
def short_margin(monkeypatch) -> None:
    monkeypatch.setenv("BACKUP_TUNING", json.dumps({"pruneMarginSeconds": 1}))


@pytest.fixture(params=["default sizes", "tiny pages", "one snapshot a document"])
def paging(request, monkeypatch) -> None:
    """Tiny pages: the listing in stretches of 3 versions, one run removed per call, a generation every 2 calls.

    (Azurite's List Blobs marker names a blob, not a version: a page that ends inside a blob's versions skips
    the rest of them. Three versions a page keeps every version this tree's prune decides on in view; a
    version not seen is never deleted, and the rule keeps a seen one in its place, so a short view only keeps
    more.)
    """
    if request.param == "tiny pages":
        monkeypatch.setattr(prune_module, "LIST_PAGE", 3)
        monkeypatch.setattr(prune_module, "LIST_PAGES_PER_CALL", 1)
        monkeypatch.setattr(prune_module, "RUNS_PER_REMOVAL", 1)
        monkeypatch.setattr(prune_plan, "RUNS_PER_REMOVAL", 1)
        monkeypatch.setattr(prune_plan, "CALLS_PER_EXECUTION", 2)
    if request.param == "one snapshot a document":  # a document ends once it holds this many snapshots
        monkeypatch.setattr(prune_module, "LIST_PAGE", 3)
        monkeypatch.setattr(prune_module, "SNAPSHOTS_PER_DOCUMENT", 1)


def test_a_prune_keeps_what_the_policy_says_and_every_kept_run_restores_exactly(
    site, container, tmp_path, short_margin, paging
):
    runs = back_up_versions(site, VERSIONS)
    assert len(snapshots(container)) == 4  # a1, a2, a3 and b1 were overwritten

    dry = prune(site, "last=2", dry_run=True)
    assert dry.error is None, dry.error
    assert (dry.output["runsRemoved"], dry.output["snapshotsRemoved"], dry.output["snapshotsKept"]) == (2, 3, 1)
    assert dry.output["dryRun"] is True and set(dry.output["removed"]) == {runs[0][0], runs[1][0]}
    assert len(snapshots(container)) == 4 and len(listed_runs(container)) == 4  # a dry run changes nothing

    done = prune(site, "last=2")
    assert done.error is None, done.error
    same = ("runsRemoved", "snapshotsRemoved", "snapshotBytesRemoved", "snapshotsKept", "catalogBlobsRemoved")
    assert {k: done.output[k] for k in same} == {k: dry.output[k] for k in same}
    assert done.output["snapshotBytesRemoved"] == len(b"a1") + len(b"a2 longer") + len(b"b1")
    assert listed_runs(container) == sorted([runs[2][0], runs[3][0]])
    assert [Path(name).name for name, _ in snapshots(container)] == ["a.txt"]  # a3: run 3 needs it
    assert {Path(b.name).name for b in container.list_blobs()} == {"a.txt", "b.txt", "d.txt"}  # blobs stay
    for run, expected in runs[2:]:
        target = tmp_path / f"restored-{run}"
        restored = restore_locally({"backup": run, "rootDirectory": str(site), "targetDirectory": str(target)})
        assert restored.error is None, restored.error
        assert snapshot_of(target) == expected
        checked = verify_locally({"backup": run, "rootDirectory": str(site), "deep": True})
        assert checked.output["ok"] is True, checked.output
    gone = restore_locally({"backup": runs[0][0], "rootDirectory": str(site), "targetDirectory": str(tmp_path / "x")})
    assert "There is no backup" in gone.error

    again = prune(site, "last=2")
    assert (again.output["runsRemoved"], again.output["snapshotsRemoved"]) == (0, 0)
    catalog = catalog_of(container)
    assert not list(catalog.list_blobs("work/"))  # the work areas are gone


def test_snapshots_younger_than_the_margin_are_never_removed(site, container, monkeypatch):
    runs = back_up_versions(site, VERSIONS[:3])
    done = prune(site, "last=1")  # the default margin: 15 minutes
    assert done.error is None, done.error
    assert (done.output["runsRemoved"], done.output["snapshotsRemoved"], done.output["snapshotsKept"]) == (2, 0, 3)
    assert listed_runs(container) == [runs[2][0]] and len(snapshots(container)) == 3


def test_a_run_not_sealed_yet_keeps_what_it_references(site, container, short_margin):
    (first, _), _ = back_up_versions(site, VERSIONS[:2])
    catalog = catalog_of(container)
    entry = next(b.name for b in catalog.list_blobs("index/") if first in b.name)
    catalog.delete_blob(entry)  # the first run now looks like one still running
    done = prune(site, "last=1")
    assert done.error is None, done.error
    assert (done.output["runsRemoved"], done.output["snapshotsRemoved"], done.output["snapshotsKept"]) == (0, 0, 1)


def test_runs_of_a_root_inside_the_pruned_one_keep_their_versions(site, container, tmp_path, short_margin):
    write_files(site, {"top.txt": b"top", "sub/x.txt": b"x1"})
    time.sleep(RACY_SECONDS + 0.2)
    inner = run_locally(str(site / "sub"))
    inner_tree = snapshot_of(site / "sub")
    back_up_versions(site, [{"sub/x.txt": b"x2 changed"}, {"top.txt": b"top changed"}])
    done = prune(site, "last=1")
    assert done.error is None, done.error
    assert done.output["runsRemoved"] == 1
    assert sorted(Path(n).name for n, _ in snapshots(container)) == ["x.txt"]  # the inner run still needs x1
    target = tmp_path / "restored-inner"
    restored = restore_locally(
        {"backup": inner.run, "rootDirectory": str(site / "sub"), "targetDirectory": str(target)}
    )
    assert restored.error is None and snapshot_of(target) == inner_tree


def test_runs_of_a_root_around_the_pruned_one_keep_their_versions(site, container, tmp_path, short_margin):
    write_files(site, {"top.txt": b"top", "sub/x.txt": b"x1"})
    time.sleep(RACY_SECONDS + 0.2)
    outer = run_locally(str(site))
    outer_tree = snapshot_of(site)
    back_up_versions(site / "sub", [{"x.txt": b"x2 changed"}, {"x.txt": b"x3 changed again"}])
    done = prune(site / "sub", "last=1")
    assert done.error is None, done.error
    assert (done.output["runsRemoved"], done.output["snapshotsRemoved"]) == (1, 1)  # x2 went; x1 stays for /site
    request = {"backup": outer.run, "rootDirectory": str(site), "targetDirectory": str(tmp_path / "o")}
    restored = restore_locally(request)
    assert restored.error is None and snapshot_of(tmp_path / "o") == outer_tree


def test_a_selection_made_twice_is_the_first_one(site, container, short_margin):
    """The host may run an activity twice; a backup sealed in between must not change what this prune does."""
    back_up_versions(site, VERSIONS[:2])
    request = checked_prune({"rootDirectory": str(site), "retention": "last=1"})
    work, started = "work/twice/prune/", "2026-12-01T00:00:00Z"
    task = json.dumps({"request": request.to_json(), "work": work, "started": started, "number": 0})
    first = json.loads(call_activity("E2_PruneSelectRuns", task))
    back_up_versions(site, VERSIONS[2:3])
    assert json.loads(call_activity("E2_PruneSelectRuns", task)) == first
    assert (first["kept"], first["removed"]) == (1, 1)


def test_a_prune_without_a_policy_is_refused_with_what_to_set(site, monkeypatch):
    site.mkdir()
    with pytest.raises(InvalidBackupRequest, match="BACKUP_RETENTION"):
        checked_prune({"rootDirectory": str(site)})
    monkeypatch.setenv("BACKUP_RETENTION", "daily=7, last=3")
    assert checked_prune({"rootDirectory": str(site), "dryRun": True}).retention == "last=3,daily=7"
    with pytest.raises(InvalidBackupRequest, match="not a retention rule"):
        checked_prune({"rootDirectory": str(site), "retention": "keep=all"})
