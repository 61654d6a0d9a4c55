"""SIGKILL of the host while a restore runs: each restart on the same task hub carries on, and the restore ends
with every file byte for byte and mtime as backed up, and no temporary file left anywhere in the target."""

from __future__ import annotations

import json
import os
from pathlib import Path

import requests
from harness import TERMINAL, progress, scenario, tree_of

from site_backup.fsaccess import TEMP_SUFFIX

TUNING = {"batchFiles": 50, "pageUnits": 5, "window": 3, "groupSize": 1, "unitsPerExecution": 8}
RESTORE = "/orchestrators/E2_RestoreSiteContent"


def tree_state(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def test_sigkill_during_a_restore_leaves_every_file_right_and_no_temporary_file(tmp_path):
    # Larger files than the backup suite's, so that a kill lands inside a download now and then.
    files = {rel: data * 400 for rel, data in tree_of(1_200).items()}
    with scenario(tmp_path, files, TUNING) as case:
        case.start_host()
        backup = case.wait(case.start_backup())
        assert backup["runtimeStatus"] == "Completed", backup
        expected = tree_state(case.root)

        target = tmp_path / "restored"
        body = {"backup": "latest", "rootDirectory": str(case.root), "targetDirectory": str(target)}
        assert case.host is not None
        response = requests.post(case.host.base_url + RESTORE, data=json.dumps(body), timeout=60)
        assert response.status_code == 202, response.text
        instance = response.json()["id"]

        kills = 0
        for share in (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95):
            threshold = int(len(files) * share)
            status = case.wait(
                instance,
                lambda s, n=threshold: progress(s).get("filesDone", 0) >= n or s["runtimeStatus"] in TERMINAL,
            )
            if status["runtimeStatus"] in TERMINAL:
                break
            case.kill_host()
            kills += 1
            case.start_host()
        final = case.wait(instance, deadline_s=600)

        assert final["runtimeStatus"] == "Completed", final
        assert final["output"] == sum(len(d) for d in files.values())
        assert kills >= 4, f"the restore ended before the kills could land ({kills})"
        assert tree_state(target) == expected
        leftovers = [name for _, _, names in os.walk(target) for name in names if name.endswith(TEMP_SUFFIX)]
        assert leftovers == []
