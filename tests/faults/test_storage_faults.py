"""Storage that freezes, crashes, stays away, or misbehaves on the wire: nothing is lost or corrupted, and an
outage the backup cannot wait out ends in Failed with a message that says so."""

from __future__ import annotations

import time

from harness import progress, scenario, tree_of, verify

from tests.support.fault_proxy import Faults, fault_proxy

TUNING = {"batchFiles": 40, "pageUnits": 4, "window": 3, "unitsPerExecution": 12}


def test_storage_frozen_for_30_seconds_mid_copy(tmp_path):
    files = tree_of(1_500)
    with scenario(tmp_path, files, TUNING) as case:
        case.start_host()
        instance = case.start_backup()
        case.wait(instance, lambda s: progress(s).get("filesDone", 0) >= 300)
        case.storage.freeze()
        time.sleep(30)
        case.storage.thaw()
        final = case.wait(instance, deadline_s=600)
        assert (final["runtimeStatus"], final["output"]) == ("Completed", sum(len(d) for d in files.values()))
        assert verify(case.storage, case.container, case.root, final)["correct"] == len(files)


def test_storage_killed_and_restarted_on_its_data_folder(tmp_path):
    """Azurite crashes (SIGKILL) and comes back a little later with what it had written to disk, which may not be
    all it had acknowledged (containers, blobs, the backup's manifests). The backup waits for it and then either
    completes or, if storage lost a manifest, fails saying so; the next run finds whatever is missing in the
    listing and uploads it again."""
    files = tree_of(1_500)
    with scenario(tmp_path, files, TUNING) as case:
        case.start_host()
        instance = case.start_backup()
        case.wait(instance, lambda s: progress(s).get("filesDone", 0) >= 300)
        case.storage.kill()
        time.sleep(5)
        case.storage.start()
        final = case.wait(instance, deadline_s=600)
        if final["runtimeStatus"] == "Failed":
            assert "is gone from the 'backup-catalog' container" in final["output"], final["output"]
        else:
            assert (final["runtimeStatus"], final["output"]) == ("Completed", sum(len(d) for d in files.values()))
        rerun = case.wait(case.start_backup(), deadline_s=300)
        assert rerun["runtimeStatus"] == "Completed"
        assert verify(case.storage, case.container, case.root, rerun)["correct"] == len(files)


def test_an_outage_beyond_the_budget_fails_clearly_then_a_rerun_completes(tmp_path):
    files = tree_of(600)
    with scenario(tmp_path, files, {**TUNING, "outageSeconds": 20}) as case:
        case.start_host()
        instance = case.start_backup()
        case.wait(instance, lambda s: progress(s).get("filesDone", 0) >= 80)
        case.storage.kill()
        waiting = case.wait(instance, lambda s: progress(s).get("phase") == "waiting for storage", deadline_s=300)
        assert "could not be reached" in progress(waiting)["storageError"]
        failed = case.wait(instance, deadline_s=600)
        assert failed["runtimeStatus"] == "Failed"
        assert "Storage has been unavailable for over 20 s" in failed["output"]
        assert "start the backup again once storage answers" in failed["output"]
        case.storage.start()
        rerun = case.wait(case.start_backup(), deadline_s=300)
        assert (rerun["runtimeStatus"], rerun["output"]) == ("Completed", sum(len(d) for d in files.values()))
        assert verify(case.storage, case.container, case.root, rerun)["correct"] == len(files)


def test_errors_resets_and_slow_answers_on_the_wire(tmp_path):
    """5% 503 and 500, 3% resets before and after the request body, 2% answers 1 s late."""
    files = tree_of(1_200)
    files["big/large.bin"] = bytes(range(256)) * (9 * 1024 * 16)  # 36 MiB: staged blocks and a block list
    faults = Faults(
        status_503=0.05, status_500=0.05, reset_before_body=0.03, reset_after_body=0.03, slow=0.02, slow_seconds=1.0
    )
    with (
        scenario(tmp_path, files, TUNING) as case,
        fault_proxy(case.storage.blob_endpoint.rsplit("/", 1)[0], faults) as proxy,
    ):
        case.env["BACKUP_STORAGE"] = case.storage.connection_string(f"{proxy.url}/devstoreaccount1")
        case.start_host()
        final = case.wait(case.start_backup(), deadline_s=600)
        assert (final["runtimeStatus"], final["output"]) == ("Completed", sum(len(d) for d in files.values()))
        assert verify(case.storage, case.container, case.root, final)["correct"] == len(files)
        assert all(proxy.counts[kind] > 0 for kind in ("503", "500", "reset_before_body", "reset_after_body", "slow"))
