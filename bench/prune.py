"""A prune of a root with a history: how long it takes, against the floor of any prune on the same storage.

    .venv/bin/python bench/prune.py [--files 20000] [--runs 5] [--changed 2000]

Writes ``--files`` tiny files, backs them up ``--runs`` times under devhost with ``--changed`` files rewritten
between runs (each rewrite leaves a snapshot), then runs ``E2_PruneBackups`` with ``last=2``: first dry, then
for real. The floor, on the same Azurite right after: list every blob of the root with its snapshots
(``azure.storage.blob.aio``) and delete as many snapshots of a scratch blob, 64 requests in flight. Prints
both, their ratio, devhost's and Azurite's CPU, and what the prune removed; then checks that the newest run
still restores byte for byte.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from pathlib import Path

import requests
from azure.core.exceptions import ResourceNotFoundError
from harness import PROJECT_ROOT, backup_env, fresh_storage, process_cpu, run_backup
from trees import tiny

from tests.support.devhost_process import running_devhost

POLICY = "last=2"


def rewrite(tree: Path, count: int, round_: int) -> None:
    files = sorted(p for p in tree.rglob("*.txt"))
    start = (round_ * count) % max(1, len(files))
    for path in (files + files)[start : start + count]:
        path.write_bytes(f"round {round_} ".encode() + path.read_bytes()[:200])


def prune(host, body: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    response = requests.post(f"{host.base_url}/orchestrators/E2_PruneBackups", data=json.dumps(body), timeout=120)
    response.raise_for_status()
    while True:
        status = requests.get(response.headers["Location"], timeout=120).json()
        if status["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            break
        time.sleep(0.2)
    if status["runtimeStatus"] != "Completed":
        raise RuntimeError(f"prune ended {status['runtimeStatus']}: {status.get('output')}")
    return time.perf_counter() - started, status["output"]


def floor(connection: str, container: str, prefix: str, deletes: int) -> float:
    """List the root's blobs with snapshots, and delete ``deletes`` snapshots, with the SDK's aio client."""
    from azure.storage.blob.aio import BlobServiceClient as AsyncService

    async def run() -> float:
        async with AsyncService.from_connection_string(connection) as service:
            scratch = service.get_container_client(f"floor{uuid.uuid4().hex[:8]}")
            await scratch.create_container()
            snapshots = []
            for i in range(deletes):  # one snapshot of each of many blobs: two of one blob may get the same time
                blob = scratch.get_blob_client(f"scratch-{i}")
                await blob.upload_blob(b"x")
                snapshots.append((f"scratch-{i}", (await blob.create_snapshot())["snapshot"]))
            started = time.perf_counter()
            listed = service.get_container_client(container).list_blobs(name_starts_with=prefix, include=["snapshots"])
            async for _ in listed:
                pass
            queue = list(snapshots)

            async def worker() -> None:
                while queue:
                    name, snapshot = queue.pop()
                    with contextlib.suppress(ResourceNotFoundError):  # a retried delete that had gone through
                        await scratch.get_blob_client(name, snapshot=snapshot).delete_blob()

            await asyncio.gather(*(worker() for _ in range(64)))
            return time.perf_counter() - started

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--changed", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="site-backup-prune-") as tmp:
        work = Path(tmp)
        tree = work / "trees" / "site"
        files, size = tiny(tree, args.files)
        with fresh_storage(work / "azurite") as azurite:
            env = backup_env(azurite, tree.parent, "backups", {"pruneMarginSeconds": 1})
            with running_devhost(PROJECT_ROOT, hub=work / "hub.sqlite", env=env) as host:
                assert host.proc is not None
                for round_ in range(args.runs):
                    if round_:
                        rewrite(tree, args.changed, round_)
                    time.sleep(2.2)  # past the racy window, so every rewrite is seen
                    took = run_backup(host, azurite, str(tree)).seconds
                    print(f"backup {round_ + 1}: {took:.1f} s", flush=True)
                time.sleep(1.1)
                body = {"rootDirectory": str(tree), "retention": POLICY}
                dry_seconds, dry = prune(host, {**body, "dryRun": True})
                cpu, storage_cpu = process_cpu(host.proc.pid), process_cpu(azurite.pid)
                seconds, report = prune(host, body)
                cpu, storage_cpu = process_cpu(host.proc.pid) - cpu, process_cpu(azurite.pid) - storage_cpu
                print(f"prune: {seconds:.1f} s: {json.dumps(report)}", flush=True)
                prefix = str(tree).lstrip("/") + "/"
                base = floor(azurite.connection_string, "backups", prefix, report["snapshotsRemoved"])
                target = tree.parent / "restored"  # inside the allowed root
                restore = {"rootDirectory": str(tree), "targetDirectory": str(target)}
                started = requests.post(
                    f"{host.base_url}/orchestrators/E2_RestoreSiteContent", data=json.dumps(restore), timeout=120
                )
                while (s := requests.get(started.headers["Location"], timeout=120).json())["runtimeStatus"] not in (
                    "Completed",
                    "Failed",
                ):
                    time.sleep(0.2)
        same = s["runtimeStatus"] == "Completed" and all(
            (target / p.relative_to(tree)).read_bytes() == p.read_bytes() for p in tree.rglob("*.txt")
        )
    print(f"\n{files} files ({size / 2**20:.0f} MiB), {args.runs} runs, {args.changed} rewritten between runs")
    print(
        f"  {POLICY}, dry run: {dry_seconds:.1f} s "
        f"(would remove {dry['runsRemoved']} runs, {dry['snapshotsRemoved']} snapshots)"
    )
    print(
        f"  prune: {seconds:.1f} s; removed {report['runsRemoved']} runs, {report['snapshotsRemoved']} snapshots "
        f"({report['snapshotBytesRemoved']} bytes), {report['catalogBlobsRemoved']} catalog blobs; kept "
        f"{report['snapshotsKept']} snapshots"
    )
    print(f"  devhost CPU {cpu:.1f} s, Azurite CPU {storage_cpu:.1f} s")
    print(f"  floor (list with snapshots + as many deletes, aio, 64 in flight): {base:.1f} s")
    print(f"  prune / floor: {seconds / base:.2f}x")
    print(f"  the newest run restores byte for byte: {same}")


if __name__ == "__main__":
    main()
