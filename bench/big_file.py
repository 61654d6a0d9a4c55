"""One large file: site-backup's throughput against a single aio upload of it, and the copying process's memory.

    .venv/bin/python bench/big_file.py [--gib 2]

Both upload the same file into a fresh disk-mode Azurite: the baseline with ``azure.storage.blob.aio``'s
``upload_blob`` from the open file (the SDK's defaults), site-backup end to end under devhost (the file is
staged in segments by several activities and committed by one). Prints MiB/s, the ratio, and the peak RSS of
the devhost process, then checks the stored blob's size and Content-MD5 against the file.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
import uuid
from pathlib import Path

from azure.storage.blob import BlobServiceClient
from harness import PROJECT_ROOT, backup_env, fresh_storage, peak_rss_mb, run_backup
from trees import big

from tests.support.devhost_process import running_devhost

MiB = 1024 * 1024


def single_aio_upload(path: Path, connection_string: str) -> float:
    from azure.storage.blob.aio import BlobServiceClient as AsyncService

    async def upload() -> None:
        async with AsyncService.from_connection_string(connection_string) as service:
            container = service.get_container_client("baseline")
            await container.create_container()
            with path.open("rb") as data:
                await container.upload_blob(str(path).lstrip("/"), data, overwrite=True)

    started = time.perf_counter()
    asyncio.run(upload())
    return time.perf_counter() - started


def md5_of(path: Path) -> bytes:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(8 * MiB):
            digest.update(chunk)
    return digest.digest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    args = parser.parse_args()
    size = int(args.gib * 1024 * MiB)
    with tempfile.TemporaryDirectory(prefix="site-backup-big-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        big(tree, size)
        path = tree / "big.bin"
        with fresh_storage(work / "az-baseline") as azurite:
            baseline = single_aio_upload(path, azurite.connection_string)
        with fresh_storage(work / "az-site") as azurite:
            env = backup_env(azurite, work, "backups")
            with running_devhost(PROJECT_ROOT, hub=work / f"hub-{uuid.uuid4().hex}.sqlite", env=env) as host:
                assert host.proc is not None
                rss_before = peak_rss_mb(host.proc.pid)
                measured = run_backup(host, azurite, str(tree), expected=size)
                rss = peak_rss_mb(host.proc.pid)
            blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
                "backups", str(path).lstrip("/")
            )
            properties = blob.get_blob_properties()
        expected_md5 = md5_of(path)
    mib = size / MiB
    print(f"{mib:.0f} MiB file")
    print(f"  single aio upload_blob   {baseline:7.2f} s  {mib / baseline:6.1f} MiB/s")
    print(
        f"  site-backup (devhost)    {measured.seconds:7.2f} s  {mib / measured.seconds:6.1f} MiB/s"
        f"  ratio {baseline / measured.seconds:.2f}x"
    )
    print(f"  devhost peak RSS {rss:.0f} MB (at start {rss_before:.0f} MB); CPU {measured.cpu:.1f} s")
    stored_md5 = bytes(properties.content_settings.content_md5 or b"")
    print(f"  stored: {properties.size} bytes, Content-MD5 {'matches' if stored_md5 == expected_md5 else 'WRONG'}")
    if properties.size != size or stored_md5 != expected_md5:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
