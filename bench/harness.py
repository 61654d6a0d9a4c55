"""What every benchmark case needs: a fresh disk-mode Azurite, process CPU and memory readings, the peers'
command lines, and a check that storage really holds every file afterwards.

Only ratios measured in one run are compared: everything shares the machine's two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from tests.support.azurite import ACCOUNT, KEY, Azurite, running_azurite  # noqa: E402
from tests.support.devhost_process import DevhostProcess  # noqa: E402

TOOLS = PROJECT_ROOT / "bench" / ".tools"
AZCOPY = TOOLS / "node_modules" / "@azure-tools" / "azcopy-linux" / "dist" / "bin" / "azcopy_linux_amd64"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    """One timed run: wall seconds, CPU seconds of the tool's process(es) and of Azurite, peak RSS."""

    seconds: float
    cpu: float = 0.0
    storage_cpu: float = 0.0
    peak_rss_mb: float = 0.0
    notes: dict[str, object] = field(default_factory=dict)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def fresh_storage(work: Path) -> Iterator[Azurite]:
    """A new disk-mode Azurite with its data folder under ``work``; stopped and removed afterwards."""
    work.mkdir(parents=True, exist_ok=True)
    with running_azurite(in_memory=False, parent=work) as azurite:
        yield azurite


def container_sas_url(azurite: Azurite, container: str) -> str:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    with contextlib.suppress(Exception):
        service.create_container(container)
    sas = generate_container_sas(
        ACCOUNT,
        container,
        account_key=KEY,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=12),
    )
    return f"{azurite.blob_endpoint}/{container}?{sas}"


def timed_command(argv: list[str], azurite: Azurite, env: dict[str, str] | None = None) -> Measured:
    """Run a peer to completion; CPU from its rusage, Azurite's from /proc."""
    storage_before = process_cpu(azurite.pid)
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    output = process.stdout.read().decode("utf-8", "replace") if process.stdout else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {process.returncode}:\n{output[-3000:]}")
    return Measured(
        seconds, usage.ru_utime + usage.ru_stime, process_cpu(azurite.pid) - storage_before, usage.ru_maxrss / 1024
    )


# ---- the tools --------------------------------------------------------------------------------------------


def azcopy_env(work: Path) -> dict[str, str]:
    (work / "azcopy-logs").mkdir(parents=True, exist_ok=True)
    (work / "azcopy-plans").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "AZCOPY_LOG_LOCATION": str(work / "azcopy-logs"),
        "AZCOPY_JOB_PLAN_LOCATION": str(work / "azcopy-plans"),
        "AZCOPY_DISABLE_SYSLOG": "true",
    }


def azcopy_copy(tree: Path, url: str) -> list[str]:
    return [
        str(AZCOPY),
        "copy",
        f"{tree}/*",
        url,
        "--recursive",
        "--put-md5",
        "--from-to",
        "LocalBlob",
        "--log-level",
        "ERROR",
        "--output-level",
        "quiet",
    ]


def azcopy_sync(tree: Path, url: str) -> list[str]:
    return [
        str(AZCOPY),
        "sync",
        str(tree),
        url,
        "--recursive",
        "--put-md5",
        "--from-to",
        "LocalBlob",
        "--log-level",
        "ERROR",
        "--output-level",
        "quiet",
    ]


def rclone_copy(tree: Path, url: str, container: str) -> list[str]:
    return ["rclone", "copy", str(tree), f":azureblob:{container}", "--azureblob-sas-url", url, "-q"]


def peers_available() -> dict[str, bool]:
    return {"azcopy": AZCOPY.exists() and os.access(AZCOPY, os.X_OK), "rclone": shutil.which("rclone") is not None}


# ---- site-backup under devhost ----------------------------------------------------------------------------


def backup_env(azurite: Azurite, roots: Path, container: str, tuning: dict[str, int] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "AzureWebJobsStorage": azurite.connection_string,
        "BACKUP_STORAGE": azurite.connection_string,
        "BACKUP_CONTAINER": container,
        "BACKUP_ALLOWED_ROOTS": str(roots),
        "FUNCTIONS_WORKER_RUNTIME": "python",
    }
    if tuning:
        env["BACKUP_TUNING"] = json.dumps(tuning)
    return env


