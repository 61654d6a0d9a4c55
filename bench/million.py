"""One backup of a million tiny files: ``Completed`` with the exact total, and nothing that grows with the tree.

    .venv/bin/python bench/million.py [--files N [N ...]] [--repeat R] [--warm-up FILES] [--disk | --sql]
                                      [--keep-tree DIR]

Writes the tree (100 B-4 KiB files in 1,000 directories), starts Azurite (in memory by default: on disk,
Azurite's own database of a million blobs is rewritten whole every few seconds; and with a 16 GB V8 heap: it
keeps every blob's metadata on the heap, and at about 550,000 blobs Node's default 4 GB leaves it collecting
garbage without end) and devhost, runs the backup,
and prints: wall time and files/s, the devhost process's CPU per file and peak RSS, and the largest history,
action count and payload any execution had (devhost's /admin/devhost/stats). Then it checks that storage holds
every file, by name and size.

With several sizes (``--files 1000 20000``) and ``--repeat``, every run gets its own Azurite and devhost, and the
end prints each size's median CPU per file and the largest median over the smallest: the goal's "flat within
1.5x", measured in one session (a single small run varies by 15-20% on this machine).

``--warm-up FILES`` backs up another tree first, unmeasured. A fresh Azurite answers its first few thousand
requests slowly (Node compiles its code as it goes), and the backup's CPU per request is higher while it
waits longer for each: a run of 1,000 files on a fresh Azurite measures the emulator's warm-up as much as the
backup, while a run of 20,000 mostly does not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from harness import PROJECT_ROOT, backup_env, peak_rss_mb, run_backup
from mariadb import running_mariadb
from trees import tiny

from site_backup.storage import close_storage, storage
from tests.support.azurite import running_azurite
from tests.support.devhost_process import running_devhost

CPU_GOAL_MS = 2.0
FLAT_GOAL = 1.5


@dataclass(frozen=True)
class RunResult:
    files: int
    cpu_ms_per_file: float
    intact: bool


async def stored_sizes(connection_string: str, container: str, prefix: str) -> dict[str, int]:
    """Every blob's size, listed through the app's own lean client (the SDK takes 10x the CPU)."""
    try:
        listed = await storage({"BACKUP_STORAGE": connection_string}).store.list_all(container, prefix)
        return {b.name: b.size for b in listed}
    finally:
        await close_storage()


def ensure_tree(tree: Path, files: int) -> dict[str, int]:
    """Write ``files`` tiny files under ``tree`` unless it is there; every file's blob name and size.

    The storage check compares the container with this; its length and sum are the run's files and bytes.
    """
    started = time.perf_counter()
    written = not tree.exists()
    if written:
        tiny(tree, files)
    expected = {str(p).lstrip("/"): p.stat().st_size for p in tree.rglob("*") if p.is_file()}
    took = f" in {time.perf_counter() - started:.0f} s" if written else ""
    print(f"{'wrote' if written else 'reusing'} {tree}: {len(expected)} files, {sum(expected.values())} bytes{took}")
    return expected


def backup_once(
    tree: Path, expected: dict[str, int], work: Path, args: argparse.Namespace, warm_up: Path | None = None
) -> RunResult:
    """One backup of ``tree`` on a fresh Azurite (and MariaDB with ``--sql``) and devhost; prints its figures.

    ``warm_up``: a tree backed up first, on the same Azurite and devhost, and not measured.
    """
    files, size = len(expected), sum(expected.values())
    with contextlib.ExitStack() as services:
        if args.sql:
            os.environ["AZURITE_DB"] = services.enter_context(running_mariadb(work / f"db-{uuid.uuid4().hex}"))
        azurite = services.enter_context(running_azurite(in_memory=not (args.disk or args.sql), parent=work))
        env = backup_env(azurite, tree.parent, "backups")
        with running_devhost(PROJECT_ROOT, hub=work / f"hub-{uuid.uuid4().hex}.sqlite", env=env) as host:
            assert host.proc is not None
            last = [time.monotonic()]

            def progress(status: dict) -> None:
                if time.monotonic() - last[0] >= 60:
                    last[0] = time.monotonic()
                    custom = status.get("customStatus") or {}
                    print(
                        f"  {time.strftime('%H:%M:%S')} {custom.get('filesDone')}/{custom.get('filesTotal')} "
                        f"files, generation {custom.get('generation')}, RSS {peak_rss_mb(host.proc.pid):.0f} MB",
                        flush=True,
                    )

            if warm_up is not None:
                run_backup(host, azurite, str(warm_up))
            measured = run_backup(host, azurite, str(tree), expected=size, on_status=progress)
            stats = host.stats()
            rss = peak_rss_mb(host.proc.pid)
        per_file = measured.cpu / files * 1000
        print(f"\n{files} files, {size / 2**20:.0f} MiB: Completed with output {size} (exact)")
        print(f"  wall {measured.seconds:.0f} s, {files / measured.seconds:.0f} files/s")
        print(f"  devhost CPU {measured.cpu:.1f} s = {per_file:.2f} ms/file; peak RSS {rss:.0f} MB")
        print(f"  Azurite CPU {measured.storage_cpu:.0f} s = {measured.storage_cpu / files * 1000:.2f} ms/file")
        print(f"  generations {measured.notes['status']['generation']}, episodes {stats['episodes']}")
        print(
            f"  largest: history {stats['largest_history_events']} events, "
            f"{stats['largest_action_count']} actions, payload {stats['largest_payload_bytes']} bytes"
        )
        sizes = asyncio.run(stored_sizes(azurite.connection_string, "backups", str(tree).lstrip("/") + "/"))
    missing = len(set(expected) - set(sizes))
    wrong = sum(1 for name, n in expected.items() if sizes.get(name, n) != n)
    print(f"  storage: {len(sizes)} blobs, {missing} missing, {wrong} of the wrong size", flush=True)
    return RunResult(files, per_file, intact=not (missing or wrong))


def print_summary(results: list[RunResult]) -> None:
    """Each size's median CPU per file, and the spread the goal bounds."""
    medians: dict[int, float] = {}
    print("\n| files | runs | devhost CPU per file, each run | median |\n|---:|---:|---|---:|")
    for files in sorted({r.files for r in results}):
        runs = [r.cpu_ms_per_file for r in results if r.files == files]
        medians[files] = statistics.median(runs)
        print(f"| {files:,} | {len(runs)} | {', '.join(f'{x:.2f} ms' for x in runs)} | {medians[files]:.2f} ms |")
    spread = max(medians.values()) / min(medians.values())
    highest = max(medians.values())
    print(
        f"\nlargest median {highest:.2f} ms (goal <= {CPU_GOAL_MS} ms), largest / smallest median {spread:.2f}x "
        f"(goal <= {FLAT_GOAL}x): {'met' if highest <= CPU_GOAL_MS and spread <= FLAT_GOAL else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each size, each on a fresh Azurite")
    parser.add_argument("--disk", action="store_true", help="Azurite on disk instead of in memory")
    parser.add_argument(
        "--sql", action="store_true", help="Azurite on disk with its blob metadata in a private MariaDB (AZURITE_DB)"
    )
    parser.add_argument("--keep-tree", type=Path, help="write the tree here (and reuse it if it is there)")
    parser.add_argument(
        "--warm-up",
        type=int,
        default=0,
        metavar="FILES",
        help="back up this many other tiny files first, unmeasured, on the same Azurite and devhost",
    )
    args = parser.parse_args()
    os.environ.setdefault("NODE_OPTIONS", "--max-old-space-size=16384")  # for Azurite (see above)
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="site-backup-million-") as tmp:
        work = Path(tmp)
        base = args.keep_tree or work / "trees"
        warm_up = None
        if args.warm_up:
            warm_up = base / "warm-up"
            ensure_tree(warm_up, args.warm_up)
        for files in args.files:
            # One tree per size; with a single size, --keep-tree DIR holds it as DIR/site, as it always has.
            tree = base / "site" if len(args.files) == 1 else base / f"site-{files}"
            expected = ensure_tree(tree, files)
            for _ in range(args.repeat):
                results.append(backup_once(tree, expected, work, args, warm_up))
    if len(results) > 1:
        print_summary(results)
    if not all(r.intact for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
