"""Two backups of one root at once (two instances, one storage): both end, and storage holds every file."""

from __future__ import annotations

from harness import scenario, tree_of, verify

TUNING = {"batchFiles": 30, "pageUnits": 4, "window": 4}


def test_two_backups_of_one_root_at_once(tmp_path):
    files = tree_of(1_500, seed=9)
    with scenario(tmp_path, files, TUNING) as case:
        case.start_host()
        first, second = case.start_backup(), case.start_backup({"rootDirectory": str(case.root)})
        results = [case.wait(first, deadline_s=600), case.wait(second, deadline_s=600)]
        total = sum(len(d) for d in files.values())
        assert [(r["runtimeStatus"], r["output"]) for r in results] == [("Completed", total)] * 2
        for result in results:
            assert verify(case.storage, case.container, case.root, result)["correct"] == len(files)
        catalog = case.storage.container("backup-catalog")
        assert [b.name for b in catalog.list_blobs(name_starts_with="work/")] == []  # each cleaned its own
