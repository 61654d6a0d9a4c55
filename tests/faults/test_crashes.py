"""SIGKILL of the host at every stage of one backup: each restart on the same task hub carries on, and the
backup ends with every file stored exactly once, correctly, and the exact total."""

from __future__ import annotations

import time

from harness import progress, scenario, tree_of, verify

# Small units, pages and generations: 2,400 files make 48 units over 10 pages and many generations.
TUNING = {"batchFiles": 50, "pageUnits": 5, "window": 3, "groupSize": 1, "unitsPerExecution": 8}


def kill_points(total: int) -> list[tuple[str, object]]:
    """Where to kill, in order: (name, predicate on the status, or seconds after the start)."""
    points: list[tuple[str, object]] = [
        ("just after the start", 0.0),
        # A restarted host may be past the listing by the first poll: then this kill lands just after it.
        ("while listing", lambda s: progress(s).get("phase") in ("listing", "copying")),
    ]
    for share in (0.1, 0.25, 0.4, 0.55, 0.7, 0.85):
        points.append((f"at {share:.0%} copied", lambda s, n=int(total * share): progress(s).get("filesDone", 0) >= n))
    points.append(
        (
            "at a new generation",
            lambda s: s.get("runtimeStatus") == "ContinuedAsNew" or progress(s).get("generation", 1) >= 4,
        )
    )
    points.append(("at the very end", lambda s: progress(s).get("filesDone", 0) >= total))
    return points


def test_sigkill_at_every_stage_loses_nothing(tmp_path):
    files = tree_of(2_400)
    with scenario(tmp_path, files, TUNING) as case:
        case.start_host()
        instance = case.start_backup()
        kills = []
        for name, when in kill_points(len(files)):
            if isinstance(when, float):
                time.sleep(when)
            else:
                status = case.wait(instance, lambda s, w=when: w(s) or s["runtimeStatus"] in ("Completed", "Failed"))
                if status["runtimeStatus"] in ("Completed", "Failed"):
                    break
            case.kill_host()
            kills.append(name)
            case.start_host()
        final = case.wait(instance, deadline_s=600)
        assert final["runtimeStatus"] == "Completed", final
        assert final["output"] == sum(len(d) for d in files.values())
        assert len(kills) >= 10, kills
        found = verify(case.storage, case.container, case.root, final)
        assert found["correct"] == len(files)
        assert set(b.name for b in case.storage.container(case.container).list_blobs()) == {
            str(case.root / rel).lstrip("/") for rel in files
        }
