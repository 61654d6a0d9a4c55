"""Upload throughput of E2_CopyFileToBlob's logic against the seed sample's approach.

Both run in the same process against the same Azurite (started here from node_modules), on the
same trees, with the same worker-thread count as host.json's maxConcurrentActivityFunctions:
- baseline: the seed's Python activity (a new BlobServiceClient and a create_container call
  per file, one upload_blob; with ``overwrite=True`` added, otherwise a re-run fails);
- site_backup: ``backup_file`` with the process-wide container client.
Prints seconds, MB/s or files/s, and the ratio baseline/site_backup (> 1 means faster).
"""

import argparse
import functools
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from site_backup.naming import blob_name_for
from site_backup.storage import backup_container
from site_backup.upload import backup_file
from tests.support.azurite import running_azurite

WORKERS = json.loads(Path(__file__).resolve().parents[1].joinpath("host.json").read_text())["extensions"][
    "durableTask"
]["maxConcurrentActivityFunctions"]


def seed_copy(connection_string: str, container: str) -> Callable[[str], int]:
    """The seed sample's activity, with only the blob name and overwrite fixed so it can run twice."""

    def copy(path: str) -> int:
        service = BlobServiceClient.from_connection_string(connection_string)
        with contextlib.suppress(ResourceExistsError):
            service.create_container(container)
        blob = service.get_blob_client(container=container, blob=blob_name_for(path))
        size = os.path.getsize(path)
        with open(path, "rb") as data:
            blob.upload_blob(data, overwrite=True)
        return size

    return copy


def ours() -> Callable[[str], int]:
    def copy(path: str) -> int:
        return backup_file(backup_container(), path).size

    return copy


def timed(copy: Callable[[str], int], files: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        total = sum(pool.map(copy, files))
    return time.perf_counter() - start, total


def _rate(seconds: float, count: int, size: int, unit: str) -> str:
    return f"{count / seconds:8.1f} files/s" if unit == "files" else f"{size / seconds / 1e6:8.1f} MB/s"


def make_tree(root: Path, small: int, large_mb: int) -> tuple[list[str], list[str]]:
    smalls = []
    for i in range(small):
        path = root / f"d{i % 20}" / f"file {i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(2_000 + i % 5_000))
        smalls.append(str(path))
    large = root / "large.bin"
    with open(large, "wb") as f:
        for _ in range(large_mb):
            f.write(os.urandom(1024 * 1024))
    return smalls, [str(large)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-files", type=int, default=1000)
    parser.add_argument("--large-mb", type=int, default=64)
    args = parser.parse_args()
    with running_azurite() as azurite, tempfile.TemporaryDirectory() as tmp:
        os.environ["BACKUP_STORAGE"] = azurite.connection_string
        smalls, large = make_tree(Path(tmp), args.small_files, args.large_mb)
        print(f"Azurite in memory, {WORKERS} worker threads, {len(smalls)} small files, one {args.large_mb} MiB file")
        rows = []
        for label, files, unit in (("small files", smalls, "files"), ("large file", large, "MB")):
            os.environ["BACKUP_CONTAINER"] = f"bench{uuid.uuid4().hex[:12]}"
            base_s, size = timed(seed_copy(azurite.connection_string, f"seed{uuid.uuid4().hex[:12]}"), files)
            our_s, our_size = timed(ours(), files)
            rerun_s, _ = timed(ours(), files)
            assert size == our_size
            rate = functools.partial(_rate, count=len(files), size=size, unit=unit)
            rows.append((f"{label}: seed sample", base_s, rate(base_s), 1.0))
            rows.append((f"{label}: site_backup", our_s, rate(our_s), base_s / our_s))
            rows.append((f"{label}: site_backup re-run (unchanged)", rerun_s, rate(rerun_s), base_s / rerun_s))
        print(f"{'case':45} {'seconds':>8} {'rate':>16} {'ratio':>7}")
        for name, seconds, rate, ratio in rows:
            print(f"{name:45} {seconds:8.2f} {rate:>16} {ratio:6.2f}x")


if __name__ == "__main__":
    main()
