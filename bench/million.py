"""One backup of a million tiny files: ``Completed`` with the exact total, and nothing that grows with the tree.

    .venv/bin/python bench/million.py [--files 1000000] [--disk] [--keep-tree DIR]

Writes the tree (100 B-4 KiB files in 1,000 directories), starts Azurite (in memory by default: on disk,
Azurite's own database of a million blobs is rewritten whole every few seconds; and with a 16 GB V8 heap: it
keeps every blob's metadata on the heap, and at about 550,000 blobs Node's default 4 GB leaves it collecting
garbage without end) and devhost, runs the backup,
and prints: wall time and files/s, the devhost process's CPU per file and peak RSS, and the largest history,
action count and payload any execution had (devhost's /admin/devhost/stats). Then it checks that storage holds
every file, by name and size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from harness import PROJECT_ROOT, backup_env, peak_rss_mb, run_backup
from mariadb import running_mariadb
from trees import tiny

from site_backup.storage import close_storage, storage
from tests.support.azurite import running_azurite
from tests.support.devhost_process import running_devhost


async def stored_sizes(connection_string: str, container: str) -> dict[str, int]:
    """Every blob's size, listed through the app's own lean client (the SDK takes 10x the CPU)."""
    try:
        listed = await storage({"BACKUP_STORAGE": connection_string}).store.list_all(container, "")
        return {b.name: b.size for b in listed}
    finally:
        await close_storage()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--disk", action="store_true", help="Azurite on disk instead of in memory")
    parser.add_argument(
        "--sql", action="store_true", help="Azurite on disk with its blob metadata in a private MariaDB (AZURITE_DB)"
    )
    parser.add_argument("--keep-tree", type=Path, help="write the tree here (and reuse it if it is there)")
    args = parser.parse_args()
    os.environ.setdefault("NODE_OPTIONS", "--max-old-space-size=16384")  # for Azurite (see above)
    with tempfile.TemporaryDirectory(prefix="site-backup-million-") as tmp:
        work = Path(tmp)
        tree = (args.keep_tree or work / "trees") / "site"
        started = time.perf_counter()
        if not tree.exists():
            files, size = tiny(tree, args.files)
            print(f"wrote {files} files, {size} bytes in {time.perf_counter() - started:.0f} s", flush=True)
        else:
            files = sum(len(names) for _, _, names in os.walk(tree))
            size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
            print(f"reusing {tree}: {files} files, {size} bytes", flush=True)
        with contextlib.ExitStack() as services:
            if args.sql:
                os.environ["AZURITE_DB"] = services.enter_context(running_mariadb(work))
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

                measured = run_backup(host, azurite, str(tree), expected=size, on_status=progress)
                stats = host.stats()
                rss = peak_rss_mb(host.proc.pid)
            print(f"\n{files} files, {size / 2**20:.0f} MiB: Completed with output {size} (exact)")
            print(f"  wall {measured.seconds:.0f} s, {files / measured.seconds:.0f} files/s")
            per_file = measured.cpu / files * 1000
            print(f"  devhost CPU {measured.cpu:.0f} s = {per_file:.2f} ms/file; peak RSS {rss:.0f} MB")
            print(f"  Azurite CPU {measured.storage_cpu:.0f} s = {measured.storage_cpu / files * 1000:.2f} ms/file")
            print(f"  generations {measured.notes['status']['generation']}, episodes {stats['episodes']}")
            print(
                f"  largest: history {stats['largest_history_events']} events, "
                f"{stats['largest_action_count']} actions, payload {stats['largest_payload_bytes']} bytes"
            )
            sizes = asyncio.run(stored_sizes(azurite.connection_string, "backups"))
            expected = {str(p).lstrip("/"): p.stat().st_size for p in tree.rglob("*") if p.is_file()}
            missing = len(set(expected) - set(sizes))
            wrong = sum(1 for name, n in expected.items() if sizes.get(name, n) != n)
            print(f"  storage: {len(sizes)} blobs, {missing} missing, {wrong} of the wrong size")
            if missing or wrong:
                sys.exit(1)


if __name__ == "__main__":
    main()
