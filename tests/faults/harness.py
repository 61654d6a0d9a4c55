"""What every fault scenario needs: an Azurite that can be frozen, killed and restarted on its data folder,
devhost on a hub that outlives it, trees, and the one check that matters.

The check (``verify``): every file of the tree is either a blob with exactly its bytes and a Content-MD5 that
matches them, or it is counted as not backed up (failed or vanished) in the final status. Never a silent
gap, never a corrupt blob reported as good. Every wait has a deadline, so a hang fails the scenario.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient, ContainerClient

from backup_cli.processes import Child, free_port
from backup_cli.services import AzuritePorts, start_azurite
from tests.support.azurite import ACCOUNT, KEY
from tests.support.devhost_process import DevhostProcess

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START = "/orchestrators/E2_BackupSiteContent"
TERMINAL = ("Completed", "Failed", "Terminated")


class Storage:
    """A disk-mode Azurite on fixed free ports and a data folder of its own, which survives restarts."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self.ports = AzuritePorts(free_port(), free_port(), free_port())
        self.child: Child | None = None

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.blob}/{ACCOUNT}"

    def connection_string(self, blob_endpoint: str | None = None) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={blob_endpoint or self.blob_endpoint};"
        )

    def start(self) -> Storage:
        self.child = start_azurite(self.location, self.location / "azurite.log", self.ports)
        return self

    def freeze(self) -> None:
        assert self.child is not None
        os.kill(self.child.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.child is not None
        os.kill(self.child.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crash: whatever Azurite had not written to its folder yet is lost."""
        assert self.child is not None
        self.child.process.kill()
        self.child.process.wait(10)

    def stop(self) -> None:
        if self.child is not None:
            self.thaw()
            self.child.stop()

    def container(self, name: str) -> ContainerClient:
        return BlobServiceClient.from_connection_string(self.connection_string()).get_container_client(name)


@dataclass
class Scenario:
    """One backup under a fault: the tree, the settings, the host (restarted as the scenario needs)."""

    root: Path
    storage: Storage
    hub: Path
    container: str
    env: dict[str, str]
    host: DevhostProcess | None = None
    log: list[str] = field(default_factory=list)

    def start_host(self) -> DevhostProcess:
        self.host = DevhostProcess(PROJECT_ROOT, hub=self.hub, env=self.env).start(timeout=60)
        return self.host

    def kill_host(self) -> None:
        if self.host is not None:
            self.host.kill()
            self.log.append(self.host.output())

    def stop_host(self) -> None:
        if self.host is not None:
            self.host.stop()
            self.log.append(self.host.output())
            self.host = None

    def start_backup(self, body: object = None) -> str:
        assert self.host is not None
        response = requests.post(
            self.host.base_url + START, data=json.dumps(str(self.root) if body is None else body), timeout=60
        )
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def status(self, instance_id: str) -> dict[str, Any]:
        assert self.host is not None
        url = f"{self.host.base_url}/runtime/webhooks/durabletask/instances/{instance_id}"
        return requests.get(url, timeout=60).json()

    def wait(
        self, instance_id: str, until: Callable[[dict[str, Any]], bool] | None = None, deadline_s: float = 300
    ) -> dict[str, Any]:
        """Poll until ``until`` holds (default: the backup ended); a hang fails with the last status."""
        deadline = time.monotonic() + deadline_s
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status(instance_id)
            if (until or ended)(status):
                return status
            time.sleep(0.05)
        raise AssertionError(f"no progress within {deadline_s} s; last status: {status}")


def ended(status: dict[str, Any]) -> bool:
    return status.get("runtimeStatus") in TERMINAL


def progress(status: dict[str, Any]) -> dict[str, Any]:
    return status.get("customStatus") or {}


@contextmanager
def scenario(tmp_path: Path, files: dict[str, bytes], tuning: dict[str, int] | None = None) -> Iterator[Scenario]:
    """A tree written from ``files``, a fresh Azurite, and settings for devhost; everything stopped after."""
    root = write_tree(tmp_path / "site", files)
    storage = Storage(tmp_path / "azurite").start()
    container = "backups"
    env = {
        **os.environ,
        "AzureWebJobsStorage": storage.connection_string(),
        "BACKUP_STORAGE": storage.connection_string(),
        "BACKUP_CONTAINER": container,
        "BACKUP_ALLOWED_ROOTS": str(tmp_path),
        "BACKUP_TUNING": json.dumps(tuning or {}),
    }
    case = Scenario(root, storage, tmp_path / "hub.sqlite", container, env)
    try:
        yield case
    finally:
        case.stop_host()
        storage.stop()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def tree_of(count: int, seed: int = 0) -> dict[str, bytes]:
    """``count`` small files of varied sizes in a few directories, with awkward names among them."""
    names = ["plain", "with space", "ünï", "hash#", "per%cent"]
    return {
        f"{names[i % 5]}/d{i % 7}/f{i:05d}.txt": hashlib.sha256(f"{seed}-{i}".encode()).digest() * (1 + i % 40)
        for i in range(count)
    }


def verify(storage: Storage, container: str, root: Path, final: dict[str, Any]) -> dict[str, int]:
    """Every regular file under ``root`` is a correct blob, or counted as not backed up; no blob is corrupt.

    Returns what was found: files, blobs correct, files accounted as failed or vanished.
    """
    client = storage.container(container)
    blobs = {b.name: b for b in client.list_blobs()} if client.exists() else {}
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink() and os.access(p, os.R_OK)}
    for name, blob in blobs.items():  # nothing corrupt is stored, whatever the file became since
        data = client.download_blob(name).readall()
        assert bytes(blob.content_settings.content_md5 or b"") == hashlib.md5(data).digest(), f"corrupt blob {name}"
    missing = [p for p, data in files.items() if _blob_bytes(client, blobs, p) != data]
    custom = progress(final)
    accounted = custom.get("filesFailed", 0) + custom.get("filesVanished", 0)
    assert len(missing) <= accounted, (
        f"{len(missing)} file(s) silently not backed up (failed + vanished = {accounted}): "
        f"{[str(p) for p in missing[:5]]}; final status {final}"
    )
    return {"files": len(files), "correct": len(files) - len(missing), "accounted": accounted}


def _blob_bytes(client: ContainerClient, blobs: dict[str, Any], path: Path) -> bytes | None:
    name = str(path).lstrip("/")
    if name not in blobs:
        return None
    return client.download_blob(name).readall()