def run_backup(
    host: DevhostProcess,
    azurite: Azurite,
    body: object,
    expected: int | None = None,
    on_status: Callable[[dict], None] | None = None,
    deadline_s: float = 24 * 3600,
) -> Measured:
    """POST to Completed, timed; CPU of the devhost process (host and app) and of Azurite."""
    assert host.proc is not None
    cpu_before, storage_before = process_cpu(host.proc.pid), process_cpu(azurite.pid)
    started = time.perf_counter()
    response = requests.post(f"{host.base_url}/orchestrators/E2_BackupSiteContent", data=json.dumps(body), timeout=120)
    response.raise_for_status()
    status_url = response.headers["Location"]
    deadline = time.monotonic() + deadline_s
    while True:
        status = requests.get(status_url, timeout=120).json()
        if on_status is not None:
            on_status(status)
        if status["runtimeStatus"] == "Completed":
            break
        if status["runtimeStatus"] in ("Failed", "Terminated") or time.monotonic() > deadline:
            raise RuntimeError(f"backup ended {status['runtimeStatus']}: {str(status.get('output'))[:2000]}")
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    if expected is not None and status["output"] != expected:
        raise RuntimeError(f"backup output {status['output']} != {expected} bytes in the tree")
    return Measured(
        seconds,
        process_cpu(host.proc.pid) - cpu_before,
        process_cpu(azurite.pid) - storage_before,
        peak_rss_mb(host.proc.pid),
        {"status": status.get("customStatus")},
    )


# ---- the ceiling and the seed -----------------------------------------------------------------------------


def raw_ceiling(tree: Path, azurite: Azurite, container: str, in_flight: int = 64) -> Measured:
    """``azure.storage.blob.aio``, one client, ``in_flight`` uploads at once, each with its Content-MD5."""
    from azure.storage.blob import ContentSettings
    from azure.storage.blob.aio import BlobServiceClient as AsyncService

    files = [p for p in sorted(tree.rglob("*")) if p.is_file()]

    async def upload_all() -> None:
        async with AsyncService.from_connection_string(azurite.connection_string) as service:
            client = service.get_container_client(container)
            with contextlib.suppress(Exception):
                await client.create_container()
            slots = asyncio.Semaphore(in_flight)

            async def one(path: Path) -> None:
                async with slots:
                    data = path.read_bytes()
                    md5 = bytearray(hashlib.md5(data).digest())
                    await client.upload_blob(
                        str(path).lstrip("/"),
                        data,
                        overwrite=True,
                        content_settings=ContentSettings(content_md5=md5),
                        max_concurrency=4,
                    )

            await asyncio.gather(*(one(p) for p in files))

    return _timed_in_process(lambda: asyncio.run(upload_all()), azurite)


def seed_sequential(tree: Path, azurite: Azurite, container: str) -> Measured:
    """The seed sample's copy activity called for every file in turn: a new client and create_container
    per file, then upload_blob (``overwrite=True`` added so a re-run can work)."""
    from azure.core.exceptions import ResourceExistsError

    files = [str(p) for p in sorted(tree.rglob("*")) if p.is_file()]

    def copy_all() -> None:
        for path in files:
            service = BlobServiceClient.from_connection_string(azurite.connection_string)
            with contextlib.suppress(ResourceExistsError):
                service.create_container(container)
            blob = service.get_blob_client(container=container, blob=path.lstrip("/"))
            with open(path, "rb") as data:
                blob.upload_blob(data, overwrite=True)

    return _timed_in_process(copy_all, azurite)


def _timed_in_process(run: Callable[[], None], azurite: Azurite) -> Measured:
    storage_before = process_cpu(azurite.pid)
    cpu_before = time.process_time()
    started = time.perf_counter()
    run()
    return Measured(
        time.perf_counter() - started, time.process_time() - cpu_before, process_cpu(azurite.pid) - storage_before
    )


# ---- checking what storage holds --------------------------------------------------------------------------


def verify(
    azurite: Azurite,
    container: str,
    tree: Path,
    name_of: Callable[[Path], str],
    sample: int = 40,
    md5_required: bool = True,
) -> int:
    """Every file of the tree is a blob of its size (and MD5, for a sample); returns the blob count."""
    client = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(container)
    stored = {b.name: b for b in client.list_blobs()}
    files = [p for p in tree.rglob("*") if p.is_file()]
    missing = [str(p) for p in files if name_of(p) not in stored]
    if missing:
        raise RuntimeError(f"{len(missing)} file(s) not in storage, e.g. {missing[:3]}")
    wrong = [str(p) for p in files if stored[name_of(p)].size != p.stat().st_size]
    if wrong:
        raise RuntimeError(f"{len(wrong)} blob(s) of the wrong size, e.g. {wrong[:3]}")
    for path in random.Random(7).sample(files, min(sample, len(files))):
        blob = stored[name_of(path)]
        data = path.read_bytes()
        md5 = hashlib.md5(data).digest()
        if md5_required and bytes(blob.content_settings.content_md5 or b"") != md5:
            raise RuntimeError(f"{path}: stored Content-MD5 is not the file's")
        if client.download_blob(blob.name).readall() != data:
            raise RuntimeError(f"{path}: the blob's bytes are not the file's")
    return len(stored)
