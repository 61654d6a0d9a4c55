"""``make bench``: site-backup end to end against azcopy, rclone, the raw aio ceiling and the seed's sample.

Each tool gets a fresh disk-mode Azurite per tree; site-backup runs under devhost, timed from the POST to
``Completed``; after every run, storage must hold every file of the tree (names, sizes, and the bytes and
Content-MD5 of a sample). Prints one table per tree with seconds and the ratios that the goals are stated in
(peer seconds / site-backup seconds: above 1 means site-backup is faster), plus CPU per file.

    .venv/bin/python bench/run.py                # reference tree and 20,000 tiny files (make bench)
    .venv/bin/python bench/run.py --quick        # 2,000 tiny files (make bench-quick, about a minute)
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from harness import (
    Measured,
    azcopy_copy,
    azcopy_env,
    azcopy_sync,
    backup_env,
    container_sas_url,
    fresh_storage,
    peers_available,
    raw_ceiling,
    rclone_copy,
    run_backup,
    seed_sequential,
    timed_command,
    verify,
)
from trees import reference, tiny

from tests.support.devhost_process import running_devhost

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def absolute_name(path: Path) -> str:
    return str(path).lstrip("/")


def bench_tree(name: str, tree: Path, files: int, size: int, work: Path, skip: set[str]) -> dict[str, Measured]:
    """Every tool on one tree; each on its own fresh Azurite."""
    results: dict[str, Measured] = {}
    peers = peers_available()

    def relative(path: Path) -> str:
        return str(path.relative_to(tree))

    print(f"\n## {name}: {files} files, {size / 2**20:.0f} MiB", flush=True)
    with fresh_storage(work / "az-site") as azurite:
        env = backup_env(azurite, tree.parent, "backups")
        with running_devhost(PROJECT_ROOT, hub=work / f"hub-{uuid.uuid4().hex}.sqlite", env=env) as host:
            results["site-backup"] = run_backup(host, azurite, str(tree), expected=size)
            verify(azurite, "backups", tree, absolute_name)
            results["site-backup re-run"] = run_backup(host, azurite, str(tree), expected=size)
        _report("site-backup", results)
    if peers["azcopy"] and "azcopy" not in skip:
        with fresh_storage(work / "az-azcopy") as azurite:
            url = container_sas_url(azurite, "azcopy")
            env = azcopy_env(work)
            results["azcopy copy"] = timed_command(azcopy_copy(tree, url), azurite, env)
            verify(azurite, "azcopy", tree, relative)
            results["azcopy sync"] = timed_command(azcopy_sync(tree, url), azurite, env)
        _report("azcopy", results)
    if peers["rclone"] and "rclone" not in skip:
        with fresh_storage(work / "az-rclone") as azurite:
            url = container_sas_url(azurite, "rclone")
            results["rclone copy"] = timed_command(rclone_copy(tree, url, "rclone"), azurite)
            verify(azurite, "rclone", tree, relative)
        _report("rclone", results)
    if "ceiling" not in skip:
        with fresh_storage(work / "az-ceiling") as azurite:
            results["raw aio ceiling"] = raw_ceiling(tree, azurite, "ceiling")
            verify(azurite, "ceiling", tree, absolute_name)
        _report("raw aio ceiling", results)
    if "seed" not in skip:
        with fresh_storage(work / "az-seed") as azurite:
            results["seed sample, sequential"] = seed_sequential(tree, azurite, "seed")
            verify(azurite, "seed", tree, absolute_name, md5_required=False)
        _report("seed", results)
    _table(name, files, results)
    return results


def _report(prefix: str, results: dict[str, Measured]) -> None:
    for case, measured in results.items():
        if case.startswith(prefix) and not measured.notes.get("reported"):
            measured.notes["reported"] = True
            print(f"  {case:28} {measured.seconds:8.2f} s", flush=True)


def _table(name: str, files: int, results: dict[str, Measured]) -> None:
    ours, again = results["site-backup"], results["site-backup re-run"]

    def ratio(peer: str, against: Measured) -> str:
        return f"{results[peer].seconds / against.seconds:5.2f}x" if peer in results else "    -"

    print(f"\n| {name} | seconds | CPU s (tool) | CPU s (Azurite) | CPU ms/file (tool) |")
    print("|---|---:|---:|---:|---:|")
    for case, m in results.items():
        print(f"| {case} | {m.seconds:.2f} | {m.cpu:.2f} | {m.storage_cpu:.2f} | {m.cpu / files * 1000:.2f} |")
    print("\nratios (peer seconds / site-backup seconds; above 1: site-backup is faster)")
    print(f"  first run vs azcopy copy --put-md5: {ratio('azcopy copy', ours)}")
    print(f"  first run vs rclone copy:           {ratio('rclone copy', ours)}")
    print(f"  first run vs raw aio ceiling:       {ratio('raw aio ceiling', ours)}")
    print(f"  first run vs seed, sequential:      {ratio('seed sample, sequential', ours)}")
    print(f"  re-run vs azcopy sync:              {ratio('azcopy sync', again)}")
    print(f"  devhost peak RSS {ours.peak_rss_mb:.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 tiny files only")
    parser.add_argument("--skip", action="append", default=[], help="azcopy, rclone, ceiling or seed")
    parser.add_argument("--only", choices=["reference", "tiny"], help="one tree")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print(
        f"# site-backup benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{platform.machine()}, Python {platform.python_version()}"
    )
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="site-backup-bench-") as tmp:
        work = Path(tmp)
        trees: list[tuple[str, Callable[[Path], tuple[int, int]]]] = []
        if args.quick:
            trees.append(("2,000 tiny files", lambda root: tiny(root, 2_000)))
        else:
            if args.only in (None, "reference"):
                trees.append(("reference tree", reference))
            if args.only in (None, "tiny"):
                trees.append(("20,000 tiny files", lambda root: tiny(root, 20_000)))
        for index, (name, make) in enumerate(trees):
            tree = work / f"trees{index}" / "site"
            files, size = make(tree)
            results = bench_tree(name, tree, files, size, work / f"run{index}", set(args.skip))
            figures[name] = {case: m.seconds for case, m in results.items()}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
