"""SIGKILL of the host while a prune runs, in every phase it can be caught in: each restart carries on, no kept
run ends up broken (each one restores byte for byte), and a prune run again afterwards finds nothing more to
remove."""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests
from harness import ended, progress, scenario, tree_of

from site_backup.copier import RACY_SECONDS
from tests.support.local_run import restore_locally

TUNING = {"batchFiles": 50, "pruneMarginSeconds": 1}
PRUNE = "/orchestrators/E2_PruneBackups"
ORDER = ("selecting runs", "listing snapshots", "reading catalogs", "removing runs", "removing snapshots", "finishing")
RISKY = {phase: ORDER[ORDER.index(phase) : -1] for phase in ORDER}  # that phase, or a later one before the end


def tree_state(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_sigkill_during_a_prune_leaves_every_kept_run_whole(tmp_path, monkeypatch):
    files = tree_of(1500)
    with scenario(tmp_path, files, TUNING) as case:
        for key in ("BACKUP_STORAGE", "BACKUP_CONTAINER", "BACKUP_ALLOWED_ROOTS", "BACKUP_TUNING"):
            monkeypatch.setenv(key, case.env[key])  # for the restores, in this process
        case.start_host()
        runs: list[tuple[str, dict[str, bytes]]] = []
        for round_ in range(5):
            if round_:
                for rel in list(files)[round_ * 250 : round_ * 250 + 400]:  # rewrite 400 files: 400 snapshots
                    (case.root / rel).write_bytes(f"round {round_}: ".encode() + files[rel])
            time.sleep(RACY_SECONDS + 0.2)
            instance = case.start_backup()
            assert case.wait(instance)["runtimeStatus"] == "Completed"
            runs.append((instance, tree_state(case.root)))
        time.sleep(1.1)

        assert case.host is not None
        body = {"rootDirectory": str(case.root), "retention": "last=2"}
        response = requests.post(case.host.base_url + PRUNE, data=json.dumps(body), timeout=60)
        assert response.status_code == 202, response.text
        prune = response.json()["id"]
        # A kill in each phase, the last two being where storage is changed; a phase can be over before a poll
        # sees it, so the kill then lands in a later one.
        killed_in = []
        for phase in ("reading catalogs", "removing runs", "removing snapshots"):
            status = case.wait(prune, lambda s, p=phase: progress(s).get("phase") in RISKY[p] or ended(s))
            if ended(status):
                break
            killed_in.append(progress(status)["phase"])
            case.kill_host()
            case.start_host()
        final = case.wait(prune, deadline_s=300)
        assert final["runtimeStatus"] == "Completed", final
        assert any(p in ("removing runs", "removing snapshots") for p in killed_in), killed_in
        report = final["output"]
        assert (report["runsKept"], report["runsRemoved"]) == (2, 3), report
        assert report["snapshotsRemoved"] > 0

        for run, expected in runs[-2:]:
            target = tmp_path / f"restored-{run}"
            restored = restore_locally({"backup": run, "rootDirectory": str(case.root), "targetDirectory": str(target)})
            assert restored.error is None, restored.error
            assert tree_state(target) == expected

        again = requests.post(case.host.base_url + PRUNE, data=json.dumps(body), timeout=60).json()["id"]
        second = case.wait(again)
        assert second["runtimeStatus"] == "Completed", second
        assert (second["output"]["runsRemoved"], second["output"]["snapshotsRemoved"]) == (0, 0), second["output"]
